"""Everyday IMAP through the proxy, with imaplib and IMAPClient, against the real Dovecot.

Each test is what a mail client does all day: list folders, open INBOX, read headers and
bodies, flag, move, append, search, delete, and wait in IDLE for new mail. The proxy must be
invisible: the same answers as Dovecot gives directly, in plain, STARTTLS and implicit TLS.
"""

from __future__ import annotations

import imaplib
import re
import socket
import time

import pytest
from imapclient import IMAPClient

from tests.integration.helpers import MODES, client_context, connect, login, message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

User = tuple[str, str]


@pytest.mark.parametrize("mode", MODES)
def test_everyday_session(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User, mode: str
) -> None:
    first, second = message("first"), message("second", body="x" * 200_000 + "\r\n")
    dovecot.deliver(imap_user[0], first)
    dovecot.deliver(imap_user[0], second)
    conn = login(proxy, dovecot, imap_user, mode)
    try:
        typ, folders = conn.list()
        assert typ == "OK"
        names = b"\n".join(f for f in folders if isinstance(f, bytes))
        assert b"INBOX" in names
        assert b"Sent" in names

        typ, data = conn.select("INBOX")
        assert (typ, data) == ("OK", [b"2"])

        typ, data = conn.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        headers = [part[1] for part in data if isinstance(part, tuple)]
        assert headers == [b"Subject: first\r\n\r\n", b"Subject: second\r\n\r\n"]

        typ, data = conn.uid("FETCH", "2", "(BODY.PEEK[])")
        body = data[0][1]  # type: ignore[index]
        assert isinstance(body, bytes)
        assert body.endswith(second)  # Dovecot prepends its trace headers only

        typ, _ = conn.uid("STORE", "1", "+FLAGS", r"(\Flagged $Important)")
        assert typ == "OK"
        typ, data = conn.uid("FETCH", "1", "(FLAGS)")
        flags = data[0]
        assert isinstance(flags, bytes)
        assert b"\\Flagged" in flags
        assert b"$Important" in flags

        typ, data = conn.uid("SEARCH", None, "SUBJECT", "second")
        assert data == [b"2"]

        conn.create("Archive")
        typ, data = conn.uid("MOVE", "1", "Archive")
        assert typ == "OK"
        assert dovecot.message_count(imap_user[0], "Archive") == 1

        appended = message("appended")
        typ, data = conn.append("INBOX", r"(\Seen)", None, appended)
        assert typ == "OK"
        assert re.search(rb"APPENDUID \d+ \d+", data[0] or b"")

        typ, data = conn.search(None, "ALL")
        assert typ == "OK"
        assert len(data[0].split()) == 2  # type: ignore[union-attr]

        conn.store("1", "+FLAGS", r"\Deleted")
        typ, data = conn.expunge()
        assert typ == "OK"
        assert dovecot.message_count(imap_user[0]) == 1
    finally:
        conn.logout()


def test_imapclient_session(proxy: ProxyProcess, dovecot: Dovecot, imap_user: User) -> None:
    dovecot.deliver(imap_user[0], message("one"))
    with IMAPClient("127.0.0.1", port=proxy.imap_port, ssl=False, timeout=30) as client:
        client.starttls(client_context(dovecot))
        client.login(*imap_user)
        assert b"MOVE" in client.capabilities()
        assert b"COMPRESS=DEFLATE" not in client.capabilities()
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 1
        uids = client.search(["SUBJECT", "one"])
        fetched = client.fetch(uids, ["ENVELOPE", "RFC822.SIZE", "BODY.PEEK[TEXT]"])
        (data,) = fetched.values()
        assert data[b"ENVELOPE"].subject == b"one"
        assert data[b"BODY[TEXT]"] == b"Hello from the test suite.\r\n"
        client.add_flags(uids, [b"\\Seen"])
        client.create_folder("Projects/Acme")
        client.move(uids, "Projects/Acme")
        assert client.folder_status("Projects/Acme", [b"MESSAGES"])[b"MESSAGES"] == 1
        # Non-ASCII folder names travel as modified UTF-7 both ways.
        client.create_folder("Kunden/Müller")
        assert any(name == "Kunden/Müller" for _, _, name in client.list_folders())
        client.logout()


def test_append_with_synchronizing_and_nonsync_literals(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    """APPEND with a {n} literal waits for '+'; with {n+} it does not (LITERAL+)."""
    with socket.create_connection(("127.0.0.1", proxy.imap_port), timeout=30) as sock:
        stream = sock.makefile("rwb", buffering=0)
        assert stream.readline().startswith(b"* OK")
        user, password = imap_user
        stream.write(f"a1 LOGIN {{{len(user)}}}\r\n".encode())
        assert stream.readline().startswith(b"+")
        stream.write(f"{user} {{{len(password)}+}}\r\n{password}\r\n".encode())
        assert _tagged(stream, b"a1").startswith(b"a1 OK")

        body = message("sync literal")
        stream.write(f"a2 APPEND INBOX {{{len(body)}}}\r\n".encode())
        assert stream.readline().startswith(b"+")
        stream.write(body + b"\r\n")
        assert _tagged(stream, b"a2").startswith(b"a2 OK")

        body = message("nonsync literal")
        stream.write(f"a3 APPEND INBOX (\\Seen) {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
        assert _tagged(stream, b"a3").startswith(b"a3 OK")

        # A refused synchronizing literal: Dovecot answers NO instead of '+', the client never
        # sends the literal, and the next command must still be read as a command.
        stream.write(b"a4 APPEND NoSuchFolder {10}\r\n")
        assert _tagged(stream, b"a4").startswith(b"a4 NO")
        stream.write(b"a5 NOOP\r\n")
        assert _tagged(stream, b"a5").startswith(b"a5 OK")
        stream.write(b"a6 LOGOUT\r\n")
        assert _tagged(stream, b"a6").startswith(b"a6 OK")
    assert dovecot.message_count(user) == 2
    assert proxy.wait_for_log(rf"logged in as {user}\b")  # the user name came as a literal


def _tagged(stream: socket.SocketIO, tag: bytes) -> bytes:  # type: ignore[name-defined]
    while True:
        line: bytes = stream.readline()
        if not line:
            raise AssertionError(f"connection closed before {tag!r} completed")
        if line.startswith(tag + b" "):
            return line


def test_idle_receives_delivery(proxy: ProxyProcess, dovecot: Dovecot, imap_user: User) -> None:
    with IMAPClient("127.0.0.1", port=proxy.imap_port, ssl=False, timeout=30) as client:
        client.login(*imap_user)
        client.select_folder("INBOX")
        client.idle()
        dovecot.deliver(imap_user[0], message("pushed"))
        responses: list[tuple[object, ...]] = []
        deadline = time.monotonic() + 15
        while not any(r[1:] == (b"EXISTS",) for r in responses):
            assert time.monotonic() < deadline, f"no EXISTS in IDLE: {responses}"
            responses += client.idle_check(timeout=1)
        assert (1, b"EXISTS") in responses
        client.idle_done()
        assert client.search(["SUBJECT", "pushed"]) == [1]


def test_authenticate_plain_and_session_state_logged(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    conn = connect(proxy, dovecot)
    conn.authenticate("PLAIN", lambda _: f"\0{imap_user[0]}\0{imap_user[1]}".encode())
    conn.select("INBOX")
    conn.logout()
    assert proxy.wait_for_log(rf"logged in as {imap_user[0]}\b")
    assert imap_user[1] not in proxy.log_text()


def test_wrong_password_is_refused_by_upstream(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    conn = connect(proxy, dovecot)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(imap_user[0], "wrong-password")
    conn.logout()
    assert "wrong-password" not in proxy.log_text()


def test_compress_is_neither_advertised_nor_accepted(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    conn = login(proxy, dovecot, imap_user)
    assert not any(cap.startswith("COMPRESS") for cap in conn.capabilities)
    typ, _ = conn.xatom("COMPRESS", "DEFLATE")
    assert typ == "NO"
    assert conn.noop()[0] == "OK"
    conn.logout()


def test_starttls_offered_only_before_tls(proxy: ProxyProcess, dovecot: Dovecot) -> None:
    plain = connect(proxy, dovecot)
    assert "STARTTLS" in plain.capabilities
    plain.starttls(client_context(dovecot))
    plain.capabilities = plain.capability()[1][0].split()  # type: ignore[union-attr]
    assert b"STARTTLS" not in plain.capabilities
    plain.logout()
