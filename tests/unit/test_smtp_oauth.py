"""The SMTP side's upstream OAuth2 exchange against a scripted server on a real socket.

What the test bed cannot make happen on demand: a server refusing a token the proxy still
thinks valid (so it is dropped and a fresh one tried once), a server offering only OAUTHBEARER,
a refusal a fresh token cannot fix. And the one-line replies a mail program gets.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib
import pytest

from commsproxy.endpoints import Endpoint, Security
from commsproxy.oauth import SignInNeeded, Throttled
from commsproxy.oauth.providers import OAuthProvider
from commsproxy.oauth.refresh import AccessTokens
from commsproxy.oauth.tokens import Secret
from commsproxy.oauth.vault import KeyringStore
from commsproxy.proxy.smtp.oauth import TokenRefused, authenticate_with_token, oauth_reply

from .oauth_fakes import FakeTransport, MemoryKeyring, issuing

PROVIDER = OAuthProvider(
    name="custom",
    client_id="client",
    authorization_endpoint="https://idp.test/authorize",
    token_endpoint="https://idp.test/token",
    scopes=("mail",),
)
USER = "ann@example.test"


@dataclass
class ScriptedServer:
    """Just enough SMTP: EHLO with ``mechanisms``, AUTH, and a verdict on each token."""

    mechanisms: str
    verdict: Callable[[str], str | None]  # token -> None (accept) or the error JSON's status
    lines: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        mechanism = None
        while line := await reader.readline():
            self.lines.append(line)
            command = line.rstrip(b"\r\n")
            if command.upper().startswith(b"EHLO"):
                writer.write(f"250-scripted\r\n250 AUTH {self.mechanisms}\r\n".encode())
            elif command.upper().startswith(b"AUTH "):
                mechanism = command.split()[1].decode().upper()
                writer.write(b"334 \r\n")
            elif mechanism is not None:
                mechanism = self._answer(mechanism, command, writer)
            elif command.upper() == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"502 not scripted\r\n")
            await writer.drain()
        writer.close()

    def _answer(self, mechanism: str, response: bytes, writer: asyncio.StreamWriter) -> str | None:
        if response in (b"", b"AQ=="):  # the client closing the exchange after a challenge
            writer.write(b"535 5.7.8 Authentication failed\r\n")
            return None
        raw = base64.b64decode(response).decode()
        token = raw.split("auth=Bearer ", 1)[1].split("\x01", 1)[0]
        status = self.verdict(token)
        if status is None:
            writer.write(b"235 2.7.0 Accepted\r\n")
            return None
        challenge = base64.b64encode(json.dumps({"status": status}).encode())
        writer.write(b"334 " + challenge + b"\r\n")
        return mechanism


Serve = Callable[[ScriptedServer], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(script: ScriptedServer) -> None:
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        script.port = server.sockets[0].getsockname()[1]
        servers.append(server)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _tokens(transport: FakeTransport) -> AccessTokens:
    store = KeyringStore(MemoryKeyring())
    store.save(USER, Secret("RT"))
    return AccessTokens(PROVIDER, USER, store, transport=transport)


async def _log_in(script: ScriptedServer, tokens: AccessTokens) -> None:
    link = aiosmtplib.SMTP(hostname="127.0.0.1", port=script.port, start_tls=False, timeout=5)
    await link.connect()
    where = Endpoint("smtp://127.0.0.1", "127.0.0.1", script.port, Security.PLAIN)
    try:
        await authenticate_with_token(link, tokens, USER, PROVIDER, where)
    finally:
        link.close()


async def test_a_refused_token_is_dropped_and_a_fresh_one_tried_once(serve: Serve) -> None:
    script = ScriptedServer("XOAUTH2 OAUTHBEARER", lambda t: None if t == "AT-2" else "401")
    await serve(script)
    transport = issuing()
    await _log_in(script, _tokens(transport))
    assert len(transport.requests) == 2
    # The token goes on its own line after 334, never on the AUTH line; XOAUTH2 is preferred.
    assert [line for line in script.lines if line.startswith(b"AUTH")] == [b"AUTH XOAUTH2\r\n"] * 2
    assert b"\r\n" in script.lines  # the empty response that closes the refused exchange


async def test_oauthbearer_when_only_that_is_offered(serve: Serve) -> None:
    script = ScriptedServer("OAUTHBEARER PLAIN", lambda t: "invalid_token")
    await serve(script)
    transport = issuing()
    with pytest.raises(TokenRefused) as refused:
        await _log_in(script, _tokens(transport))
    assert refused.value.code == 535
    assert len(transport.requests) == 2  # one fresh token, not more
    first = next(line for line in script.lines if line.startswith(b"bi"))  # base64 of "n,"
    decoded = base64.b64decode(first).decode()
    assert decoded.startswith(f"n,a={USER},\x01host=127.0.0.1\x01port={script.port}\x01")
    assert b"AQ==\r\n" in script.lines  # OAUTHBEARER's abort (RFC 7628 3.2.3)


async def test_a_refusal_a_fresh_token_cannot_fix_is_not_retried(serve: Serve) -> None:
    script = ScriptedServer("XOAUTH2", lambda t: "insufficient_scope")
    await serve(script)
    transport = issuing()
    with pytest.raises(TokenRefused):
        await _log_in(script, _tokens(transport))
    assert len(transport.requests) == 1


def test_replies_for_a_login_without_a_token() -> None:
    needed = SignInNeeded(USER, f"custom no longer accepts the sign-in of {USER}")
    assert oauth_reply(needed) == (
        f"535 5.7.8 commsproxy: custom no longer accepts the sign-in of {USER}: "
        f"run `commsproxy login {USER}`"
    )
    assert oauth_reply(Throttled("Microsoft 365", 29.2)) == (
        "454 4.7.0 commsproxy: Microsoft 365 is throttling sign-in requests; try again in 30 s"
    )
