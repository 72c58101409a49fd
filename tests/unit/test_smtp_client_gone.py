"""A client going away is the client's business: no ERROR, no traceback, no reply to nobody."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from aiosmtpd.smtp import SMTP, Session, TLSSetupException

from commsproxy.endpoints import Endpoint, Security
from commsproxy.proxy.smtp.handler import INTERNAL_ERROR, RelayHandler, RelaySMTP


def _server() -> RelaySMTP:
    upstream = Endpoint("smtp://127.0.0.1:1", "127.0.0.1", 1, Security.PLAIN)
    server = RelaySMTP(RelayHandler(upstream, ssl.create_default_context()))
    server.session = Session(server.loop)
    server.session.peer = ("127.0.0.1", 1)
    return server


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _GoneWriter:
    """A writer whose peer reset the connection: drain raises, as StreamWriter's does."""

    def __init__(self, error: ConnectionError) -> None:
        self.error = error

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        TLSSetupException(),
        ConnectionAbortedError(),
        BrokenPipeError(),
        asyncio.IncompleteReadError(b"", None),
    ],
    ids=["tls-setup", "aborted", "broken-pipe", "eof"],
)
async def test_client_leaving_is_logged_without_error(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    server = _server()
    transport = _Transport()
    server.transport = transport  # type: ignore[assignment]
    with caplog.at_level(logging.DEBUG, "commsproxy.smtp"):
        reply = await server.handle_exception(error)
    assert transport.closed  # at once: the session's loop must not read the same end again
    assert reply != INTERNAL_ERROR
    assert reply.startswith("421 ")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "error", [ConnectionResetError("Connection lost"), BrokenPipeError()], ids=["reset", "pipe"]
)
async def test_a_reply_to_a_client_that_is_gone_ends_the_session(error: ConnectionError) -> None:
    server = _server()
    transport = _Transport()
    server.transport = transport  # type: ignore[assignment]
    server._writer = _GoneWriter(error)  # type: ignore[assignment]
    with pytest.raises(ConnectionResetError):
        await server.push("221 Bye")
    assert transport.closed


async def test_the_session_task_ends_quietly_when_the_client_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiosmtpd re-raises a reset out of its session task; nobody awaits that task."""

    async def reset(self: SMTP) -> None:
        raise ConnectionResetError("Connection lost")

    monkeypatch.setattr(SMTP, "_handle_client", reset)
    await _server()._handle_client()  # no exception left for asyncio to log


async def test_starttls_inside_tls_is_refused() -> None:
    server = _server()
    server._tls_protocol = object()  # type: ignore[assignment]
    replies: list[str] = []

    async def push(status: str) -> None:
        replies.append(status)

    server.push = push  # type: ignore[assignment, method-assign]
    await server.smtp_STARTTLS("")
    assert replies == ["503 5.5.1 commsproxy: TLS is already active"]
