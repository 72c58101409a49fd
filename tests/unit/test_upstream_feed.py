"""The upstream feed hands the server's bytes to the session first, and to the stream otherwise."""

from __future__ import annotations

import asyncio

from commsproxy.proxy.imap.upstream_feed import UpstreamFeed


class FakeRelay:
    def __init__(self, takes: bool, error: Exception | None = None) -> None:
        self.takes, self.error = takes, error
        self.taken: list[bytes] = []
        self.failed: list[Exception] = []
        self.stream_firsts = 0

    def upstream_data(self, data: bytes) -> bool:
        if self.error is not None:
            raise self.error
        if self.takes:
            self.taken.append(data)
        return self.takes

    def upstream_failed(self, err: Exception) -> None:
        self.failed.append(err)

    def stream_first(self) -> None:
        self.stream_firsts += 1


class FakeStream(asyncio.Protocol):
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended: list[str] = []

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.ended.append("eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended.append("lost")


def test_what_the_session_takes_never_reaches_the_stream() -> None:
    relay, stream = FakeRelay(takes=True), FakeStream()
    feed = UpstreamFeed(stream, relay)
    feed.data_received(b"a1 OK done\r\n")
    assert relay.taken == [b"a1 OK done\r\n"]
    assert stream.data == []
    assert relay.stream_firsts == 0


def test_what_the_session_declines_goes_to_the_stream_and_the_stream_comes_first() -> None:
    relay, stream = FakeRelay(takes=False), FakeStream()
    feed = UpstreamFeed(stream, relay)
    feed.data_received(b"* 3 EXISTS\r\n")
    assert stream.data == [b"* 3 EXISTS\r\n"]
    assert relay.stream_firsts == 1  # the session takes nothing more until its pump waits


def test_a_failure_in_the_callback_ends_the_session_and_feeds_nothing() -> None:
    error = RuntimeError("boom")
    relay, stream = FakeRelay(takes=True, error=error), FakeStream()
    UpstreamFeed(stream, relay).data_received(b"x\r\n")
    assert relay.failed == [error]
    assert stream.data == []


def test_the_end_of_the_connection_reaches_the_stream_after_the_session_hears_of_it() -> None:
    relay, stream = FakeRelay(takes=True), FakeStream()
    feed = UpstreamFeed(stream, relay)
    assert feed.eof_received() is False
    feed.connection_lost(None)
    assert stream.ended == ["eof", "lost"]
    assert relay.stream_firsts == 2
