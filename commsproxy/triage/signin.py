"""Triage of an OAuth2 login: log in with the shared access token, pause while sign-in is needed.

``TokenCredentials`` hands the engine a ``Connector`` that logs in with AUTHENTICATE XOAUTH2 and
a token from the login's ``AccessTokens``: the same object the IMAP and SMTP sessions use, so one
refresh serves all of them. A refused token is dropped and the login tried once more with a
fresh one.

While the engine runs it calls ``check`` every tick: a cached token costs nothing, one near its
expiry is refreshed then, so the engine learns that sign-in is needed while its worker is still
logged in with the last token. The engine then has that worker leave one short notice in INBOX
(notice.py: once per pause, across restarts) and pauses; ``status`` reads the reason from the
store. Each later attempt costs no request (``AccessTokens`` remembers the
refresh token that failed) until ``commsproxy login`` stores a new one. Then triage resumes by
itself, and its first step releases every batch whose time passed meanwhile (the engine's
catch-up of due releases), so no mail is held past its batch for longer than the pause.
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..endpoints import Endpoint
from ..oauth import AccessTokens, OAuthError, SignInNeeded, xoauth2
from ..upstream.login import empty_answer, sasl_login
from .state_store import StateStore
from .upstream import LoginRefused, Upstream, connect

__all__ = ["Connector", "SignInPaused", "TokenCredentials", "connect_oauth2"]

log = logging.getLogger("commsproxy.triage")

Connector = Callable[[Endpoint, ssl.SSLContext, float], Awaitable[Upstream]]


class SignInPaused(Exception):
    """Triage of this login waits for `commsproxy login`; the reason is in the store."""


class TokenCredentials:
    """The engine's credentials for an ``auth = "oauth2"`` login."""

    def __init__(
        self,
        tokens: AccessTokens,
        mailbox: str,
        store: StateStore,
        login: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.tokens = tokens
        self.mailbox = mailbox  # the SASL user (a shared mailbox for user/shared)
        self.store = store
        self.login = login
        self.clock = clock
        self._said: str | None = None  # the last trouble logged, so each is logged once

    async def __call__(self) -> Connector | None:
        """A way to connect, or None while sign-in is needed (or the provider throttles)."""
        if not await self._token_ok():
            return None
        return self._connect

    def refused(self) -> None:
        self.tokens.forget()

    async def check(self, worker: Upstream) -> None:
        """Between steps: raises SignInPaused once sign-in is needed; the engine then leaves
        the notice with ``worker``, still logged in with the last token (notice.py)."""
        if not await self._token_ok():
            raise SignInPaused(self.login)

    async def _token_ok(self) -> bool:
        try:
            await self.tokens.get()
        except SignInNeeded as err:
            self.store.pause(self.login, err.reason, self.clock())
            self._say("signin", f"triage[{self.login}]: paused: {err.reason}")
            return False
        except OAuthError as err:
            self._say(type(err).__name__, f"triage[{self.login}]: waiting: {err}")
            return False
        if self.store.resume(self.login) is not None:
            log.warning("triage[%s]: signed in again; triage resumes", self.login)
        self._said = None
        return True

    def _say(self, what: str, line: str) -> None:
        if self._said != what:
            self._said = what
            log.warning("%s", line)

    async def _connect(self, endpoint: Endpoint, tls: ssl.SSLContext, seconds: float) -> Upstream:
        try:
            return await connect_oauth2(
                endpoint, tls, self.tokens, self.mailbox, seconds=seconds,
                refused=f"the access token of {self.mailbox}",
            )  # fmt: skip
        except OAuthError:
            await self._token_ok()  # records the pause and says why, once
            raise SignInPaused(self.login) from None


async def connect_oauth2(
    endpoint: Endpoint,
    tls: ssl.SSLContext,
    tokens: AccessTokens,
    mailbox: str,
    *,
    seconds: float,
    username: str | None = None,
    refused: str | None = None,
) -> Upstream:
    """Log in as ``mailbox`` with AUTHENTICATE XOAUTH2 and a token from ``tokens``.

    A refused token is dropped and the login tried once more with a fresh one (revoked or
    expired early); the second refusal raises LoginRefused. OAuthError from ``tokens`` (no
    token to be had) goes to the caller. ``username`` and ``refused`` are for messages, as in
    ``upstream.connect``.
    """
    for attempt in (1, 2):
        raw = base64.b64decode(xoauth2(mailbox, await tokens.get()))
        try:
            return await connect(
                endpoint, tls, username or mailbox, "", seconds=seconds,
                login=sasl_login("XOAUTH2", raw, empty_answer), refused=refused,
            )  # fmt: skip
        except LoginRefused:
            if attempt == 2:
                raise
            tokens.forget()
    raise AssertionError("unreachable")
