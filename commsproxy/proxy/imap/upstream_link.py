"""Opening the proxy's own connection to an upstream IMAP server, secured and greeted."""

from __future__ import annotations

import asyncio
import ssl

from ...endpoints import Endpoint, Security
from ...imap.capability import strip_capability_code

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
    where = f"upstream {endpoint}"
    tls = context if endpoint.security is Security.IMPLICIT_TLS else None
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=tls,
                server_hostname=endpoint.host if tls else None,
                limit=_READ_SIZE,
            )
            if endpoint.security is not Security.STARTTLS and not read_greeting:
                return reader, writer, None
            greeting = await reader.readline()
            if not greeting.startswith(b"* OK"):
                writer.close()
                raise UpstreamError(f"{where} did not greet with OK: {greeting[:80]!r}")
            if endpoint.security is not Security.STARTTLS:
                return reader, writer, greeting
            writer.write(b"cp0 STARTTLS\r\n")
            while True:
                line = await reader.readline()
                if not line:
                    raise UpstreamError(f"{where} closed the connection during STARTTLS")
                if line.startswith(b"cp0 "):
                    break
            if not line.startswith(b"cp0 OK"):
                writer.close()
                raise UpstreamError(f"{where} refused STARTTLS: {line.strip()[:120]!r}")
            await writer.start_tls(context, server_hostname=endpoint.host)
            return reader, writer, strip_capability_code(greeting)
    except TimeoutError:
        raise UpstreamError(f"{where}: no answer within {connect_timeout:g} s") from None
    except ssl.SSLCertVerificationError as err:
        raise UpstreamError(f"{where}: TLS certificate not trusted: {err.verify_message}") from None
    except ssl.SSLError as err:
        raise UpstreamError(f"{where}: TLS failed: {err.reason or err}") from None
    except OSError as err:
        raise UpstreamError(f"{where} unreachable: {err.strerror or err}") from None
