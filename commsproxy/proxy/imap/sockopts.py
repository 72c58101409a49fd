"""TCP options for the relay's sockets, so a command sent in two writes is not held ~40 ms.

Some clients write one command in two pieces without TCP_NODELAY (IMAPClient's SEARCH, imaplib's
APPEND). Their second piece waits (Nagle) until the first is acknowledged, and the proxy, having
nothing to answer yet, delays that acknowledgement. TCP_QUICKACK makes Linux acknowledge at once
(and sends an ACK already due); it is not sticky (the kernel may fall back to delayed ACKs), so
the relay sets it again after each read that left the client in the middle of a message. After
a whole command the client waits for the answer, which carries the ACK: setting it there too
would cost a system call and a bare ACK packet per command for nothing.
TCP_NODELAY on both sockets keeps the proxy itself from doing to others what Nagle does to it.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

__all__ = ["no_delay", "quick_ack"]

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def no_delay(writer: asyncio.StreamWriter) -> Any:
    """TCP_NODELAY on the writer's socket; returns the socket (None for a non-TCP one)."""
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # the peer left already: nothing to tune
        return None
    return sock


def quick_ack(sock: Any) -> None:
    """Acknowledge what was just read at once (the option does not stick: set it each time)."""
    if sock is None or _QUICKACK is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except OSError:  # the peer left: nothing to acknowledge (no contextlib.suppress: per read)
        return
