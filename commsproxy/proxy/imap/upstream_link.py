"""The proxy's end towards the upstream server: opening it secured and greeted, writing to it.

Opening uses commsproxy/upstream/connect.py, the same connect, TLS, greeting and STARTTLS code
the IMAP client uses, handing back the bare streams because the relay frames them itself.
``ServerLink`` is the relay's counterpart of ``ClientLink``: the upstream writer, the framer
for what the server sends, and where the session is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from ...endpoints import Endpoint
from ...imap.framer import Framer, FramingError, IncompleteMessage
from ...imap.session import UNREAD_RESPONSES
from ...upstream.connect import open_link
from ...upstream.errors import ConnectError
from ..routing import UpstreamServer
from .hooks import RelayLimits
from .sockopts import no_delay

__all__ = ["ServerLink", "UpstreamError", "open_upstream"]

log = logging.getLogger("commsproxy.imap")

_READ_SIZE = 256 * 1024


class UpstreamError(Exception):
    """The upstream server could not be reached or secured; the message says why, in one line."""


async def open_upstream(
    endpoint: Endpoint,
    context: ssl.SSLContext,
    connect_timeout: float,
    *,
    read_greeting: bool = False,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes | None]:
    """Connect to the upstream IMAP server.

    Returns the streams and the greeting if it was read: always for STARTTLS (the caller
    forwards it without its stale capability list), else only with ``read_greeting``. Raises
    UpstreamError with a one-line reason.
    """
    try:
        return await open_link(
            endpoint, context, connect_timeout, read_greeting=read_greeting, limit=_READ_SIZE
        )
    except ConnectError as err:
        raise UpstreamError(str(err)) from None


class ServerLink:
    """One session's upstream connection (none until connected) and the framer reading it."""

    def __init__(self, server: UpstreamServer, limits: RelayLimits) -> None:
        self.server = server
        self.writer: asyncio.StreamWriter | None = None
        self.high_water = 1 << 16  # the writer's buffer mark, past which writes wait (drain)
        self._max_line, self._connect_timeout = limits.max_response_line, limits.connect_timeout
        self.framer = self._framer()

    def _framer(self) -> Framer:
        # Responses are read by their first line only (no heads), and only those the session
        # machine needs: the rest (FETCH data, literals) passes in chunks, unparsed.
        return Framer(max_line=self._max_line, max_head=0, unread=UNREAD_RESPONSES)

    @property
    def endpoint(self) -> Endpoint:
        return self.server.endpoint

    async def connect(
        self, server: UpstreamServer, *, greeting: bool
    ) -> tuple[asyncio.StreamReader, bytes | None]:
        reader, writer, hello = await open_upstream(
            server.endpoint, server.tls, self._connect_timeout, read_greeting=greeting
        )
        self.server, self.writer = server, writer
        self.high_water = writer.transport.get_write_buffer_limits()[1]
        no_delay(writer)
        return reader, hello

    def write(self, *chunks: bytes) -> None:
        if self.writer is not None and chunks:
            self.writer.writelines(chunks)

    def complaint(self, err: FramingError, name: str) -> None:
        """Log why the server's stream cannot be read on (the session then ends)."""
        if isinstance(err, IncompleteMessage):
            log.warning("%s: upstream %s closed the connection mid-response", name, self.endpoint)
        else:
            log.error("%s: upstream %s sent an unframeable stream: %s", name, self.endpoint, err)

    def drop(self) -> None:
        """Close the connection of a refused login and start framing afresh for the next."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.framer = self._framer()

    async def close(self) -> None:
        writer = self.writer
        if writer is None:
            return
        if not writer.is_closing():
            writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(writer.wait_closed(), 5)
