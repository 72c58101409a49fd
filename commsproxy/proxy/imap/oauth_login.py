"""IMAP logins of ``auth = "oauth2"`` logins: the local password in, an access token upstream.

A mail program logs in to commsproxy with LOGIN or AUTHENTICATE PLAIN and the login's local
password, checked against its scrypt hash in a worker thread (tens of milliseconds that must not
stall other sessions). Then an access token from the login's shared ``AccessTokens`` (one
refresh for every session, the SMTP side and triage) logs in upstream with AUTHENTICATE XOAUTH2
or OAUTHBEARER (oauth_exchange.py). After that the relay is as transparent as for any login.

What the mail program reads when that cannot happen, always one line it can show:

- sign-in needed (never signed in, revoked, expired): ``NO [AUTHENTICATIONFAILED]`` with the
  reason and ``run `commsproxy login USER```;
- a wrong local password: ``NO [AUTHENTICATIONFAILED]`` saying so;
- the provider throttling token requests (429) or logins (``NO [THROTTLED]``): ``NO
  [UNAVAILABLE]`` with when to try again;
- over Gmail's connection limit: ``NO [UNAVAILABLE]`` saying how many are open.

Each of these is logged once per login until a login works again, however often the mail
program retries. Logins that are not OAuth2 go to ``fallback`` unchanged.
"""

from __future__ import annotations

import asyncio
import logging

from ...imap.errors import No
from ...imap.session_events import ClientLogin, LoginSteps
from ...oauth import (
    OAuthError,
    OAuthProvider,
    SecretStoreError,
    SignInNeeded,
    reason_in_one_line,
)
from ...oauth.password import has_local_password
from ..oauth_logins import OAuthLogins
from .connection_cap import GMAIL_IMAP_CONNECTIONS, TRIAGE_CONNECTIONS, ConnectionCap
from .hooks import LoginExchange, PassCredentials, UpstreamLink, UpstreamLogin
from .oauth_exchange import BearerLogin, ServerThrottled

__all__ = ["OAuthUpstreamLogin", "token_refusal"]

log = logging.getLogger("commsproxy.imap")


def token_refusal(err: OAuthError) -> No:
    """The client's answer when no access token can be had."""
    code = "AUTHENTICATIONFAILED" if isinstance(err, SignInNeeded) else "UNAVAILABLE"
    return No(f"commsproxy: {reason_in_one_line(err)}", code=code)


class OAuthUpstreamLogin:
    def __init__(
        self,
        oauth: OAuthLogins,
        fallback: UpstreamLogin | None = None,
        *,
        gmail_cap: ConnectionCap | None = None,
    ) -> None:
        self.oauth = oauth
        self.fallback: UpstreamLogin = fallback or PassCredentials()
        self.gmail_cap = gmail_cap or ConnectionCap(GMAIL_IMAP_CONNECTIONS - TRIAGE_CONNECTIONS)
        self._trouble: dict[str, str] = {}  # login -> what was logged about it

    async def upstream_login(self, login: ClientLogin) -> LoginSteps | LoginExchange:
        provider = self.oauth.provider_for(login.user)
        if provider is None:
            return await self.fallback.upstream_login(login)
        user = login.user
        await self._check_password(user, provider, login.secret)
        capped = self._capped_key(user, provider)
        signins = self.oauth.signins
        tokens = signins.tokens(user, provider)
        try:
            token = await tokens.get()
        except OAuthError as err:
            refusal = token_refusal(err)
            self.say_once(user, type(err).__name__, f"imap: cannot log in {user}: {refusal.text}")
            raise refusal from None
        mailbox = signins.identity(user, provider).mailbox
        return _Exchange(self, user, BearerLogin(tokens, mailbox, login.tag, token), capped)

    async def _check_password(self, user: str, provider: OAuthProvider, password: str) -> None:
        signins = self.oauth.signins
        account = signins.identity(user, provider).account
        try:
            known = await asyncio.to_thread(has_local_password, signins.directory, account)
            right = known and await asyncio.to_thread(
                signins.check_password, user, provider, password
            )
        except SecretStoreError as err:
            log.warning("imap: %s", err)
            raise No(f"commsproxy: {err}", code="UNAVAILABLE") from None
        if not known:
            log.info("imap: %s has not signed in yet", user)
            raise No(
                f"commsproxy: {user} has not signed in yet: run `commsproxy login {user}`",
                code="AUTHENTICATIONFAILED",
            )
        if not right:
            log.info("imap: wrong local password for %s", user)
            raise No(
                f"commsproxy: wrong password for {user} (use the local password set with "
                "`commsproxy login`, not the provider's)",
                code="AUTHENTICATIONFAILED",
            )

    def _capped_key(self, user: str, provider: OAuthProvider) -> str | None:
        """The key ``user`` is counted under at Gmail's cap (None: no cap); refuses when full."""
        if provider.name != "gmail":
            return None
        key = self.oauth.signins.identity(user, provider).account
        if self.gmail_cap.full(key):
            raise self.over_cap(user)
        return key

    def over_cap(self, user: str) -> No:
        why = (
            f"{user} has {self.gmail_cap.limit} IMAP connections open through commsproxy; Gmail "
            f"allows {GMAIL_IMAP_CONNECTIONS} per user and commsproxy keeps {TRIAGE_CONNECTIONS} "
            "for triage: close a mail program, or let it use fewer connections"
        )
        self.say_once(user, "cap", f"imap: refusing a login: {why}")
        return No(f"commsproxy: {why}", code="UNAVAILABLE")

    def say_once(self, user: str, what: str, line: str) -> None:
        if self._trouble.get(user) != what:
            self._trouble[user] = what
            log.warning("%s", line)

    def logged_in(self, user: str, exchange: BearerLogin) -> None:
        if exchange.retried:
            log.info("imap: upstream refused a token of %s; a fresh one worked", user)
        if self._trouble.pop(user, None) is not None:
            log.warning("imap: %s can log in again", user)


class _Exchange:
    """The bearer login on the link, with the cap and the once-only log lines around it."""

    def __init__(
        self, owner: OAuthUpstreamLogin, user: str, login: BearerLogin, capped: str | None
    ) -> None:
        self.owner, self.user, self.login, self.capped = owner, user, login, capped

    async def log_in(self, link: UpstreamLink) -> bytes:
        # Counted only now that the link exists: it stops counting when the relay closes it.
        if self.capped is not None and not self.owner.gmail_cap.take(self.capped, link.writer):
            raise self.owner.over_cap(self.user)
        try:
            answer = await self.login.log_in(link)
        except OAuthError as err:  # the retry's fresh token could not be had
            refusal = token_refusal(err)
            self.owner.say_once(self.user, type(err).__name__, f"imap: {refusal.text}")
            raise refusal from None
        except ServerThrottled as err:
            self.owner.say_once(self.user, "THROTTLED", f"imap: {err.text}")
            raise
        except No as err:
            self.owner.say_once(self.user, "refused", f"imap: {err.text}")
            raise
        self.owner.logged_in(self.user, self.login)
        return answer
