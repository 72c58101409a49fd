"""The IMAP side of an OAuth2 login, through the real relay, against a scripted IMAP server.

What the test bed's Dovecot cannot be made to do on demand: a server without SASL-IR or with
OAUTHBEARER only, an error challenge for a token commsproxy still thinks valid, ``NO
[THROTTLED]`` (Microsoft 365), a token endpoint answering 429, and Gmail's connection cap. Each
test has a mail program log in to a real ``Session`` over a socket pair with the local password;
the scripted server plays the upstream's side byte by byte.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from commsproxy.endpoints import Endpoint
from commsproxy.imap.session import State
from commsproxy.oauth import OAuthProvider, SignIns
from commsproxy.oauth.password import ScryptParams, set_local_password
from commsproxy.oauth.tokens import Secret
from commsproxy.proxy.imap.connection_cap import (
    GMAIL_IMAP_CONNECTIONS,
    TRIAGE_CONNECTIONS,
    ConnectionCap,
)
from commsproxy.proxy.imap.hooks import RelayLimits, SessionParts
from commsproxy.proxy.imap.oauth_exchange import backoff_seconds
from commsproxy.proxy.imap.oauth_login import OAuthUpstreamLogin
from commsproxy.proxy.imap.relay import Session
from commsproxy.proxy.oauth_logins import OAuthLogins
from commsproxy.proxy.routing import UpstreamServer

from .imap_server import Peer, Served, scripted_server
from .oauth_fakes import FakeTransport, MemoryKeyring, issuing, reply

USER = "ann@example.test"
LOCAL = "local-pw"
FAST = ScryptParams(n=1 << 4)  # the hash file records its parameters; tests need no 16 MiB


def _provider(name: str = "custom") -> OAuthProvider:
    return OAuthProvider(
        name=name,
        client_id="client",
        authorization_endpoint="https://idp.test/authorize",
        token_endpoint="https://idp.test/token",
        scopes=("mail",),
    )


@dataclass
class Proxy:
    """One OAuthUpstreamLogin (as the IMAP listener has) and the sessions it serves."""

    login: OAuthUpstreamLogin
    transport: FakeTransport
    upstream: Endpoint

    async def session(self) -> Client:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=ours)
        s_reader, s_writer = await asyncio.open_connection(sock=theirs)
        parts = SessionParts(
            UpstreamServer(self.upstream, ssl.create_default_context()),
            None,
            RelayLimits(),
            upstream_login=self.login,
        )
        session = Session(s_reader, s_writer, parts)
        client = Client(session, reader, writer, asyncio.create_task(session.run()))
        assert (await client.line()).startswith(b"* OK [CAPABILITY")  # the proxy's own greeting
        return client


@dataclass
class Client:
    session: Session
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    task: asyncio.Task[None]

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 5)

    async def send(self, line: bytes) -> bytes:
        """Send one command; the tagged answer."""
        tag = line.split(b" ", 1)[0] + b" "
        self.writer.write(line + b"\r\n")
        while not (got := await self.line()).startswith(tag):
            assert got, "the proxy closed the connection"
        return got

    async def close(self) -> None:
        self.writer.close()
        await asyncio.wait_for(self.task, 5)


Start = Callable[..., Awaitable[tuple[Proxy, Served]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    servers = contextlib.AsyncExitStack()

    async def run(
        script: Callable[[Peer], Awaitable[None]],
        *,
        greeting: bytes,
        provider: OAuthProvider | None = None,
        transport: FakeTransport | None = None,
    ) -> tuple[Proxy, Served]:
        provider = provider or _provider()
        transport = transport or issuing()
        signins = SignIns(directory=tmp_path, backend=MemoryKeyring(), transport=transport)
        signins.store.save(USER, Secret("RT"))
        set_local_password(tmp_path, USER, LOCAL, FAST)
        served = await servers.enter_async_context(scripted_server(script, greeting=greeting))
        login = OAuthUpstreamLogin(OAuthLogins.of(signins, {USER: provider}))
        return Proxy(login, transport, served.endpoint), served

    async with servers:
        yield run


def _token_in(response: bytes) -> tuple[str, str]:
    """The SASL user and the bearer token in a base64 XOAUTH2/OAUTHBEARER response."""
    raw = base64.b64decode(response).decode()
    user = raw.split("user=", 1)[1].split("\x01", 1)[0] if "user=" in raw else raw.split(",")[1]
    return user, raw.split("auth=Bearer ", 1)[1].split("\x01", 1)[0]


def _challenge(status: str) -> bytes:
    return b"+ " + base64.b64encode(json.dumps({"status": status, "schemes": "Bearer"}).encode())


XOAUTH2_ONLY = b"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] scripted\r\n"


async def _serve_after_login(peer: Peer) -> None:
    """What the server does once logged in: answer NOOP until the client leaves."""
    while True:
        command = await peer.command()
        peer.send(command.tag.encode() + b" OK " + command.name.encode() + b" done\r\n")


async def test_without_sasl_ir_the_token_follows_the_continuation(start: Start) -> None:
    async def script(peer: Peer) -> None:
        assert await peer.message() == b"cpauth2 AUTHENTICATE XOAUTH2\r\n"
        peer.send(b"+ \r\n")
        assert _token_in((await peer.message()).strip()) == (USER, "AT-1")
        peer.send(b"cpauth2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
        await _serve_after_login(peer)

    proxy, _ = await start(script, greeting=XOAUTH2_ONLY)
    client = await proxy.session()
    assert await client.send(f"a LOGIN {USER} {LOCAL}".encode()) == (
        b"a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"
    )
    assert await client.send(b"b NOOP") == b"b OK NOOP done\r\n"
    assert client.session.state.state is State.AUTHENTICATED
    await client.close()
    assert len(proxy.transport.requests) == 1


async def test_oauthbearer_with_sasl_ir_when_only_that_is_offered(start: Start) -> None:
    async def script(peer: Peer) -> None:
        # No capabilities in the greeting: the proxy asks for them under its own tag.
        assert await peer.message() == b"cpauth1 CAPABILITY\r\n"
        peer.send(b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=PLAIN\r\n")
        peer.send(b"cpauth1 OK done\r\n")
        line = await peer.message()
        head, response = line.strip().rsplit(b" ", 1)
        assert head == b"cpauth2 AUTHENTICATE OAUTHBEARER"  # the token on the line (SASL-IR)
        raw = base64.b64decode(response).decode()
        port = served.endpoint.port
        assert raw == f"n,a={USER},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer AT-1\x01\x01"
        peer.send(b"cpauth2 OK Logged in\r\n")
        await _serve_after_login(peer)

    proxy, served = await start(script, greeting=b"* OK scripted\r\n")
    client = await proxy.session()
    assert await client.send(f"a LOGIN {USER} {LOCAL}".encode()) == b"a OK Logged in\r\n"
    await client.close()


def _refusing(accept: str | None) -> Callable[[Peer], Awaitable[None]]:
    """A SASL-IR server that refuses every token but ``accept`` with an error challenge."""

    async def script(peer: Peer) -> None:
        for tag in (b"cpauth2", b"cpauth3"):
            line = await peer.message()
            assert line.startswith(tag + b" AUTHENTICATE XOAUTH2 "), line
            if _token_in(line.strip().rsplit(b" ", 1)[1])[1] == accept:
                peer.send(tag + b" OK Logged in\r\n")
                return await _serve_after_login(peer)
            peer.send(_challenge("401") + b"\r\n")
            assert await peer.message() == b"\r\n"  # XOAUTH2's abort: an empty response
            peer.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")
        await peer.message()  # the proxy must not try a third time

    return script


SASL_IR = b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] scripted\r\n"


async def test_an_error_challenge_ends_and_a_fresh_token_is_tried_once(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy")
    proxy, _ = await start(_refusing("AT-2"), greeting=SASL_IR)
    client = await proxy.session()
    assert await client.send(f"a LOGIN {USER} {LOCAL}".encode()) == b"a OK Logged in\r\n"
    assert len(proxy.transport.requests) == 2  # the refused token was forgotten: one refresh
    assert await client.send(b"b NOOP") == b"b OK NOOP done\r\n"
    assert f"imap: upstream refused a token of {USER}; a fresh one worked" in caplog.messages
    await client.close()


async def test_a_fresh_token_refused_too_is_authenticationfailed(start: Start) -> None:
    proxy, served = await start(_refusing(None), greeting=SASL_IR)
    client = await proxy.session()
    said = await client.send(f"a LOGIN {USER} {LOCAL}".encode())
    expected = (
        f"a NO [AUTHENTICATIONFAILED] commsproxy: upstream {served.endpoint} refused the "
        f"access token for {USER}: Invalid credentials (Failure)\r\n"
    )
    assert said == expected.encode()
    assert len(proxy.transport.requests) == 2  # one fresh token, never a third
    assert client.session.state.state is State.NOT_AUTHENTICATED  # free to try again
    await client.close()


async def test_throttled_logins_get_unavailable_with_when_to_retry_logged_once(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(peer: Peer) -> None:
        line = await peer.message()
        tag = line.split(b" ", 1)[0]
        peer.send(
            tag + b" NO [THROTTLED] Request is throttled. Suggested Backoff Time: 201317 "
            b"milliseconds\r\n"
        )
        await peer.message()

    caplog.set_level(logging.INFO, "commsproxy")
    proxy, _ = await start(script, greeting=SASL_IR)
    for tag in (b"a", b"b", b"c"):  # a mail program retrying
        client = await proxy.session()
        said = await client.send(tag + f" LOGIN {USER} {LOCAL}".encode())
        assert said.startswith(tag + b" NO [UNAVAILABLE] commsproxy: upstream "), said
        assert b"is throttling logins" in said, said
        assert said.endswith(b"; try again in 202 s\r\n"), said
        await client.close()
    assert len(proxy.transport.requests) == 1  # throttling is not a bad token: no refresh
    told = [m for m in caplog.messages if "throttl" in m]
    assert len(told) == 1, told


async def test_a_throttled_token_endpoint_gets_unavailable_with_the_wait_logged_once(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(peer: Peer) -> None:
        raise AssertionError(f"nothing reaches the server without a token: {peer}")

    caplog.set_level(logging.DEBUG)
    throttled = FakeTransport(lambda request: reply(429, {"Retry-After": "30"}))
    proxy, served = await start(script, greeting=SASL_IR, transport=throttled)
    for tag in (b"a", b"b"):
        client = await proxy.session()
        said = await client.send(tag + f" LOGIN {USER} {LOCAL}".encode())
        assert said.startswith(tag + b" NO [UNAVAILABLE] commsproxy: custom is throttling")
        assert said.endswith(b"try again in 30 s\r\n") or said.endswith(b"try again in 29 s\r\n")
        await client.close()
    assert len(throttled.requests) == 1  # no request before Retry-After has passed
    assert served.peers == []  # no connection to the server either
    told = [r for r in caplog.records if r.levelno >= logging.INFO and "throttl" in r.message]
    assert [r.message for r in told] == [
        f"imap: cannot log in {USER}: commsproxy: custom is throttling sign-in requests; "
        "try again in 30 s"
    ]


async def test_gmail_sessions_beyond_the_cap_are_refused_and_a_closed_one_frees_its_place(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    cap = GMAIL_IMAP_CONNECTIONS - TRIAGE_CONNECTIONS
    assert cap == 12

    async def script(peer: Peer) -> None:
        line = await peer.message()
        peer.send(line.split(b" ", 1)[0] + b" OK Logged in\r\n")
        await _serve_after_login(peer)

    proxy, served = await start(script, greeting=SASL_IR, provider=_provider("gmail"))
    clients = []
    for n in range(cap):
        clients.append(await proxy.session())
        assert await clients[-1].send(f"a{n} LOGIN {USER} {LOCAL}".encode()) == (
            f"a{n} OK Logged in\r\n".encode()
        )
    extra = await proxy.session()
    for tag in ("x", "y"):
        said = (await extra.send(f"{tag} LOGIN {USER} {LOCAL}".encode())).decode()
        assert said == (
            f"{tag} NO [UNAVAILABLE] commsproxy: {USER} has 12 IMAP connections open through "
            "commsproxy; Gmail allows 15 per user and commsproxy keeps 3 for triage: close a "
            "mail program, or let it use fewer connections\r\n"
        )
    assert len(served.peers) == cap  # refused before connecting to Gmail
    assert sum("refusing a login" in m for m in caplog.messages) == 1

    await clients.pop().close()  # a mail program closes one session: its place is free
    assert await extra.send(f"z LOGIN {USER} {LOCAL}".encode()) == b"z OK Logged in\r\n"
    assert await extra.send(b"z2 NOOP") == b"z2 OK NOOP done\r\n"
    for client in [*clients, extra]:
        await client.close()
    assert proxy.login.gmail_cap.open(USER) == 0


async def test_a_failed_connection_takes_no_place_at_the_cap(start: Start) -> None:
    async def script(peer: Peer) -> None:
        await _serve_after_login(peer)

    proxy, served = await start(script, greeting=SASL_IR, provider=_provider("gmail"))
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    proxy.upstream = Endpoint(
        f"imap://127.0.0.1:{port}", "127.0.0.1", port, served.endpoint.security
    )
    for n in range(GMAIL_IMAP_CONNECTIONS):
        client = await proxy.session()
        said = await client.send(f"a{n} LOGIN {USER} {LOCAL}".encode())
        assert said.startswith(f"a{n} NO [UNAVAILABLE]".encode()), said
        assert b"connections open" not in said, said
        await client.close()
    assert proxy.login.gmail_cap.open(USER) == 0


class _Writer:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed


def test_two_logins_racing_for_the_last_place_cannot_both_have_it() -> None:
    # Both passed the check before connecting; only one is counted once connected.
    cap = ConnectionCap(2)
    first, second, third = _Writer(), _Writer(), _Writer()
    assert cap.take(USER, cast(asyncio.StreamWriter, first))
    assert not cap.full(USER)
    assert cap.take(USER, cast(asyncio.StreamWriter, second))
    assert cap.full(USER)
    assert not cap.take(USER, cast(asyncio.StreamWriter, third))
    first.closed = True
    assert cap.open(USER) == 1
    assert cap.take(USER, cast(asyncio.StreamWriter, third))


def test_the_backoff_exchange_suggests_in_whole_seconds() -> None:
    assert backoff_seconds("Request is throttled. Suggested Backoff Time: 9000 milliseconds") == 9
    assert backoff_seconds("Suggested Backoff Time: 1 milliseconds") == 1
    assert backoff_seconds("Too many logins") is None
