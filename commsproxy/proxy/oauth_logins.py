"""Which logins sign in with OAuth2, and the process's one ``SignIns`` that serves them all.

The service makes one ``OAuthLogins`` at start when any ``[[login]]`` has ``auth = "oauth2"``
and hands the same object to the SMTP listener, the IMAP listener and triage, so every session
of a login and its triage engine share one token refresh. A user name is looked up as
``LoginRoutes`` looks it up (without case), so both agree on which login a client is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..oauth import OAuthProvider, SignIns

__all__ = ["OAuthLogins"]


@dataclass(frozen=True)
class OAuthLogins:
    signins: SignIns
    providers: Mapping[str, OAuthProvider]  # user name, lower case -> who signs it in

    @classmethod
    def of(cls, signins: SignIns, providers: Mapping[str, OAuthProvider]) -> OAuthLogins:
        return cls(signins, {user.strip().lower(): p for user, p in providers.items()})

    def provider_for(self, user: str) -> OAuthProvider | None:
        """The provider of the OAuth2 login ``user`` names; None for a password login."""
        return self.providers.get(user.strip().lower())
