"""The auto-reply's SMTP sending on real sockets: an aiosmtpd server for password logins and
refused recipients, the scripted bearer server of test_smtp_oauth for OAuth2 logins (a token
refused once and a fresh one tried, a refusal a fresh token cannot fix)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from commsproxy.endpoints import Endpoint, Security
from commsproxy.oauth.tokens import Secret
from commsproxy.triage.autoreply_send import PasswordLogin, SmtpRefused, TokenLogin, smtp_link

from .oauth_fakes import issuing
from .test_smtp_oauth import ScriptedServer, _tokens


@dataclass
class Relay:
    """aiosmtpd hooks: PLAIN/LOGIN checked against one password, each message kept."""

    password: str
    received: list[Envelope] = field(default_factory=list)

    def check(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              data: Any) -> AuthResult:  # fmt: skip
        ok = isinstance(data, LoginPassword) and data.password == self.password.encode()
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:  # fmt: skip
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 queued"


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, Endpoint]]:
    hooks = Relay("right")
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(hooks, auth_require_tls=False, authenticator=hooks.check, hostname="relay.test")

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield hooks, Endpoint(f"smtp://127.0.0.1:{port}", "127.0.0.1", port, Security.PLAIN)
    server.close()
    await server.wait_closed()


TLS = ssl.create_default_context()


async def test_a_password_login_sends(relay: tuple[Relay, Endpoint]) -> None:
    hooks, where = relay
    async with smtp_link(where, TLS, PasswordLogin("jan", "right"), 5) as link:
        await link.send("jan@acme.be", "pia@client.example", b"Subject: s\r\n\r\nhello\r\n")
        with pytest.raises(SmtpRefused) as refused:
            await link.send("jan@acme.be", "nobody@client.example", b"Subject: s\r\n\r\nx\r\n")
        assert refused.value.permanent
        assert "550" in str(refused.value)
    assert [e.rcpt_tos for e in hooks.received] == [["pia@client.example"]]
    assert hooks.received[0].mail_from == "jan@acme.be"


async def test_a_wrong_password_is_refused_once(relay: tuple[Relay, Endpoint]) -> None:
    _, where = relay
    with pytest.raises(SmtpRefused) as refused:
        async with smtp_link(where, TLS, PasswordLogin("jan", "wrong"), 5):
            pass
    assert refused.value.permanent
    assert "wrong" not in str(refused.value)
    assert "wrong" not in repr(PasswordLogin("jan", "wrong"))


@pytest.fixture
async def scripted() -> AsyncIterator[list[asyncio.Server]]:
    servers: list[asyncio.Server] = []
    yield servers
    for server in servers:
        server.close()
        await server.wait_closed()


async def _start(script: ScriptedServer, servers: list[asyncio.Server]) -> Endpoint:
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    servers.append(server)
    port = server.sockets[0].getsockname()[1]
    return Endpoint(f"smtp://127.0.0.1:{port}", "127.0.0.1", port, Security.PLAIN)


async def test_an_oauth2_login_tries_a_fresh_token_once(scripted: list[asyncio.Server]) -> None:
    script = ScriptedServer("XOAUTH2 OAUTHBEARER", lambda t: None if t == "AT-2" else "401")
    where = await _start(script, scripted)
    transport = issuing()
    async with smtp_link(where, TLS, TokenLogin(_tokens(transport), "ann@example.test"), 5):
        pass
    assert len(transport.requests) == 2
    # The token goes on its own line after 334, never on the AUTH line.
    assert [line for line in script.lines if line.startswith(b"AUTH")] == [b"AUTH XOAUTH2\r\n"] * 2
    assert b"QUIT\r\n" in script.lines


async def test_an_oauth2_refusal_a_fresh_token_cannot_fix(scripted: list[asyncio.Server]) -> None:
    script = ScriptedServer("OAUTHBEARER", lambda t: "insufficient_scope")
    where = await _start(script, scripted)
    transport = issuing()
    with pytest.raises(SmtpRefused) as refused:
        async with smtp_link(where, TLS, TokenLogin(_tokens(transport), "ann@example.test"), 5):
            pass
    assert refused.value.permanent
    assert len(transport.requests) == 1
    assert b"AQ==\r\n" in script.lines  # OAUTHBEARER's abort (RFC 7628 3.2.3)


async def test_no_bearer_mechanism_offered(scripted: list[asyncio.Server]) -> None:
    where = await _start(ScriptedServer("PLAIN LOGIN", lambda t: None), scripted)
    with pytest.raises(SmtpRefused, match="neither XOAUTH2 nor OAUTHBEARER"):
        async with smtp_link(where, TLS, TokenLogin(_tokens(issuing()), "ann@example.test"), 5):
            pass


def test_the_token_never_shows() -> None:
    assert "AT-1" not in repr(Secret("AT-1"))
