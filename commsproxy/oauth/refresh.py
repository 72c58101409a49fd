"""Fresh access tokens for one sign-in, shared by every session of a login and its triage engine.

``AccessTokens.get()`` returns the cached access token while it has more than ``margin`` seconds
left; otherwise one caller refreshes it and every concurrent caller waits for that one refresh
(an asyncio lock, the cache checked again once inside: single flight). The HTTP call runs in a
thread, so the event loop never blocks on the provider. A token that lives no longer than
``margin`` (some servers issue 5-minute tokens) is refreshed at half its lifetime instead, so it
is still used, and callers that waited for its refresh take it.

A refresh that answers ``invalid_grant`` raises ``SignInNeeded`` and remembers which refresh token
failed: callers get the same error at once, without asking the provider again, until a new
sign-in stores another refresh token. Throttling (429) raises ``Throttled`` and no request is
sent before its Retry-After has passed. Providers that rotate refresh tokens (Microsoft) answer
a new one with each refresh; it replaces the stored one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .errors import SignInNeeded, Throttled
from .http import Transport, urllib_transport
from .providers import OAuthProvider
from .requests import refresh_request
from .tokens import Secret, TokenSet, token_set_from
from .vault import RefreshTokenStore

__all__ = ["DEFAULT_MARGIN", "AccessTokens"]

log = logging.getLogger(__name__)

#: Refresh this long before expiry: a long IMAP command started now still authenticates in time.
DEFAULT_MARGIN = 300.0


class AccessTokens:
    def __init__(
        self,
        provider: OAuthProvider,
        account: str,
        store: RefreshTokenStore,
        *,
        transport: Transport = urllib_transport,
        clock: Callable[[], float] = time.time,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.provider = provider
        self.account = account
        self.store = store
        self._transport = transport
        self._clock = clock
        self._margin = margin
        self._tokens: TokenSet | None = None
        self._lifetime = float("inf")  # of the cached token, as issued
        self._lock = asyncio.Lock()
        self._failed: tuple[Secret, SignInNeeded] | None = None
        self._not_before = 0.0
        self.refreshes = 0  # how many refresh requests were sent (for status and tests)

    def _fresh(self) -> Secret | None:
        tokens = self._tokens
        margin = min(self._margin, self._lifetime / 2)
        if tokens is not None and not tokens.expires_within(margin, self._clock()):
            return tokens.access_token
        return None

    async def get(self) -> Secret:
        """A valid access token, else SignInNeeded, Throttled or another OAuthError."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()  # another caller may have refreshed while this one waited
            if fresh is not None:
                return fresh
            tokens = await self._refresh()
            self._keep(tokens)
            return tokens.access_token

    def forget(self) -> None:
        """Drop the cached access token (a server refused it): the next ``get`` refreshes."""
        self._tokens = None

    def seed(self, tokens: TokenSet) -> None:
        """Start from the token set a sign-in just returned (saves one refresh)."""
        self._keep(tokens)
        self._failed = None

    def _keep(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._lifetime = max(tokens.expires_at - self._clock(), 0.0)

    async def _refresh(self) -> TokenSet:
        wait = self._not_before - self._clock()
        if wait > 0:
            raise Throttled(self.provider.title, wait)
        refresh_token = await asyncio.to_thread(self.store.load, self.account)
        if refresh_token is None:
            raise SignInNeeded(self.account, f"{self.account} has not signed in yet")
        if self._failed is not None and self._failed[0] == refresh_token:
            raise self._failed[1]
        self.refreshes += 1
        request = refresh_request(self.provider, refresh_token.reveal())
        response = await asyncio.to_thread(self._transport, request)
        try:
            tokens = token_set_from(
                response,
                login=self.account,
                provider=self.provider.title,
                refreshing=True,
                clock=self._clock,
            )
        except SignInNeeded as err:
            # Not logged here: the IMAP and SMTP sides and triage each say it once, in words.
            self._failed = (refresh_token, err)
            log.debug("refresh of %s refused: sign-in needed", self.account)
            raise
        except Throttled as err:
            self._not_before = self._clock() + err.retry_after
            log.debug("refresh of %s throttled for %g s", self.account, err.retry_after)
            raise
        self._failed = None
        if tokens.refresh_token is not None and tokens.refresh_token != refresh_token:
            await asyncio.to_thread(self.store.save, self.account, tokens.refresh_token)
        log.debug("refreshed the access token of %s", self.account)
        return tokens
