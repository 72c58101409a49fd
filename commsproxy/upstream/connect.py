"""Opening a link to an IMAP server: TCP, TLS (implicit or STARTTLS), the greeting.

The one place that turns "cannot connect" into words: every failure becomes a
:class:`ConnectError` saying which server and why (unreachable, no answer within n s, the
certificate not trusted, STARTTLS refused...). Certificates are always verified with the
context the caller passes (endpoints.client_tls_context).

Before the client's reader takes over the streams, the greeting and the STARTTLS exchange are
read here one message at a time through the framer, reading no byte past the message's end: the
relay hands these streams on to its own framer, and after ``OK`` to STARTTLS nothing may be read
in clear (bytes there are a STARTTLS injection and are refused).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..endpoints import Endpoint, Security
from ..imap.capability import strip_capability_code
from ..imap.framer import NEED_DATA, Framer, FramingError, Line, MessageEnd
from .errors import ConnectError

__all__ = ["STARTTLS_TAG", "Link", "failures", "open_link", "read_message"]

STARTTLS_TAG = "cp0"
_MAX_SETUP_MESSAGE = 64 * 1024  # a greeting or STARTTLS reply longer than this is not IMAP

Link = tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes | None]


@asynccontextmanager
async def failures(where: str, seconds: float) -> AsyncIterator[None]:
    """Within ``seconds``, with every way of failing said in one line naming ``where``."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise ConnectError(f"{where}: no answer within {seconds:g} s") from None
    except ssl.SSLCertVerificationError as err:
        raise ConnectError(
            f"{where}: TLS certificate not trusted (certificate verify failed: "
            f"{err.verify_message})"
        ) from None
    except ssl.SSLError as err:
        raise ConnectError(f"{where}: TLS failed: {err.reason or err}") from None
    except OSError as err:
        raise ConnectError(f"{where} unreachable: {err.strerror or err}") from None


async def read_message(reader: asyncio.StreamReader, where: str) -> bytes:
    """One whole server message (literals inline), reading exactly up to its end."""
    framer = Framer(
        max_line=_MAX_SETUP_MESSAGE, max_literal=_MAX_SETUP_MESSAGE, max_head=_MAX_SETUP_MESSAGE
    )
    literal = 0
    try:
        while True:
            event = framer.next_event()
            if event is NEED_DATA:
                data = await (reader.readexactly(literal) if literal else reader.readuntil(b"\n"))
                literal = 0
                framer.receive_data(data)
            elif isinstance(event, Line) and event.literal is not None:
                literal = event.literal.size
            elif isinstance(event, MessageEnd):
                return event.head
    except asyncio.IncompleteReadError:
        raise ConnectError(f"{where} closed the connection") from None
    except (asyncio.LimitOverrunError, FramingError):
        raise ConnectError(f"{where} sent a line longer than the stream allows") from None


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """Commands are small and answered at once: never hold one back for Nagle."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def open_link(
    endpoint: Endpoint,
    context: ssl.SSLContext,
    seconds: float,
    *,
    read_greeting: bool = True,
    limit: int = 256 * 1024,
    no_delay: bool = False,
) -> Link:
    """Connect and secure the link; the greeting too unless ``read_greeting`` is False.

    STARTTLS always reads the greeting (it comes in clear, before the upgrade) and returns it
    without its capability list, which TLS makes stale.
    """
    where = f"upstream {endpoint}"
    tls = context if endpoint.security is Security.IMPLICIT_TLS else None
    async with failures(where, seconds):
        reader, writer = await asyncio.open_connection(
            endpoint.host,
            endpoint.port,
            ssl=tls,
            server_hostname=endpoint.host if tls else None,
            limit=limit,
        )
        try:
            if no_delay:
                _no_delay(writer)
            if endpoint.security is not Security.STARTTLS and not read_greeting:
                return reader, writer, None
            greeting = await read_message(reader, where)
            if not greeting.startswith(b"* OK"):  # PREAUTH: not a login we can pass on
                raise ConnectError(f"{where} did not greet with OK: {greeting[:80]!r}")
            if endpoint.security is not Security.STARTTLS:
                return reader, writer, greeting
            await _starttls(reader, writer, context, endpoint.host, where)
            return reader, writer, strip_capability_code(greeting)
        except BaseException:
            writer.close()
            raise


async def _starttls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    host: str,
    where: str,
) -> None:
    writer.write(f"{STARTTLS_TAG} STARTTLS\r\n".encode())
    tag = STARTTLS_TAG.encode() + b" "
    while True:
        try:
            line = await read_message(reader, where)
        except ConnectError:
            raise ConnectError(f"{where} closed the connection during STARTTLS") from None
        if line.startswith(tag):
            break
    if not line[len(tag) :].upper().startswith(b"OK"):
        raise ConnectError(f"{where} refused STARTTLS: {line.strip()[:120]!r}")
    if reader._buffer:  # type: ignore[attr-defined]  # bytes after OK, before TLS: injected
        raise ConnectError(f"{where} sent data in clear after accepting STARTTLS")
    await writer.start_tls(context, server_hostname=host)
