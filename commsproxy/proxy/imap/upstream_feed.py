"""The upstream transport's protocol while relaying: the server's bytes go to the session first.

The counterpart of client_feed.py. A reply through a stream reader costs a task switch: the
bytes wake the upstream pump, which frames them in its next turn. With ``UpstreamFeed``
installed, the session takes what the server sends in the transport's own callback while its
pump waits with nothing left to write (``UpstreamRelay.upstream_data``), with the same code
the pump runs, so a reply wakes no task. When the session declines (its pump is busy, the
client link is being secured or is slow, the session is closing), the bytes go to the stream
and its pump instead, and so does everything after them until the pump waits again
(``stream_first``), so nothing is ever relayed out of order.

Flow control and the end of the connection still reach the stream's protocol, which the
upstream writer (its ``drain``) and the pump's reads rely on.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["UpstreamFeed", "UpstreamRelay"]


class UpstreamRelay(Protocol):
    """The session side of the feed (relay.py's ``Session``)."""

    def upstream_data(self, data: bytes) -> bool:
        """Relay ``data`` now, as the waiting pump would; False to leave it to the stream."""

    def upstream_failed(self, err: Exception) -> None:
        """What relaying in the callback raised: the session ends as when its pump fails."""

    def stream_first(self) -> None:
        """From now on the stream holds what comes first: take nothing until the pump waits."""


class UpstreamFeed(asyncio.Protocol):
    """Installed by the session on the upstream transport in place of its stream's protocol."""

    __slots__ = ("_relay", "stream")

    def __init__(self, stream: asyncio.BaseProtocol, relay: UpstreamRelay) -> None:
        assert isinstance(stream, asyncio.Protocol)
        self.stream, self._relay = stream, relay

    def data_received(self, data: bytes) -> None:
        relay = self._relay
        try:
            taken = relay.upstream_data(data)
        except Exception as err:  # the session ends as when its pump fails
            relay.upstream_failed(err)
            return
        if not taken:
            relay.stream_first()
            self.stream.data_received(data)

    def eof_received(self) -> bool | None:
        self._relay.stream_first()
        return self.stream.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.stream_first()
        self.stream.connection_lost(exc)

    def pause_writing(self) -> None:
        self.stream.pause_writing()

    def resume_writing(self) -> None:
        self.stream.resume_writing()
