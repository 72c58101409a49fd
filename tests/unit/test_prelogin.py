"""prelogin.py: the not-authenticated state the proxy answers itself when logins are routed."""

from __future__ import annotations

import base64

import pytest

from commsproxy.imap.framer import Framer, Line, MessageEnd
from commsproxy.imap.prelogin import (
    MAX_LITERAL,
    Local,
    PreLogin,
    Reply,
    Route,
    login_segments,
)


def run(phase: PreLogin, data: bytes) -> list[Reply | Local | Route]:
    """Feed client bytes through a framer, as the relay does; every non-None action."""
    framer = Framer()
    framer.receive_data(data)
    actions: list[Reply | Local | Route] = []
    for event in framer.events():
        action = None
        if isinstance(event, Line):
            action = phase.line(event)
        elif isinstance(event, MessageEnd):
            action = phase.message(event.head, event.truncated)
        if action is not None:
            actions.append(action)
    return actions


def replies(actions: list[Reply | Local | Route]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Reply))


def test_greeting_and_capability_offer_starttls_only_when_asked() -> None:
    plain, tls = PreLogin(offer_starttls=True), PreLogin(offer_starttls=False)
    assert plain.greeting().startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert b"STARTTLS" in plain.greeting()
    assert b"STARTTLS" not in tls.greeting()
    answer = replies(run(tls, b"a CAPABILITY\r\n"))
    assert answer.startswith(b"* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN\r\n")
    assert answer.endswith(b"a OK CAPABILITY completed\r\n")


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"n1 NOOP\r\n", b"n1 OK NOOP completed\r\n"),
        (b'i1 ID ("name" "Thunderbird")\r\n', b"* ID NIL\r\ni1 OK ID completed\r\n"),
        (b"s1 SELECT INBOX\r\n", b"s1 BAD SELECT is not valid before LOGIN\r\n"),
        (b"x1 LOGIN onlyuser\r\n", b"x1 BAD LOGIN expects a user name and a password\r\n"),
        (b"not a command at all\r\n", b"not BAD A is not valid before LOGIN\r\n"),
        (b"\r\n", b"* BAD commsproxy: that is not an IMAP command\r\n"),
    ],
)
def test_commands_before_login(command: bytes, answer: bytes) -> None:
    assert replies(run(PreLogin(offer_starttls=False), command)) == answer


def test_logout_closes() -> None:
    (reply,) = run(PreLogin(offer_starttls=False), b"z LOGOUT\r\n")
    assert isinstance(reply, Reply)
    assert reply.close
    assert reply.data == b"* BYE commsproxy logging out\r\nz OK LOGOUT completed\r\n"


def test_starttls_and_compress_are_the_relays() -> None:
    phase = PreLogin(offer_starttls=True, local=frozenset({"STARTTLS", "COMPRESS"}))
    actions = run(phase, b"t STARTTLS\r\nc COMPRESS DEFLATE\r\n")
    assert [a.command.name for a in actions if isinstance(a, Local)] == ["STARTTLS", "COMPRESS"]


@pytest.mark.parametrize(
    "data",
    [b"\x00a CAPABILITY\r\n", b"a+ NOOP\r\n", b"\xff LOGIN me pw\r\n", b"x% STARTTLS\r\n"],
)
def test_a_command_with_an_invalid_tag_is_refused_untagged(data: bytes) -> None:
    phase = PreLogin(offer_starttls=True, local=frozenset({"STARTTLS"}))
    assert run(phase, data) == [Reply(b"* BAD Error in IMAP tag\r\n")]


def test_an_oversized_literal_with_an_invalid_tag_is_refused_untagged() -> None:
    refused = run(PreLogin(offer_starttls=False), b"\xfe LOGIN {%d}\r\n" % (MAX_LITERAL + 1))
    assert refused == [
        Reply(b"* BAD literal of 8193 bytes before login (limit 8192)\r\n", cancel_literal=True)
    ]


def test_login_with_quoted_strings() -> None:
    (route,) = run(PreLogin(offer_starttls=False), b'a1 LOGIN "me@b.example" "p\\"w"\r\n')
    assert isinstance(route, Route)
    assert (route.tag, route.user, route.password) == ("a1", "me@b.example", 'p"w')
    assert route.upstream == (b'a1 LOGIN "me@b.example" "p\\"w"\r\n',)
    assert "p\\" not in repr(route)  # the password never shows in logs or tracebacks


def test_login_with_literals_invites_them_and_routes() -> None:
    phase = PreLogin(offer_starttls=False)
    password = "pässwörd".encode()
    data = b"a2 LOGIN {12}\r\nme@b.example {%d}\r\n%s\r\n" % (len(password), password)
    actions = run(phase, data)
    assert [a for a in actions if isinstance(a, Reply)] == [Reply(b"+ go ahead\r\n")] * 2
    route = actions[-1]
    assert isinstance(route, Route)
    assert (route.user, route.password) == ("me@b.example", "pässwörd")
    # Quoted where it can be, a synchronizing literal for the 8-bit password.
    assert route.upstream == (b'a2 LOGIN "me@b.example" {10}\r\n', password + b"\r\n")


def test_non_synchronizing_literal_gets_no_invitation() -> None:
    actions = run(PreLogin(offer_starttls=False), b"a3 LOGIN {5+}\r\nalice secret\r\n")
    assert len(actions) == 1
    assert isinstance(actions[0], Route)
    assert actions[0].user == "alice"


def test_oversized_literal_before_login() -> None:
    phase = PreLogin(offer_starttls=False)
    refused = run(phase, b"a4 LOGIN {%d}\r\n" % (MAX_LITERAL + 1))
    assert refused == [
        Reply(b"a4 BAD literal of 8193 bytes before login (limit 8192)\r\n", cancel_literal=True)
    ]
    (closing,) = run(phase, b"a5 LOGIN {%d+}\r\n" % (MAX_LITERAL + 1))
    assert isinstance(closing, Reply)
    assert closing.close
    assert closing.data.startswith(b"* BYE ")


def plain(authz: str, user: str, password: str) -> bytes:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode())


def test_authenticate_plain_with_and_without_initial_response() -> None:
    token = plain("", "me@b.example", "secret")
    (ir,) = run(PreLogin(offer_starttls=False), b"b1 AUTHENTICATE PLAIN " + token + b"\r\n")
    assert isinstance(ir, Route)
    assert (ir.user, ir.password) == ("me@b.example", "secret")
    assert ir.upstream == (b"b1 AUTHENTICATE PLAIN\r\n", token + b"\r\n")

    phase = PreLogin(offer_starttls=False)
    challenge, route = run(phase, b"b2 AUTHENTICATE PLAIN\r\n" + token + b"\r\n")
    assert challenge == Reply(b"+ \r\n")
    assert isinstance(route, Route)
    assert route.tag == "b2"
    assert route.user == "me@b.example"


def test_authenticate_plain_routes_by_authorization_identity() -> None:
    token = plain("shared@b.example", "admin", "secret")
    (route,) = run(PreLogin(offer_starttls=False), b"b3 AUTHENTICATE PLAIN " + token + b"\r\n")
    assert isinstance(route, Route)
    assert route.user == "shared@b.example"


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"c1 AUTHENTICATE PLAIN\r\n*\r\n", b"+ \r\nc1 BAD AUTHENTICATE cancelled\r\n"),
        (
            b"c2 AUTHENTICATE PLAIN\r\n!!!\r\n",
            b"+ \r\nc2 BAD that is not a SASL PLAIN response\r\n",
        ),
        (b"c3 AUTHENTICATE PLAIN =\r\n", b"c3 BAD that is not a SASL PLAIN response\r\n"),
        (
            b"c4 AUTHENTICATE CRAM-MD5\r\n",
            b"c4 NO [CANNOT] commsproxy needs the user name first: use LOGIN or "
            b"AUTHENTICATE PLAIN\r\n",
        ),
    ],
)
def test_authenticate_refusals(data: bytes, answer: bytes) -> None:
    assert replies(run(PreLogin(offer_starttls=False), data)) == answer


def test_login_segments() -> None:
    assert login_segments("t", b"a\\b", b"") == (b't LOGIN "a\\\\b" ""\r\n',)
    assert login_segments("t", b"line\nbreak", b"pw") == (
        b"t LOGIN {10}\r\n",
        b'line\nbreak "pw"\r\n',
    )
