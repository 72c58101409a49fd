"""The session machine (commsproxy.imap.session) as byte transcripts: no sockets, no server."""

from __future__ import annotations

import base64

import pytest

from commsproxy.imap import session_events as ev
from commsproxy.imap.errors import No
from commsproxy.imap.framer import Framer, LiteralTooLarge
from commsproxy.imap.session import TRANSITIONS, ImapSession, State
from tests.unit.session_transcript import Wire, logged_in, selected


def plain(user: str, password: str, authz: str = "") -> bytes:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode())


def test_the_table_lists_every_state() -> None:
    sources = {state for state, _ in TRANSITIONS}
    assert sources == set(State)


def test_login_with_quoted_strings_hands_the_secret_on_once() -> None:
    wire = Wire()
    wire.from_client(b'a LOGIN "me" "p\\"w"\r\n')
    assert wire.sent() == b'a LOGIN "me" "p\\"w"\r\n'  # byte for byte
    assert wire.machine.state is State.LOGGING_IN
    wire.from_server(b"a OK [CAPABILITY IMAP4rev1] logged in\r\n")
    (login,) = wire.of(ev.LoggedIn)
    assert isinstance(login, ev.LoggedIn)
    assert (login.user, login.secret) == ("me", 'p"w')
    assert 'p"w' not in repr(login)
    assert wire.machine.state is State.AUTHENTICATED
    assert wire.machine.user == "me"
    assert wire.machine._pending is None  # dropped once handed on
    assert wire.machine.in_flight == {}


def test_login_with_synchronizing_literals() -> None:
    wire = Wire()
    wire.from_client(b"a LOGIN {2}\r\n")
    wire.from_server(b"+ go ahead\r\n")
    wire.from_client(b"me {7}\r\n")
    wire.from_server(b"+ go ahead\r\n")
    wire.from_client(b"s\xc3\xa9cret\r\n")
    assert wire.sent() == b"a LOGIN {2}\r\nme {7}\r\ns\xc3\xa9cret\r\n"
    assert wire.received() == b"+ go ahead\r\n+ go ahead\r\n"
    wire.from_server(b"a OK done\r\n")
    (login,) = wire.of(ev.LoggedIn)
    assert isinstance(login, ev.LoggedIn)
    assert (login.user, login.secret) == ("me", "s\xe9cret")


def test_login_with_non_synchronizing_literals() -> None:
    wire = Wire()
    wire.from_client(b"a LOGIN {2+}\r\nme {2+}\r\npw\r\n")
    wire.from_server(b"a NO [AUTHENTICATIONFAILED] no\r\n")
    assert wire.of(ev.LoggedIn) == []
    assert wire.machine.state is State.NOT_AUTHENTICATED
    assert wire.machine._pending is None


def test_a_refused_literal_is_not_waited_for() -> None:
    wire = Wire()
    wire.from_client(b"a LOGIN {2}\r\n")
    assert wire.client_framer.in_literal
    wire.from_server(b"a BAD no literals here\r\n")
    assert wire.of(ev.CancelLiteral)
    assert not wire.client_framer.in_literal
    wire.from_client(b"b NOOP\r\n")
    assert wire.machine.sent is not None
    assert wire.machine.sent.name == "NOOP"


def test_authenticate_plain_with_a_continuation() -> None:
    wire = Wire()
    wire.from_client(b"a AUTHENTICATE PLAIN\r\n")
    assert wire.machine.state is State.AUTHENTICATING
    wire.from_server(b"+ \r\n")
    wire.from_client(plain("me", "pw") + b"\r\n")
    assert wire.sent() == b"a AUTHENTICATE PLAIN\r\n" + plain("me", "pw") + b"\r\n"
    assert wire.machine.in_flight.keys() == {"a"}  # the response line is no command
    wire.from_server(b"a OK welcome\r\n")
    (login,) = wire.of(ev.LoggedIn)
    assert isinstance(login, ev.LoggedIn)
    assert (login.user, login.secret) == ("me", "pw")
    assert wire.machine.state is State.AUTHENTICATED


def test_authenticate_plain_with_sasl_ir_and_an_authorization_identity() -> None:
    wire = Wire()
    wire.from_client(b"a AUTHENTICATE PLAIN " + plain("admin", "pw", "shared") + b"\r\n")
    wire.from_server(b"a OK welcome\r\n")
    assert wire.machine.user == "shared"


def test_authenticate_with_a_mechanism_not_read_logs_in_without_a_secret() -> None:
    wire = Wire()
    wire.from_client(b"a AUTHENTICATE XOAUTH2 dG9rZW4=\r\n")
    wire.from_server(b"a OK welcome\r\n")
    (login,) = wire.of(ev.LoggedIn)
    assert isinstance(login, ev.LoggedIn)
    assert (login.user, login.secret) == (None, None)
    assert wire.machine.state is State.AUTHENTICATED


def test_idle_and_done() -> None:
    wire = selected()
    wire.from_client(b"i IDLE\r\n")
    assert wire.machine.state is State.IDLE
    assert wire.machine.idle_tag == "i"
    assert not wire.machine.idling
    wire.from_server(b"+ idling\r\n* 4 EXISTS\r\n")
    assert wire.machine.idling
    assert wire.machine.exists == 4
    wire.from_client(b"DONE\r\n")
    assert wire.machine.in_flight.keys() == {"i"}  # DONE is no command
    wire.from_server(b"i OK IDLE terminated\r\n")
    assert wire.machine.state is State.SELECTED
    assert wire.of(ev.IdleStarted) == [ev.IdleStarted("i")]
    assert wire.of(ev.IdleDone) == [ev.IdleDone("i")]
    assert wire.sent() == b"i IDLE\r\nDONE\r\n"
    assert wire.received() == b"+ idling\r\n* 4 EXISTS\r\ni OK IDLE terminated\r\n"


def test_own_noop_inside_idle_is_invisible_to_the_client() -> None:
    wire = selected()
    wire.from_client(b"i IDLE\r\n")
    wire.from_server(b"+ idling\r\n")
    wire.received()
    restart = wire.machine.restart_idle()
    assert restart is not None
    tag, data = restart
    assert data == f"DONE\r\n{tag} NOOP\r\ni IDLE\r\n".encode()
    assert wire.machine.restart_idle() is None  # never two IDLEs
    wire.from_server(f"i OK done\r\n* 2 EXPUNGE\r\n{tag} OK NOOP\r\n+ idling\r\n".encode())
    assert wire.received() == b"* 2 EXPUNGE\r\n"
    assert wire.machine.own_tags == {}
    assert wire.machine.idling
    assert wire.machine.exists == 2
    wire.from_client(b"DONE\r\n")
    wire.from_server(b"i OK IDLE terminated\r\n")
    assert wire.received() == b"i OK IDLE terminated\r\n"
    assert wire.machine.state is State.SELECTED


def test_own_command_between_client_commands() -> None:
    wire = selected()
    own = wire.machine.own_command("NOOP")
    assert own is not None
    tag, data = own
    assert data == f"{tag} NOOP\r\n".encode()
    assert tag in wire.machine.own_tags
    wire.from_server(f"* 4 EXISTS\r\n{tag} OK NOOP completed\r\n".encode())
    assert wire.received() == b"* 4 EXISTS\r\n"
    assert wire.of(ev.Completed)[-1] == ev.Completed(tag, "OK", None, own=True)
    assert wire.machine.own_tags == {}


def test_no_own_command_while_the_client_authenticates_or_idles() -> None:
    wire = Wire()
    wire.from_client(b"a AUTHENTICATE PLAIN\r\n")
    assert wire.machine.own_command("NOOP") is None
    idle = selected()
    idle.from_client(b"i IDLE\r\n")
    assert idle.machine.own_command("NOOP") is None


def test_selected_only_when_the_server_says_ok() -> None:
    wire = logged_in()
    wire.from_client(b"s SELECT INBOX\r\n")
    assert wire.machine.selected is None
    assert wire.machine.selecting
    wire.from_server(b"* 5 EXISTS\r\n")
    assert wire.machine.selected is None
    wire.from_server(b"s OK [READ-WRITE] selected\r\n")
    assert wire.machine.selected == "INBOX"
    assert not wire.machine.selecting
    assert wire.machine.state is State.SELECTED
    assert wire.of(ev.Selected) == [ev.Selected("INBOX", False, 5)]


def test_a_select_answer_keeps_its_uidnext_and_uidvalidity() -> None:
    wire = selected()
    wire.from_client(b"s SELECT INBOX\r\n")
    wire.from_server(b"* 5 EXISTS\r\n* OK [UIDVALIDITY 3857529045] UIDs valid\r\n")
    wire.from_server(b"* OK [UIDNEXT 4392] Predicted next UID\r\n* OK [UIDNEXT x] odd\r\n")
    wire.from_server(b"s OK [READ-WRITE] selected\r\n")
    assert (wire.machine.uidnext, wire.machine.uidvalidity) == (None, 3857529045)
    wire.from_client(b"t EXAMINE INBOX\r\n")
    assert (wire.machine.uidnext, wire.machine.uidvalidity) == (None, None)  # a new answer
    wire.from_server(b"* OK [UIDNEXT 4392] Predicted next UID\r\nt OK [READ-ONLY] done\r\n")
    assert wire.machine.uidnext == 4392
    wire.from_server(b"* OK [UIDNEXT 9999] not during a SELECT\r\n")
    assert wire.machine.uidnext == 4392


def test_select_failing_from_authenticated_state_stays() -> None:
    wire = logged_in()
    wire.from_client(b"s SELECT Nowhere\r\n")
    wire.from_server(b"s NO [NONEXISTENT] no such mailbox\r\n")
    assert wire.machine.state is State.AUTHENTICATED
    assert wire.machine.selected is None
    assert wire.of(ev.Deselected) == []


def test_select_failing_while_selected_leaves_nothing_selected() -> None:
    wire = selected()
    wire.from_client(b"t EXAMINE Nowhere\r\n")
    wire.from_server(b"t NO no such mailbox\r\n")
    assert wire.machine.state is State.AUTHENTICATED  # RFC 3501 6.3.1
    assert wire.machine.selected is None
    assert wire.machine.exists is None
    assert wire.of(ev.Deselected) == [ev.Deselected("INBOX")]


def test_examine_is_read_only_and_close_deselects() -> None:
    wire = selected()
    wire.from_client(b"e EXAMINE Sent\r\n")
    wire.from_server(b"* 2 EXISTS\r\ne OK [READ-ONLY] done\r\n")
    assert (wire.machine.selected, wire.machine.read_only) == ("Sent", True)
    wire.from_client(b"c CLOSE\r\n")
    wire.from_server(b"c OK closed\r\n")
    assert wire.machine.state is State.AUTHENTICATED
    assert wire.machine.selected is None


def test_select_with_a_literal_mailbox_name() -> None:
    wire = logged_in()
    wire.from_client(b"s SELECT {5+}\r\nINBOX\r\n")
    wire.from_server(b"* 1 EXISTS\r\ns OK done\r\n")
    assert wire.machine.selected == "INBOX"


def test_counts_follow_exists_expunge_and_vanished() -> None:
    wire = selected(exists=10)
    wire.from_server(b"* 3 EXPUNGE\r\n* VANISHED 4:5,9\r\n* VANISHED (EARLIER) 1:2\r\n")
    assert wire.machine.exists == 6
    wire.from_server(b"* 7 EXISTS\r\n")
    assert wire.machine.exists == 7


def test_pipelined_commands_complete_in_any_order() -> None:
    wire = logged_in()
    wire.from_client(b"b SELECT INBOX\r\nc NOOP\r\nd STATUS Sent (MESSAGES)\r\n")
    assert wire.machine.in_flight.keys() == {"b", "c", "d"}
    wire.from_server(b"* 2 EXISTS\r\nb OK done\r\nd OK status\r\n")
    assert wire.machine.in_flight.keys() == {"c"}
    assert wire.machine.selected == "INBOX"
    wire.from_server(b"c OK noop\r\n")
    assert wire.machine.in_flight == {}


@pytest.mark.parametrize(
    "setup",
    [
        lambda: Wire(),
        lambda: logged_in(),
        lambda: selected(),
    ],
)
def test_server_bye_ends_every_state(setup: object) -> None:
    wire = setup()  # type: ignore[operator]
    assert isinstance(wire, Wire)
    wire.from_server(b"* BYE shutting down\r\n")
    assert wire.machine.state is State.LOGOUT
    assert wire.machine.bye == b"* BYE shutting down\r\n"
    assert wire.received() == b"* BYE shutting down\r\n"
    wire.machine.connection_lost()
    assert wire.machine.state is State.CLOSED


def test_server_bye_in_idle_authenticating_and_logging_in() -> None:
    for prefix in (b"a AUTHENTICATE PLAIN\r\n", b"a LOGIN me pw\r\n"):
        wire = Wire()
        wire.from_client(prefix)
        wire.from_server(b"* BYE go away\r\n")
        assert wire.machine.state is State.LOGOUT
    idle = selected()
    idle.from_client(b"i IDLE\r\n")
    idle.from_server(b"+ idling\r\n* BYE autologout\r\n")
    assert idle.machine.state is State.LOGOUT


def test_starttls_refused_without_a_certificate() -> None:
    wire = Wire()
    wire.from_client(b"t STARTTLS\r\n")
    assert wire.sent() == b""
    assert wire.received() == b"t BAD STARTTLS not available: no local certificate\r\n"
    assert wire.machine.state is State.NOT_AUTHENTICATED


def test_starttls_accepted_then_not_offered_again() -> None:
    wire = Wire(ImapSession(offer_starttls=True))
    wire.from_client(b"t STARTTLS\r\n")
    assert wire.of(ev.StartTls) == [ev.StartTls(b"t OK Begin TLS negotiation now\r\n")]
    assert wire.machine.state is State.STARTTLS
    wire.machine.tls_established()
    assert wire.machine.state is State.NOT_AUTHENTICATED
    wire.from_client(b"u STARTTLS\r\n")
    assert wire.received() == b"u BAD STARTTLS not available: TLS is already active\r\n"
    wire.from_server(b"* CAPABILITY IMAP4rev1 STARTTLS COMPRESS=DEFLATE\r\n")
    assert wire.received() == b"* CAPABILITY IMAP4rev1\r\n"


def test_starttls_after_login_is_refused() -> None:
    wire = logged_in(offer_starttls=True)
    wire.from_client(b"t STARTTLS\r\n")
    assert wire.received() == b"t BAD STARTTLS is only valid before login\r\n"


def test_compress_is_answered_no() -> None:
    wire = logged_in()
    wire.from_client(b"z COMPRESS DEFLATE\r\n")
    assert wire.sent() == b""
    assert wire.received() == b"z NO COMPRESS is not offered through commsproxy\r\n"


def test_a_literal_over_the_bound_is_refused_with_toobig() -> None:
    wire = logged_in()
    wire.client_framer = Framer(max_literal=10)
    with pytest.raises(LiteralTooLarge) as caught:
        wire.from_client(b"p APPEND INBOX {11}\r\n")
    assert wire.machine.client_literal_too_large(caught.value)
    assert wire.machine.drain() == [ev.Answer(b"p BAD [TOOBIG] literal of 11 bytes exceeds 10\r\n")]


@pytest.mark.parametrize("tag", [b"\x00e5", b"\xff\xfe", b"a*", b"a+", b"a\\b", b"a%", b"\x7f"])
def test_own_refusals_never_echo_an_invalid_tag(tag: bytes) -> None:
    # Dovecot answers such lines "* BAD Error in IMAP tag"; the proxy's own answers do too,
    # and a STARTTLS with such a tag begins no TLS.
    wire = Wire(ImapSession(offer_starttls=True))
    wire.from_client(tag + b" STARTTLS\r\n")
    assert wire.received() == b"* BAD Error in IMAP tag\r\n"
    assert wire.machine.state is State.NOT_AUTHENTICATED
    wire = logged_in()
    wire.from_client(tag + b" COMPRESS DEFLATE\r\n")
    assert wire.received() == b"* BAD Error in IMAP tag\r\n"
    wire.client_framer = Framer(max_literal=10)
    with pytest.raises(LiteralTooLarge) as caught:
        wire.from_client(tag + b" APPEND INBOX {11}\r\n")
    assert wire.machine.client_literal_too_large(caught.value)
    assert wire.machine.drain() == [ev.Answer(b"* BAD [TOOBIG] literal of 11 bytes exceeds 10\r\n")]


def test_a_command_with_an_invalid_tag_goes_upstream_untracked() -> None:
    wire = logged_in()
    for n in range(3):
        wire.from_client(b"\x01%d SELECT INBOX\r\n" % n)
        wire.from_server(b"* BAD Error in IMAP tag: Invalid tag\r\n")
    assert wire.sent() == b"".join(b"\x01%d SELECT INBOX\r\n" % n for n in range(3))
    assert wire.machine.in_flight == {}  # never answered tagged: nothing waits for good
    assert not wire.machine.selecting
    wire.from_client(b"b SELECT INBOX\r\n")
    wire.from_server(b"* 1 EXISTS\r\nb OK [READ-WRITE] selected\r\n")
    assert wire.machine.selected == "INBOX"


def test_a_tag_of_other_astring_chars_is_echoed() -> None:
    wire = logged_in(offer_starttls=True)
    wire.from_client(b"a.1-b_c~!#$&'/<=>?@^`| STARTTLS\r\n")
    assert wire.received() == b"a.1-b_c~!#$&'/<=>?@^`| BAD STARTTLS is only valid before login\r\n"


# -- the not-authenticated state answered by the proxy (routed logins) ----------------------


def test_routed_login_goes_upstream_through_the_login_steps() -> None:
    wire = Wire(ImapSession(answer_prelogin=True))
    assert wire.machine.greeting().startswith(b"* OK [CAPABILITY ")
    wire.from_client(b"a LOGIN {2}\r\n")
    assert wire.received() == b"+ go ahead\r\n"
    wire.from_client(b"me pw\r\n")
    assert wire.sent() == b""  # nothing goes upstream before the server is chosen
    (connect,) = wire.of(ev.ConnectUpstream)
    assert isinstance(connect, ev.ConnectUpstream)
    assert (connect.login.user, connect.login.secret) == ("me", "pw")
    assert wire.machine.state is State.LOGGING_IN
    steps = ev.LoginSteps((b"a AUTHENTICATE XOAUTH2\r\n", b"dG9rZW4=\r\n"))
    wire.machine.begin_upstream_login(steps)
    wire._take()
    assert wire.sent() == b"a AUTHENTICATE XOAUTH2\r\n"
    wire.from_server(b"+ \r\n")
    assert wire.sent() == b"dG9rZW4=\r\n"
    wire.from_server(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")  # an error challenge: cancelled
    assert wire.sent() == b"*\r\n"
    assert wire.received() == b""  # the proxy's own exchange
    wire.from_server(b"a OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] welcome\r\n")
    assert wire.received() == b"a OK [CAPABILITY IMAP4rev1] welcome\r\n"
    assert wire.machine.state is State.AUTHENTICATED
    assert wire.machine.relaying
    wire.from_client(b"b NOOP\r\n")
    assert wire.sent() == b"b NOOP\r\n"


def test_routed_login_refused_leaves_the_client_free_to_retry() -> None:
    wire = Wire(ImapSession(answer_prelogin=True))
    wire.from_client(b"a AUTHENTICATE PLAIN\r\n")
    assert wire.machine.state is State.AUTHENTICATING
    wire.from_client(plain("who", "pw") + b"\r\n")
    assert wire.machine.state is State.LOGGING_IN
    wire.machine.login_refused(No("no [[login]] for this user", code="AUTHENTICATIONFAILED"))
    wire._take()
    assert wire.received() == (b"+ \r\na NO [AUTHENTICATIONFAILED] no [[login]] for this user\r\n")
    assert wire.machine.state is State.NOT_AUTHENTICATED
    assert wire.machine.in_flight == {}
    wire.from_client(b"n NOOP\r\n")
    assert wire.received() == b"n OK NOOP completed\r\n"


def test_prelogin_logout_hangs_up() -> None:
    wire = Wire(ImapSession(answer_prelogin=True))
    wire.from_client(b"z LOGOUT\r\n")
    assert wire.of(ev.Hangup)
    assert wire.machine.state is State.LOGOUT
