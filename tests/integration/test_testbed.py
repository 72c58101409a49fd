"""Tests of the test bed itself, talking straight to the private Dovecot (no proxy).

If these fail, every proxy test built on the test bed is suspect, so they check the things
those tests rely on: TLS, logins, capabilities, delivery, IDLE, submission, public folders.
"""

from __future__ import annotations

import contextlib
import imaplib
import secrets
import smtplib
import socket
import time
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]

from tests.testbed import dovecot as dovecot_module
from tests.testbed.dovecot import PREMADE_USERS, Dovecot, DovecotError

TIMEOUT = 10.0


def _message(subject: str, *, to: str = "someone@localhost") -> bytes:
    return (
        f"From: sender@example.org\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@commsproxy.test>\r\n\r\nbody of {subject}\r\n"
    ).encode()


def _token() -> str:
    return f"t{secrets.token_hex(6)}"


@pytest.fixture
def imap(dovecot: Dovecot, imap_user: tuple[str, str]) -> Iterator[imaplib.IMAP4]:
    """A logged-in plaintext imaplib session of ``imap_user`` (same user within a test)."""
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT)
    try:
        client.login(*imap_user)
        yield client
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.abort, OSError):
            # Some tests (kick) leave the connection dead; just release the socket.
            with contextlib.suppress(OSError):
                client.shutdown()


# -- logins and TLS ------------------------------------------------------------------------


def test_login_plaintext(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        typ, _ = client.login(*imap_user)
        assert typ == "OK"


def test_login_implicit_tls(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    context = dovecot.client_ssl_context()
    with imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=context, timeout=TIMEOUT
    ) as client:
        typ, _ = client.login(*imap_user)
        assert typ == "OK"
        subject = dict(rdn[0] for rdn in client.sock.getpeercert()["subject"])  # type: ignore[attr-defined]
        assert subject["commonName"] == "localhost"


def test_login_starttls(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl_context=dovecot.client_ssl_context())
        typ, _ = client.login(*imap_user)
        assert typ == "OK"


def test_cert_also_matches_localhost_name(dovecot: Dovecot) -> None:
    # isync and offlineimap3 ignore IP SANs and connect to "localhost" instead.
    context = dovecot.client_ssl_context()
    with (
        socket.create_connection((dovecot.host, dovecot.imaps_port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.recv(4096).startswith(b"* OK")


@pytest.mark.parametrize("user", PREMADE_USERS)
def test_premade_users_log_in(dovecot: Dovecot, user: str) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        typ, _ = client.login(f"{user}@example.org", dovecot.password(user))  # domain ignored
        assert typ == "OK"


def test_failed_login_is_quick_and_leaves_no_penalty(
    dovecot: Dovecot, imap_user: tuple[str, str]
) -> None:
    started = time.monotonic()
    with (
        imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        client.login(imap_user[0], "wrong")
    # auth_failure_delay = 0 leaves only 2.3's 0.5 s failure timer (default: 2 s).
    assert time.monotonic() - started < 1.5

    # With anvil's auth penalty on, this login from the same IP would wait 4 s.
    started = time.monotonic()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        assert client.login(*imap_user)[0] == "OK"
    assert time.monotonic() - started < 1.0


def test_new_users_log_in_immediately(dovecot: Dovecot) -> None:
    for _ in range(3):
        user, password = dovecot.new_user()
        with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
            assert client.login(user, password)[0] == "OK"


def test_users_appended_after_start_work_and_rawlog_records_them() -> None:
    # A pool of one forces new_user() to append to the passwd-file of a running Dovecot.
    with Dovecot(user_pool=1, rawlog=True) as own:
        own.new_user()
        users_at_start = own.users_file.read_text()
        user, password = own.new_user()
        assert f"{user}:" not in users_at_start
        with imaplib.IMAP4(own.host, own.imap_port, timeout=TIMEOUT) as client:
            assert client.login(user, password)[0] == "OK"
            client.noop()
        # The imap process logs each complete input line as it reads it, before replying.
        inputs = b"".join(path.read_bytes() for path in (own.rawlog_dir / user).glob("*.in"))
        assert b"NOOP" in inputs


def test_missing_dovecot_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_module, "_SEARCH_PATH", "/nonexistent")
    with pytest.raises(DovecotError, match="apt-get install dovecot-imapd dovecot-lmtpd"):
        Dovecot()


def test_startup_failure_reports_dovecot_output() -> None:
    class Broken(Dovecot):
        def _render_config(self) -> str:
            return super()._render_config() + "no_such_setting = 1\n"

    broken = Broken()
    with pytest.raises(DovecotError, match="no_such_setting"):
        broken.start()
    assert not broken.root.exists()


# -- capabilities and mailboxes ----------------------------------------------------------


def test_capabilities_after_login(imap: imaplib.IMAP4) -> None:
    typ, data = imap.capability()
    assert typ == "OK"
    capabilities = set(data[0].decode().upper().split())
    expected = {"IDLE", "MOVE", "UIDPLUS", "CONDSTORE", "QRESYNC", "LITERAL+", "NAMESPACE"}
    assert expected | {"SPECIAL-USE", "ACL"} <= capabilities


def test_special_use_mailboxes_exist(imap: imaplib.IMAP4) -> None:
    typ, lines = imap.list()
    assert typ == "OK"
    listing = b"\n".join(line for line in lines if isinstance(line, bytes))
    for flag, name in [("Drafts", "Drafts"), ("Sent", "Sent"), ("Trash", "Trash")]:
        assert f'\\{flag}) "/" {name}'.encode() in listing
    assert b'\\Junk) "/" Junk' in listing


# -- delivery ------------------------------------------------------------------------------


def test_lmtp_delivery_shows_up_in_inbox(
    dovecot: Dovecot, imap_user: tuple[str, str], imap: imaplib.IMAP4
) -> None:
    user = imap_user[0]
    subject = _token()
    dovecot.deliver(user, _message(subject))
    assert dovecot.message_count(user) == 1
    typ, data = imap.select("INBOX", readonly=True)
    assert (typ, data) == ("OK", [b"1"])
    typ, fetched = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    header = fetched[0]
    assert isinstance(header, tuple)
    assert subject.encode() in header[1]


def test_idle_sees_exists_after_delivery(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    user, password = imap_user
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False, timeout=TIMEOUT) as client:
        client.login(user, password)
        client.select_folder("INBOX")
        client.idle()
        dovecot.deliver(user, _message(_token()))
        deadline = time.monotonic() + TIMEOUT
        responses: list[tuple[object, ...]] = []
        while not any(b"EXISTS" in response for response in responses):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no EXISTS during IDLE, got {responses}"
            responses += client.idle_check(timeout=remaining)
        client.idle_done()
        assert (1, b"EXISTS") in responses


def test_kick_disconnects_session(
    dovecot: Dovecot, imap_user: tuple[str, str], imap: imaplib.IMAP4
) -> None:
    dovecot.kick(imap_user[0])
    # The kicked process may still answer one command before its SIGTERM is handled.
    deadline = time.monotonic() + TIMEOUT
    with pytest.raises(imaplib.IMAP4.abort):  # noqa: PT012
        while time.monotonic() < deadline:
            imap.noop()


# -- submission ----------------------------------------------------------------------------


def _submit(dovecot: Dovecot, login: tuple[str, str], rcpt: str, message: bytes) -> None:
    with smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=dovecot.client_ssl_context())
        smtp.ehlo()
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].split())
        smtp.login(*login)
        smtp.sendmail(f"{login[0]}@localhost", [rcpt], message)


def test_submission_relays_and_delivers_locally(
    dovecot: Dovecot, imap_user: tuple[str, str]
) -> None:
    recipient, recipient_password = dovecot.new_user()
    subject = _token()
    _submit(dovecot, imap_user, f"{recipient}@localhost", _message(subject))

    # The relay hands local mail to LMTP before it answers, so it is already there.
    assert dovecot.message_count(recipient) == 1
    assert any(subject.encode() in message for message in dovecot.relay_captured())
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        client.login(recipient, recipient_password)
        client.select("INBOX", readonly=True)
        typ, found = client.search(None, "SUBJECT", subject)
        assert (typ, found) == ("OK", [b"1"])


def test_submission_to_outside_is_captured_only(
    dovecot: Dovecot, imap_user: tuple[str, str]
) -> None:
    subject = _token()
    _submit(dovecot, imap_user, "customer@example.net", _message(subject))
    captured = [m for m in dovecot.relay.captured() if subject.encode() in m.content]
    assert len(captured) == 1
    assert captured[0].rcpt_tos == ("customer@example.net",)


# -- public namespace ----------------------------------------------------------------------


def test_public_root_is_noselect(imap: imaplib.IMAP4) -> None:
    typ, lines = imap.list('""', "Public")
    assert typ == "OK"
    assert isinstance(lines[0], bytes)
    assert b"\\Noselect" in lines[0]
    typ, _ = imap.select("Public")
    assert typ == "NO"


def test_public_folder_is_shared_between_users(dovecot: Dovecot) -> None:
    folder = f"Public/Accounts/Acme-{_token()}"  # unique: the public tree is session-wide
    owner, reader = dovecot.new_user(), dovecot.new_user()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as alice:
        alice.login(*owner)
        assert alice.create(folder)[0] == "OK"

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as bob:
        bob.login(*reader)
        typ, lines = bob.list('""', "Public/Accounts/*")
        assert typ == "OK"
        assert any(folder.encode() in line for line in lines if isinstance(line, bytes))
        assert bob.select(folder) == ("OK", [b"0"])
        typ, _ = bob.append(folder, None, None, _message(_token()))
        assert typ == "OK"

    assert dovecot.message_count(owner[0], folder) == 1


def test_shared_namespace_shows_folders_shared_by_acl(dovecot: Dovecot) -> None:
    owner, reader = dovecot.new_user(), dovecot.new_user()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as alice:
        alice.login(*owner)
        assert alice.create("Proj")[0] == "OK"
        assert alice.setacl("Proj", reader[0], "lr")[0] == "OK"

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as bob:
        bob.login(*reader)
        typ, lines = bob.list('""', "Shared/*")
        assert typ == "OK"
        assert any(f"Shared/{owner[0]}/Proj".encode() in line for line in lines if line)
