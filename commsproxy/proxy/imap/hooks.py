"""What other layers plug into the IMAP relay, each through its own small protocol.

- ``RelayHooks``: the triage gate, called before client commands and on server responses.
- ``LoginObserver``: told once per session when the upstream accepted the client's login, with
  the secret the client sent (triage keeps it in memory when the config has no
  ``password_command``). Nothing else in the relay sees the secret.
- ``UpstreamLogin``: given the login a client sent to the proxy, what the proxy sends upstream.
  ``PassCredentials`` passes the same credentials on (LOGIN, or the client's own AUTHENTICATE
  PLAIN). A different one returns other ``LoginSteps``, or raises a
  ``commsproxy.imap.errors`` refusal that becomes the client's tagged answer. A login that must
  read the server as it goes (capabilities, an error challenge, a retry with a fresh token:
  OAuth2, proxy/imap/oauth_login.py) returns a ``LoginExchange`` instead, which runs on the
  connected link and hands back the server's tagged OK for the client.

Giving a session an ``UpstreamLogin`` makes the proxy answer the not-authenticated state itself,
as it does when the user name picks the server (routing.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...endpoints import Endpoint
from ...imap.grammar import Command, Response
from ...imap.session import ImapSession
from ...imap.session_events import ClientLogin, LoginSteps
from ..routing import LoginRoutes, UpstreamServer

__all__ = [
    "DISCONNECTS",
    "LoginExchange",
    "LoginObserver",
    "NoHooks",
    "PassCredentials",
    "RelayHooks",
    "RelayLimits",
    "RelayedSession",
    "SessionParts",
    "UpstreamLink",
    "UpstreamLogin",
]


# How a peer hanging up shows while we read or write: an ordinary end, never an error.
DISCONNECTS = (ConnectionError, asyncio.IncompleteReadError)


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds that keep one misbehaving peer from taking the proxy's memory."""

    max_command_line: int = 1 << 20
    max_literal: int = 64 << 20
    max_response_line: int = 16 << 20
    max_paused_bytes: int = 32 << 20
    connect_timeout: float = 20.0
    login_timeout: float = 60.0  # a routed login: connect, log in, answer (servers delay NO)


class RelayedSession(Protocol):
    """What hooks may do with a session (relay.py's ``Session``): read its machine, pause and
    resume what the server sends, and slip in a command of the proxy's own."""

    state: ImapSession

    def pause_responses(self) -> None: ...

    def hold_answer(self) -> None:
        """Pause responses for a tagged reply: ``on_response`` hears tagged replies only (the
        machine still reads what it needs), and what the machine does not read in a short
        answer is held unparsed (relay.py)."""

    async def resume_responses(
        self,
        rewrite: Callable[[list[list[bytes]]], list[bytes]] | None = None,
        *,
        keep_paused: bool = False,
    ) -> None: ...

    def release_held(self) -> None:
        """Only from ``on_response``: what is held goes out now, with the response being read,
        unchanged; then responses are forwarded as they come."""

    @property
    def responses_paused(self) -> bool: ...

    def send_own_command(self, command: str) -> str | None: ...

    def sync_in_idle(self) -> str | None: ...


class RelayHooks(Protocol):
    """What a later layer (the triage gate) can plug into every session."""

    def before_command(self, session: RelayedSession, command: Command) -> Awaitable[object] | None:
        """Called before a client command is forwarded: None to forward it at once, or what to
        wait for first (e.g. triage catching up). Most commands wait for nothing, and then the
        relay forwards them in the transport's callback, without a task switch."""

    def on_response(self, session: RelayedSession, response: Response) -> None:
        """Called on the first line of each upstream response the session machine reads, after
        ``session.state`` has taken it in and before it is forwarded: tagged replies,
        continuations, status responses, CAPABILITY, VANISHED, EXISTS and EXPUNGE (FETCH data,
        LIST, SEARCH and the like pass unread, see ``UNREAD_RESPONSES``); while responses are
        paused, every response; while an answer is held for its tagged reply
        (``hold_answer``), tagged replies only."""


class NoHooks:
    def before_command(self, session: RelayedSession, command: Command) -> Awaitable[object] | None:
        return None

    def on_response(self, session: RelayedSession, response: Response) -> None:
        return None


class LoginObserver(Protocol):
    def on_logged_in(self, user: str, secret: str) -> None:
        """The upstream accepted ``user`` with ``secret``; keep it in memory only, if at all."""


@dataclass(frozen=True)
class UpstreamLink:
    """The upstream connection of a login in progress: connected, secured and greeted."""

    reader: asyncio.StreamReader = field(repr=False)
    writer: asyncio.StreamWriter = field(repr=False)
    greeting: bytes  # without a capability list after STARTTLS (it was stale)
    endpoint: Endpoint


class LoginExchange(Protocol):
    async def log_in(self, link: UpstreamLink) -> bytes:
        """Log in on ``link``, reading no byte past the server's last reply to it.

        Returns the server's tagged OK line under the client's tag (the client reads it as the
        answer to its own login); raises ImapRefusal to refuse, OSError if the link fails.
        """


class UpstreamLogin(Protocol):
    async def upstream_login(self, login: ClientLogin) -> LoginSteps | LoginExchange:
        """The login to send upstream for what the client sent; raise ImapRefusal to refuse."""


class PassCredentials:
    """The client's own credentials, passed on in a form any server reads."""

    async def upstream_login(self, login: ClientLogin) -> LoginSteps:
        return LoginSteps(login.pieces)


@dataclass(frozen=True)
class SessionParts:
    """What every session of one listener is given: where to connect, its bounds and hooks.

    With ``routes`` (several logins) or an ``upstream_login`` hook the proxy answers until the
    login and logs in itself; otherwise the one upstream greets the client directly.
    """

    upstream: UpstreamServer
    local_tls: ssl.SSLContext | None
    limits: RelayLimits
    hooks: RelayHooks = field(default_factory=lambda: NoHooks())
    routes: LoginRoutes | None = None
    logins: LoginObserver | None = None
    upstream_login: UpstreamLogin | None = None

    @property
    def answers_prelogin(self) -> bool:
        return self.routes is not None or self.upstream_login is not None
