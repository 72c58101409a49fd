"""The client transport's protocol while relaying: the client's bytes go straight to the framer.

A command through a stream reader costs a task switch: the bytes wake the client pump, which
frames them in its next turn. With ``ClientFeed`` installed the bytes go into the session's
framer in the transport's own callback, and while the pump waits with nothing left to do the
session relays them there and then (``Relay.client_data``), with the same code the pump runs:
most commands (NOOP, FETCH, SELECT, IDLE and DONE) go upstream without the pump waking up.
Whatever must be waited for -- a hook (the gate asking triage), an answer of the proxy's own,
STARTTLS, a login routed to its server, an error -- is handed to the pump as a ``Handoff``.

Flow control and the end of the connection still reach the stream's protocol, which the
client's writer (its ``drain``) and ``ClientLink.linger`` rely on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from ...imap import session_events as ev
from ...imap.framer import FramingError

__all__ = ["ClientFeed", "Handoff", "Relay"]


@dataclass(slots=True)
class Handoff:
    """What the transport callback left for the pump: ``out`` for upstream, and then one of a
    hook's wait (its line goes after it), events to act on, or the framer's error."""

    out: list[bytes] = field(default_factory=list)
    waiting: Awaitable[object] | None = None
    line: bytes = b""
    events: list[ev.Event] | None = None
    error: FramingError | None = None


class Relay(Protocol):
    """The session side of the feed (relay.py's ``Session``)."""

    def client_data(self, data: bytes) -> None: ...

    def client_ended(self, exc: Exception | None) -> None:
        """The client closed its side (None) or the connection broke (``exc``)."""


class ClientFeed(asyncio.Protocol):
    """Installed by the session on the client transport in place of its stream's protocol."""

    __slots__ = ("_relay", "stream")

    def __init__(self, stream: asyncio.BaseProtocol, relay: Relay) -> None:
        assert isinstance(stream, asyncio.Protocol)
        self.stream, self._relay = stream, relay

    def data_received(self, data: bytes) -> None:
        self._relay.client_data(data)

    def eof_received(self) -> bool | None:
        self._relay.client_ended(None)
        return self.stream.eof_received()  # the stream says whether to keep writing (not TLS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.client_ended(exc)
        self.stream.connection_lost(exc)

    def pause_writing(self) -> None:
        self.stream.pause_writing()

    def resume_writing(self) -> None:
        self.stream.resume_writing()
