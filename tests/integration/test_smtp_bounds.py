"""The SMTP side under odd and heavy input, through a real proxy to Dovecot's submission service.

Every refusal is an SMTP reply in words with an enhanced status code (never an exception's name
or text); the null sender ``<>`` is relayed; an over-long command line is answered and the
connection closed at once; big messages are spooled to disk rather than held in memory, and the
bytes in flight at once are capped (``452 4.3.1``) while other sessions go on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from commsproxy.endpoints import Endpoint, ListenAddress, Security
from commsproxy.proxy.smtp.listener import SmtpListener, SmtpListenerSettings
from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

User = tuple[str, str]

# An exception's name or aiosmtpd's rendering of one: never in a reply.
_LEAK = re.compile(r"Error: \(|Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b")
_REPLY = re.compile(r"^(\d{3}) (\d\.\d{1,3}\.\d{1,3}) \S")


class Session:
    """A raw SMTP client on a socket: what goes on the wire is exactly what the test says."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def command(self, line: bytes) -> str:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """Whether the proxy closed the connection within the timeout (a reset counts: what we
        sent and it did not read makes the close a reset)."""
        self.sock.settimeout(10)
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _plain(user: bytes, password: bytes) -> bytes:
    return base64.b64encode(b"\0" + user + b"\0" + password)


def _assert_smtp_refusal(reply: str, code: str) -> None:
    last = reply.splitlines()[-1]
    assert _LEAK.search(reply) is None, reply
    match = _REPLY.match(last)
    assert match is not None, f"not an SMTP reply with an enhanced code: {reply!r}"
    assert match.group(1) == code, reply
    assert match.group(2)[0] == code[0], reply


def test_null_sender_is_relayed_and_received(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    recipient = dovecot.new_user()[0]
    body = message("a delivery report", body="Your message was delivered.\r\n")
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        code, text = smtp.mail("")  # smtplib writes MAIL FROM:<>
        assert code == 250, text
        assert smtp.rcpt(f"{recipient}@localhost")[0] == 250
        assert smtp.data(body)[0] == 250
    deadline = time.monotonic() + 15
    while dovecot.message_count(recipient) < 1:
        assert time.monotonic() < deadline, "the bounce did not arrive"
        time.sleep(0.05)
    relayed = [m for m in dovecot.relay.captured() if m.content.endswith(body)]
    assert len(relayed) == 1
    assert relayed[0].mail_from in ("", "<>")  # the relay target's aiosmtpd says "<>"


def test_every_malformed_input_gets_an_smtp_reply_in_words(
    proxy: ProxyProcess, imap_user: User
) -> None:
    user, password = (s.encode() for s in imap_user)
    session = Session(proxy.smtp_port)
    try:
        assert session.command(b"EHLO test").startswith("250")
        # AUTH whose user name or password is not UTF-8, in both mechanisms.
        _assert_smtp_refusal(session.command(b"AUTH PLAIN " + _plain(b"\xff\xfe", b"pw")), "501")
        _assert_smtp_refusal(session.command(b"AUTH PLAIN " + _plain(user, b"\xc3(")), "501")
        assert session.command(b"AUTH LOGIN").startswith("334")
        assert session.command(base64.b64encode(b"\x80user")).startswith("334")
        _assert_smtp_refusal(session.command(base64.b64encode(b"pw")), "501")
        # Not base64, and base64 that does not split into three parts: aiosmtpd's own replies.
        _assert_smtp_refusal(session.command(b"AUTH PLAIN %%%"), "501")
        _assert_smtp_refusal(session.command(b"AUTH PLAIN " + base64.b64encode(b"x")), "501")
        # A wrong password: the upstream's own 535.
        _assert_smtp_refusal(session.command(b"AUTH PLAIN " + _plain(user, b"wrong")), "535")
        assert session.command(b"AUTH PLAIN " + _plain(user, password)).startswith("235")
        # DATA before RCPT, and with an argument.
        _assert_smtp_refusal(session.command(b"DATA"), "503")
        # An address aiosmtplib cannot write upstream (a control character in it).
        _assert_smtp_refusal(session.command(b"MAIL FROM:<a\x01b@localhost>"), "501")
        assert session.command(b"MAIL FROM:<" + user + b"@localhost>").startswith("250")
        # The null path is for senders only.
        _assert_smtp_refusal(session.command(b"RCPT TO:<>"), "501")
        assert session.command(b"RCPT TO:<" + user + b"@localhost>").startswith("250")
        _assert_smtp_refusal(session.command(b"DATA now"), "501")
        # A message with a line over 1000 bytes: refused after its end, the session goes on.
        assert session.command(b"DATA").startswith("354")
        session.sock.sendall(b"Subject: long\r\n\r\n" + b"x" * 5000 + b"\r\n")
        _assert_smtp_refusal(session.command(b"."), "500")
        assert session.command(b"NOOP").startswith("250")
    finally:
        session.close()


def test_the_refusals_aiosmtpd_makes_itself_carry_enhanced_codes(proxy: ProxyProcess) -> None:
    session = Session(proxy.smtp_port)
    try:
        _assert_smtp_refusal(session.command(b"MAIL FROM:<a@localhost>"), "503")  # before EHLO
        _assert_smtp_refusal(session.command(b"FOO"), "500")
        _assert_smtp_refusal(session.command(b"EHLO"), "501")
        assert session.command(b"EHLO test").startswith("250")
        _assert_smtp_refusal(session.command(b"RCPT TO:<a@localhost>"), "503")  # before MAIL
        _assert_smtp_refusal(session.command(b"MAIL FROM:<a@localhost> BODY=WRONG"), "501")
        _assert_smtp_refusal(session.command(b"MAIL FROM:<a@localhost> SIZE=999999999999"), "552")
        _assert_smtp_refusal(session.command(b"MAIL FROM:<a@@@>"), "553")
        _assert_smtp_refusal(session.command("MAIL FROM:<é@localhost>".encode()), "500")
    finally:
        session.close()


@pytest.mark.parametrize("size", [5_000, 10 << 20], ids=["5000-bytes", "10-MiB-no-CRLF"])
def test_an_over_long_command_line_gets_500_and_the_connection_closed(
    proxy: ProxyProcess, size: int
) -> None:
    session = Session(proxy.smtp_port)
    try:
        assert session.command(b"EHLO test").startswith("250")
        line = b"NOOP " + b"x" * size
        if size < 10_000:
            line += b"\r\n"  # this one ends; the big one never does
        # Closed while we were still sending: the reply is waiting all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            session.sock.sendall(line)
        reply = session.reply()
        _assert_smtp_refusal(reply, "500")
        assert "too long" in reply
        assert session.closed()
    finally:
        session.close()
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        assert smtp.noop()[0] == 250  # the proxy itself goes on


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_big_message_in_flight_is_not_held_in_memory(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    """RSS while 30 MB are inside the proxy stays far below the message's size (a bound that
    cannot flake: held in memory, it was 80 MB for 20 MB)."""
    user, password = imap_user
    recipient = dovecot.new_user()[0]
    line = b"x" * 998 + b"\r\n"
    chunk = line * 1024  # 1 MiB
    before = _rss_kib(proxy.pid)
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=60) as smtp:
        smtp.login(user, password)
        assert smtp.mail(f"{user}@localhost")[0] == 250
        assert smtp.rcpt(f"{recipient}@localhost")[0] == 250
        assert smtp.docmd("DATA")[0] == 354
        smtp.sock.sendall(b"Subject: big\r\nMessage-ID: <big@localhost>\r\n\r\n")
        for _ in range(30):
            smtp.sock.sendall(chunk)
        # All of it is inside the proxy now (waiting for the final dot): measure.
        deadline = time.monotonic() + 30
        while _spooled(proxy.pid) < 29 << 20:  # the last bytes may sit in buffers still
            assert time.monotonic() < deadline, "the message did not go to a spool file"
            time.sleep(0.1)
        grown = _rss_kib(proxy.pid) - before
        assert grown < 15 * 1024, f"RSS grew by {grown} KiB with 30 MiB in flight"
        smtp.sock.sendall(b".\r\n")
        code, text = smtp.getreply()
        assert code == 250, text
    assert _spooled(proxy.pid) == 0  # the spool file is gone with the message


def _spooled(pid: int) -> int:
    """Bytes in the process's open deleted files (the spools)."""
    total = 0
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = str(fd.readlink())
            if target.endswith("(deleted)"):
                total += fd.stat().st_size
        except OSError:
            continue
    return total


# -- the in-flight cap, on a listener in this process ------------------------------------------


@pytest.fixture
async def capped(dovecot: Dovecot) -> AsyncIterator[SmtpListener]:
    """A listener relaying to Dovecot's submission with 3 MiB in flight at most, 2 MiB each."""
    tls = ssl.create_default_context(cafile=str(dovecot.ca_file))
    upstream = Endpoint(
        f"smtp+starttls://localhost:{dovecot.submission_port}",
        "localhost",
        dovecot.submission_port,
        Security.STARTTLS,
    )
    settings = SmtpListenerSettings(
        upstream=upstream,
        upstream_tls=tls,
        listen=ListenAddress("127.0.0.1", 0),
        size_limit=2 << 20,
        max_in_flight=3 << 20,
    )
    listener = SmtpListener(settings)
    await listener.start()
    yield listener
    await listener.stop(grace=1)


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, user: User) -> _Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        await client.reply()
        await client.command(b"EHLO test")
        plain = _plain(user[0].encode(), user[1].encode())
        assert (await client.command(b"AUTH PLAIN " + plain)).startswith("235")
        return client

    async def reply(self) -> str:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 30)
            lines.append(line.decode().rstrip())
            if line[3:4] != b"-":
                return "\n".join(lines)

    async def command(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def start(self, user: str, recipient: str) -> None:
        assert (await self.command(f"MAIL FROM:<{user}@localhost>".encode())).startswith("250")
        assert (await self.command(f"RCPT TO:<{recipient}@localhost>".encode())).startswith("250")
        assert (await self.command(b"DATA")).startswith("354")

    async def body(self, size: int) -> None:
        line = b"y" * 78 + b"\r\n"
        self.writer.write(b"Subject: cap\r\n\r\n" + line * (size // len(line)))
        await self.writer.drain()

    async def finish(self) -> str:
        return await self.command(b".")

    async def close(self) -> None:
        """QUIT, and wait until the proxy has closed its end (and its upstream link)."""
        try:
            await self.command(b"QUIT")
            await asyncio.wait_for(self.reader.read(), 30)
        finally:
            self.writer.close()
            await self.writer.wait_closed()


async def test_the_cap_answers_452_while_other_sessions_go_on(
    capped: SmtpListener, dovecot: Dovecot, imap_user: User
) -> None:
    assert capped.address is not None
    port = capped.address.port
    user = imap_user[0]
    recipient = dovecot.new_user()[0]
    big = await _Client.open(port, imap_user)
    other = await _Client.open(port, imap_user)
    small = await _Client.open(port, imap_user)
    try:
        await big.start(user, recipient)
        await big.body(1800 << 10)  # 1.8 MiB in flight, not finished yet
        while capped.handler.in_flight.used < 1700 << 10:
            await asyncio.sleep(0.01)
        await other.start(user, recipient)
        await other.body(1800 << 10)  # 3.6 MiB in all: over the cap
        _assert_smtp_refusal(await other.finish(), "452")
        # One that says its size up front hears 452 at MAIL, before sending its data.
        _assert_smtp_refusal(await small.command(b"MAIL FROM:<a@localhost> SIZE=1800000"), "452")
        assert (await small.command(b"RSET")).startswith("250")
        await small.start(user, recipient)
        await small.body(100 << 10)  # fits beside the big one
        assert (await small.finish()).startswith("250")
        assert (await big.finish()).startswith("250")
        # After the big one, the refused one goes through when tried again.
        await other.start(user, recipient)
        await other.body(1800 << 10)
        assert (await other.finish()).startswith("250")
    finally:
        for client in (big, other, small):
            await client.close()
    assert capped.handler.in_flight.used == 0
    deadline = time.monotonic() + 15
    while dovecot.message_count(recipient) < 3:
        assert time.monotonic() < deadline, "the accepted messages did not all arrive"
        await asyncio.sleep(0.05)


def test_upstream_refusals_keep_their_own_words(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, tmp_path: Path
) -> None:
    """An upstream that cannot be reached gets 451 4.4.1 in words, without the OS's error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    proxy = make_proxy([
        "--no-triage",
        "--upstream", f"imap://127.0.0.1:{dovecot.imap_port}",
        "--smtp-upstream", f"smtp://127.0.0.1:{dead}",
        "--listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0",
    ])  # fmt: skip
    session = Session(proxy.smtp_port)
    try:
        session.command(b"EHLO test")
        _assert_smtp_refusal(session.command(b"MAIL FROM:<x@localhost>"), "451")
    finally:
        session.close()


async def test_a_client_gone_in_the_middle_of_data_gives_its_bytes_back(
    capped: SmtpListener, dovecot: Dovecot, imap_user: User
) -> None:
    assert capped.address is not None
    recipient = dovecot.new_user()[0]
    client = await _Client.open(capped.address.port, imap_user)
    await client.start(imap_user[0], recipient)
    await client.body(1 << 20)
    while capped.handler.in_flight.used < 900 << 10:
        await asyncio.sleep(0.01)
    client.writer.close()  # gone without the final dot
    await client.writer.wait_closed()
    deadline = time.monotonic() + 10
    while capped.handler.in_flight.used:
        assert time.monotonic() < deadline, "the spool of a vanished client was kept"
        await asyncio.sleep(0.01)
    assert dovecot.message_count(recipient) == 0
