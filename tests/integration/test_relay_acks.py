"""A client with Nagle on that writes a command in pieces is not held up by delayed ACKs.

Such a client (IMAPClient's SEARCH, imaplib's APPEND, a LITERAL+ literal) sends its next piece
only once the first is acknowledged; a relay that delays its ACK while it waits for the rest
adds ~40 ms to every such command. Whole commands are answered, and the answer carries the ACK.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import statistics
import time
from collections.abc import AsyncIterator

import pytest

from commsproxy.endpoints import ListenAddress, parse_endpoint
from commsproxy.proxy.imap.listener import ImapListener, ImapListenerSettings
from tests.testbed.dovecot import Dovecot

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")


@pytest.fixture
async def listener(dovecot: Dovecot) -> AsyncIterator[ImapListener]:
    settings = ImapListenerSettings(
        upstream=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        upstream_tls=ssl.create_default_context(),
        listen=ListenAddress("127.0.0.1", 0),
    )
    listener = ImapListener(settings)
    await listener.start()
    yield listener
    await listener.stop()


async def _answer(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    while not (line := await asyncio.wait_for(reader.readline(), 10)).startswith(tag + b" "):
        assert line, "connection closed"
    return line


async def test_a_command_in_pieces_is_acknowledged_at_once(
    listener: ImapListener, imap_user: tuple[str, str]
) -> None:
    address = listener.addresses[0]
    reader, writer = await asyncio.open_connection(address.host, address.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    await reader.readline()
    writer.write(f"a LOGIN {imap_user[0]} {imap_user[1]}\r\nb SELECT INBOX\r\n".encode())
    await _answer(reader, b"b")
    split, plus = [], []
    for i in range(15):
        start = time.perf_counter()
        writer.write(b"s%d UID SEARCH" % i)  # the line's end comes in a second write
        await asyncio.sleep(0)
        writer.write(b" ALL\r\n")
        assert (await _answer(reader, b"s%d" % i)).startswith(b"s%d OK" % i)
        split.append(time.perf_counter() - start)
        start = time.perf_counter()
        body = b"Subject: piece %d\r\n\r\nbody\r\n" % i
        writer.write(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(body)))  # LITERAL+: no "+" first
        await asyncio.sleep(0)
        writer.write(body + b"\r\n")
        assert (await _answer(reader, b"p%d" % i)).startswith(b"p%d OK" % i)
        plus.append(time.perf_counter() - start)
    writer.close()
    # A delayed ACK costs 40 ms or more each time; allow for a busy machine below that.
    assert statistics.median(split) < 0.02, split
    assert statistics.median(plus) < 0.02, plus
