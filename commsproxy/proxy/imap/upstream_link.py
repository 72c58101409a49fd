"""Opening the proxy's own connection to an upstream IMAP server, secured and greeted.

The relay's side of commsproxy/upstream/connect.py: the same connect, TLS, greeting and STARTTLS
code the IMAP client uses, handing back the bare streams because the relay frames them itself.
"""

from __future__ import annotations

import asyncio
import ssl

from ...endpoints import Endpoint
from ...upstream.connect import open_link
from ...upstream.errors import ConnectError

__all__ = ["UpstreamError", "open_upstream"]

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
