"""Misbehaving peers: the proxy survives, other sessions carry on, and the log says what happened.

Every test keeps a second, well-behaved session open across the misbehaviour and checks it
still works afterwards: one client's garbage must never cost another client its mail.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import login, message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args

User = tuple[str, str]


class Raw:
    """A raw client socket speaking IMAP by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def until_tagged(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            if not line:
                raise AssertionError(f"closed before {tag!r} completed: {lines}")
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def login(self, user: User) -> None:
        self.send(f"L LOGIN {user[0]} {user[1]}\r\n".encode())
        assert self.until_tagged(b"L")[-1].startswith(b"L OK")

    def read_to_eof(self) -> bytes:
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def bystander(proxy: ProxyProcess, dovecot: Dovecot) -> Iterator[Callable[[], None]]:
    """A logged-in session with INBOX selected; call it to check it still works."""
    user = dovecot.new_user()
    dovecot.deliver(user[0], message("bystander"))
    conn = login(proxy, dovecot, user)
    conn.select("INBOX")

    def check() -> None:
        assert conn.noop()[0] == "OK"
        typ, data = conn.uid("FETCH", "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert b"bystander" in data[0][1]  # type: ignore[index]

    yield check
    conn.logout()


@pytest.fixture
def raw(proxy: ProxyProcess) -> Iterator[Callable[[], Raw]]:
    opened: list[Raw] = []

    def make() -> Raw:
        opened.append(Raw(proxy.imap_port))
        return opened[-1]

    yield make
    for conn in opened:
        with contextlib.suppress(OSError):
            conn.close()


def test_garbage_lines_are_answered_by_upstream(
    raw: Callable[[], Raw], imap_user: User, bystander: Callable[[], None]
) -> None:
    conn = raw()
    conn.login(imap_user)
    conn.send(b"\x00\xff\xfe not imap at all\r\n")
    assert b"BAD" in conn.line()
    conn.send(b"\r\n")
    assert b"BAD" in conn.line()
    conn.send(b"g1 FROBNICATE (((\r\n")
    assert conn.until_tagged(b"g1")[-1].startswith(b"g1 BAD")
    conn.send(b"g2 SELECT INBOX\r\n")
    assert conn.until_tagged(b"g2")[-1].startswith(b"g2 OK")
    bystander()


@pytest.mark.parametrize(
    ("announce", "sent"),
    [
        # LITERAL+: the bytes follow at once, fewer than announced, then the client is gone.
        (b"s1 APPEND INBOX {5000+}\r\n", b"only a few bytes"),
        # Synchronizing: the client gets "+", sends 1 MB of 5 MB, and disconnects.
        (b"m1 APPEND INBOX {5000000}\r\n", b"x" * 1_000_000),
    ],
    ids=["nonsync-short", "sync-mid-literal"],
)
def test_client_disconnects_inside_a_literal(
    proxy: ProxyProcess,
    dovecot: Dovecot,
    raw: Callable[[], Raw],
    imap_user: User,
    bystander: Callable[[], None],
    announce: bytes,
    sent: bytes,
) -> None:
    pattern = r"client disconnected in the middle of a command"
    before = _count(proxy, pattern)
    conn = raw()
    conn.login(imap_user)
    conn.send(announce)
    if not announce.endswith(b"+}\r\n"):
        assert conn.line().startswith(b"+")
    conn.send(sent)
    conn.close()
    deadline = time.monotonic() + 10
    while _count(proxy, pattern) == before:  # this disconnect, not an earlier test's
        assert time.monotonic() < deadline, "the proxy did not log the disconnect"
        time.sleep(0.05)
    bystander()
    assert dovecot.message_count(imap_user[0]) == 0


def test_line_over_the_bound_gets_bye(
    proxy: ProxyProcess, raw: Callable[[], Raw], imap_user: User, bystander: Callable[[], None]
) -> None:
    conn = raw()
    conn.login(imap_user)
    with contextlib.suppress(OSError):  # the proxy may close while we still send
        conn.send(b"t1 SEARCH " + b"1," * (1 << 20))
    rest = conn.read_to_eof()
    assert re.search(rb"\* BYE command line too long", rest)
    assert proxy.wait_for_log(r"client sent a line over \d+ bytes; closing")
    bystander()


def _count(proxy: ProxyProcess, pattern: str) -> int:
    return sum(1 for line in proxy.lines() if re.search(pattern, line))


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1))


def test_50_mb_literal_is_streamed_not_buffered(
    proxy: ProxyProcess,
    dovecot: Dovecot,
    raw: Callable[[], Raw],
    imap_user: User,
    bystander: Callable[[], None],
) -> None:
    size = 50 * 1024 * 1024
    header = message("big")
    conn = raw()
    conn.login(imap_user)
    before = _rss_kib(proxy.pid)
    conn.send(f"b1 APPEND INBOX {{{size}}}\r\n".encode())
    assert conn.line().startswith(b"+")
    chunk = b"y" * 76 + b"\r\n"
    body = header + chunk * ((size - len(header)) // len(chunk))
    body += b"z" * (size - len(body))
    conn.send(body + b"\r\n")
    assert conn.until_tagged(b"b1")[-1].startswith(b"b1 OK")
    grown_mib = (_rss_kib(proxy.pid) - before) / 1024
    assert grown_mib < 20, f"proxy RSS grew by {grown_mib:.0f} MiB for a 50 MiB literal"
    assert dovecot.message_count(imap_user[0]) == 1
    bystander()


def test_literal_over_the_bound_is_refused_cleanly(
    make_proxy: Callable[..., ProxyProcess],
    dovecot: Dovecot,
    imap_user: User,
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nmax_literal = "1M"\n')
    small = make_proxy([*proxy_args(dovecot), "--config", str(config)])
    conn = Raw(small.imap_port)
    conn.login(imap_user)
    # Synchronizing: the client waits for "+", so a BAD loses nothing and the session goes on.
    conn.send(b"k1 APPEND INBOX {2000000}\r\n")
    assert conn.until_tagged(b"k1")[-1].startswith(b"k1 BAD [TOOBIG]")
    conn.send(b"k2 NOOP\r\n")
    assert conn.until_tagged(b"k2")[-1].startswith(b"k2 OK")
    # Non-synchronizing: the bytes are coming regardless, so the proxy says BYE and closes.
    with contextlib.suppress(OSError):
        conn.send(b"k3 APPEND INBOX {2000000+}\r\n" + b"x" * 100_000)
    assert b"* BYE [TOOBIG]" in conn.read_to_eof()
    conn.close()
    assert small.wait_for_log(r"literal of 2000000 bytes \(limit 1048576\)")
    assert dovecot.message_count(imap_user[0]) == 0


def _imap_pids(dovecot: Dovecot, user: str) -> list[int]:
    """Pids of the user's imap processes, from ``doveadm who -1`` (user proto pid ip)."""
    pids = []
    for row in dovecot.doveadm("who", "-1", user).splitlines()[1:]:
        fields = row.split()
        if len(fields) >= 3 and fields[0] == user and fields[1] == "imap":
            pids.append(int(fields[2]))
    assert all(pid > 1 for pid in pids)
    return pids


def test_upstream_closes_mid_response(
    proxy: ProxyProcess,
    dovecot: Dovecot,
    raw: Callable[[], Raw],
    imap_user: User,
    bystander: Callable[[], None],
) -> None:
    # Larger than all the socket buffers between Dovecot and a client that is not reading,
    # so Dovecot is still sending when it dies.
    big = message("big", body=("w" * 998 + "\r\n") * 30_000)
    dovecot.deliver(imap_user[0], big)
    conn = raw()
    conn.login(imap_user)
    conn.send(b"f0 SELECT INBOX\r\n")
    conn.until_tagged(b"f0")
    conn.send(b"f1 UID FETCH 1 (BODY.PEEK[])\r\n")
    assert conn.line().startswith(b"* 1 FETCH")  # the response has begun
    pids = _imap_pids(dovecot, imap_user[0])
    assert pids, "no imap process found for the user"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    received = conn.read_to_eof()
    assert len(received) < len(big)
    assert b"f1 OK" not in received
    assert proxy.wait_for_log(r"upstream \S+ closed the connection mid-response")
    bystander()


def test_client_vanishing_without_logout(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User, bystander: Callable[[], None]
) -> None:
    conn = login(proxy, dovecot, imap_user)
    conn.select("INBOX")
    conn.sock.close()  # no LOGOUT
    with contextlib.suppress(imaplib.IMAP4.abort, OSError):
        conn.shutdown()
    bystander()
