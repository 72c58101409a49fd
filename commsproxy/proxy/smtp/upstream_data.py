"""DATA towards the upstream, fed from the spool block by block.

aiosmtplib's ``data()`` takes the whole message as bytes (and copies it twice more while
normalising line ends and stuffing dots), which would put every message whole in memory. This
does the same exchange on aiosmtplib's connection: ``DATA``, the ``354``, the dot-stuffed blocks
written with the transport's flow control, the final ``.``, and the server's reply.

It uses aiosmtplib's protocol object (``write``, the drain helper, ``read_response``, the
command lock and the flag that a reply is expected) as ``execute_data_command`` does; a link
without them falls back to ``data()`` with the message read whole (at most the in-flight cap).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Protocol

import aiosmtplib

from .spool import dot_stuffed

__all__ = ["Message", "drop_link", "send_data"]


class Message(Protocol):
    """What is sent: a Spool, or a spool with its header rewritten (header_rewrite.py)."""

    size: int

    def blocks(self) -> Iterator[bytes]: ...

    def read_all(self) -> bytes: ...


_START_INPUT = 354
_COMPLETED = 250


_USED = ("write", "_drain_helper", "read_response", "_command_lock", "_response_pending")


def drop_link(link: aiosmtplib.SMTP) -> None:
    """Close ``link`` at once, without waiting for what is still to be written.

    A plain ``close()`` first writes out what the transport still holds: half a message to an
    upstream that has stopped reading would keep the link open for good.
    """
    if isinstance(link.transport, asyncio.WriteTransport):
        link.transport.abort()
    link.close()


def _streamable(protocol: Any) -> bool:
    return all(hasattr(protocol, name) for name in _USED)


async def send_data(link: aiosmtplib.SMTP, spool: Message) -> aiosmtplib.SMTPResponse:
    """Send ``spool`` as the message of the current transaction; the server's final reply.

    Raises SMTPDataError when the server refuses (at ``DATA`` or after the data),
    SMTPServerDisconnected or SMTPTimeoutError when the link fails (the link is closed then).
    """
    protocol = link.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    if not _streamable(protocol):
        return await link.data(spool.read_all())
    start = await link.execute_command(b"DATA")
    if start.code != _START_INPUT:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    timeout = link.timeout
    lock = protocol._command_lock
    if lock is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        async with lock:
            protocol._response_pending = True  # a reply that comes early is kept, not dropped
            for block in dot_stuffed(spool.blocks()):
                protocol.write(block)
                await protocol._drain_helper()
            protocol.write(b".\r\n")
            response = await protocol.read_response(timeout=timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError):
        drop_link(link)  # half a message went: the link cannot be used again
        raise
    if response.code != _COMPLETED:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response
