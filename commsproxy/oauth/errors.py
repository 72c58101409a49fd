"""What can go wrong in OAuth2 sign-in and token refresh, as types the proxy and triage can act on.

Every message is one line a user can act on; none ever holds a token, a code or a password.
"""

from __future__ import annotations

import math

__all__ = [
    "OAuthError",
    "ProviderError",
    "SecretStoreError",
    "SignInFailed",
    "SignInNeeded",
    "Throttled",
    "WrongPassword",
    "reason_in_one_line",
]


class OAuthError(RuntimeError):
    """Base class: anything in sign-in, refresh or the secret store that did not work."""


class SignInNeeded(OAuthError):
    """The login has no usable refresh token (never signed in, revoked or expired).

    ``reason`` is one line for a mail client's ``NO [AUTHENTICATIONFAILED]`` and for ``status``.
    """

    def __init__(self, login: str, why: str) -> None:
        self.login = login
        self.reason = f"{why}: run `commsproxy login {login}`"
        super().__init__(self.reason)


class Throttled(OAuthError):
    """The provider asked us to slow down (HTTP 429 or 503 with Retry-After)."""

    def __init__(self, provider: str, retry_after: float) -> None:
        self.provider = provider
        self.retry_after = retry_after
        super().__init__(f"{provider} is throttling sign-in requests; wait {retry_after:g} s")

    @property
    def wait(self) -> int:
        """Whole seconds to wait, at least one (what a mail program is told)."""
        return max(1, math.ceil(self.retry_after))


class ProviderError(OAuthError):
    """The provider answered with an error that is neither a sign-in problem nor throttling."""

    def __init__(
        self, message: str, *, error: str | None = None, status: int | None = None
    ) -> None:
        self.error = error
        self.status = status
        super().__init__(message)


class SignInFailed(OAuthError):
    """An interactive sign-in (browser or device) did not finish: denied, expired, timed out."""


class SecretStoreError(OAuthError):
    """The refresh token or the local password could not be stored or read."""


class WrongPassword(SecretStoreError):
    """The local password does not match (the hash, or the key of the encrypted token file)."""


def reason_in_one_line(err: OAuthError) -> str:
    """Why no access token can be had, as the one line IMAP and SMTP replies carry."""
    if isinstance(err, SignInNeeded):
        return err.reason
    if isinstance(err, Throttled):
        return f"{err.provider} is throttling sign-in requests; try again in {err.wait} s"
    return (str(err).splitlines() or ["sign-in failed"])[0]
