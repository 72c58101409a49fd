"""The client's end of a relayed session: reading, writing, securing and closing it politely."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from ...imap.framer import FramingError, IncompleteMessage, LineTooLong
from .sockopts import no_delay, quick_ack

__all__ = ["ClientLink"]

log = logging.getLogger("commsproxy.imap")

_READ_SIZE = 256 * 1024


class ClientLink:
    """One client connection's streams, with what the relay counts and when it may write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._socket = no_delay(writer)
        self.tls = writer.get_extra_info("sslcontext") is not None
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.bytes_in = self.bytes_out = 0
        # Set while TLS is being negotiated (a future, not an Event: an Event's deque of
        # waiters costs every idle connection 600 bytes).
        self._tls_pending: asyncio.Future[None] | None = None
        self._eof_sent = False  # by ``linger``: nothing more may be written after it
        self._high_water = writer.transport.get_write_buffer_limits()[1]

    async def read(self) -> bytes:
        data = await self.reader.read(_READ_SIZE)
        self.bytes_in += len(data)
        return data

    def reading(self, on: bool) -> None:
        """Resume (or pause) reading the client's socket: flow control for ``ClientFeed``."""
        transport = self.writer.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.resume_reading() if on else transport.pause_reading()

    def quick_ack(self) -> None:
        """Acknowledge what was read at once: the client is mid-message (see sockopts.py)."""
        quick_ack(self._socket)

    @property
    def writable(self) -> bool:
        """False once the session said its last word (EOF sent) or the link is closing: what
        the upstream still sends then (its greeting, a late reply) is dropped."""
        return not self._eof_sent and not self.writer.is_closing()

    async def write(self, chunks: list[bytes]) -> None:
        if self._tls_pending is not None:
            await asyncio.shield(self._tls_pending)
        if not self.writable:
            return
        self.writer.writelines(chunks)
        self.bytes_out += sum(map(len, chunks))
        await self.writer.drain()

    @property
    def ready_now(self) -> bool:
        """Writes may go out at once: TLS is not being negotiated."""
        return self._tls_pending is None

    def write_nowait(self, chunks: list[bytes]) -> bool:
        """Write without waiting; False when the client's buffer is past its high mark, so
        that the next write waits for it (``write``)."""
        transport = self.writer.transport
        if self._eof_sent or transport.is_closing():  # not ``writable``
            return True
        data = b"".join(chunks)  # what ``writelines`` does, a call less (the reply path)
        transport.write(data)
        self.bytes_out += len(data)
        return transport.get_write_buffer_size() <= self._high_water

    def write_now(self, data: bytes) -> None:
        if self.writable:
            self.writer.write(data)

    async def start_tls(self, context: ssl.SSLContext, reply: bytes, name: str) -> bool:
        """Write ``reply`` (the OK to STARTTLS) and negotiate; False (logged) when it failed."""
        pending = self._tls_pending = asyncio.get_running_loop().create_future()
        try:
            self.writer.write(reply)
            await self.writer.drain()
            await self.writer.start_tls(context)
        except (ssl.SSLError, OSError) as err:
            log.warning("%s: client TLS handshake failed: %s", name, err)
            return False
        finally:
            self._tls_pending = None
            pending.set_result(None)
        self.tls = True
        log.info("%s: client link now TLS", name)
        return True

    def complaint(self, err: FramingError, name: str) -> str | None:
        """Log why the client's stream cannot be read on; the BYE reason, if one is owed."""
        if isinstance(err, LineTooLong):
            log.warning("%s: client sent a line over %d bytes; closing", name, err.limit)
            return f"command line too long (limit {err.limit} bytes)"
        if isinstance(err, IncompleteMessage):
            log.warning("%s: client disconnected in the middle of a command", name)
            return None
        log.warning("%s: client stream error: %s", name, err)
        return str(err)

    async def linger(self, seconds: float = 2.0) -> None:
        """Read and drop what the client is still sending, briefly, before closing.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the BYE before the client reads it; a short lingering read lets the reason arrive.
        """
        writer = self.writer
        if writer.is_closing():
            return
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
                self._eof_sent = True
            async with asyncio.timeout(seconds):
                while await self.reader.read(_READ_SIZE):
                    pass

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 5)
