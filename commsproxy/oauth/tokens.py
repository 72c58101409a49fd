"""Token sets from a token endpoint's answer, and its errors as typed exceptions.

An answer is success (RFC 6749 §5.1: ``access_token``, ``expires_in``, maybe a new
``refresh_token``) or an error (§5.2: ``error``, ``error_description``). ``invalid_grant`` on a
refresh means the refresh token was revoked or has expired: only a new sign-in helps. HTTP 429
(and 503 with Retry-After) is the provider throttling us.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ProviderError, SignInNeeded, Throttled
from .http import HttpResponse, json_body, retry_after_seconds

__all__ = ["DEFAULT_LIFETIME", "Secret", "TokenSet", "check_error", "token_set_from"]

#: When a provider leaves out ``expires_in`` (RFC 6749 makes it optional): a cautious guess.
DEFAULT_LIFETIME = 3600.0


class Secret:
    """A token or password that never shows itself: ``repr``, ``str`` and f-strings hide it.

    ``reveal()`` is the one way to the value, so every place that sends it is easy to find.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret, {len(self._value)} characters>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class TokenSet:
    access_token: Secret = field(repr=False)
    expires_at: float  # on the clock the set was made with (time.time by default)
    refresh_token: Secret | None = field(default=None, repr=False)
    scope: str | None = None

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at - now <= seconds

    def __repr__(self) -> str:
        has_refresh = self.refresh_token is not None
        return f"TokenSet(expires_at={self.expires_at:.0f}, refresh_token={has_refresh})"


def check_error(response: HttpResponse, *, login: str, provider: str, refreshing: bool) -> None:
    """Raise the typed error an unsuccessful token endpoint answer means; return on success."""
    if 200 <= response.status < 300:
        return
    if response.status == 429 or (response.status == 503 and response.header("Retry-After")):
        raise Throttled(provider, retry_after_seconds(response.header("Retry-After")))
    data = json_body(response)
    error = str(data.get("error") or "")
    description = str(data.get("error_description") or "").splitlines()
    detail = description[0][:200] if description else ""
    if refreshing and error == "invalid_grant":
        raise SignInNeeded(login, f"{provider} no longer accepts the sign-in of {login}")
    words = f"{error}: {detail}" if error and detail else error or detail
    raise ProviderError(
        f"{provider} refused the request (HTTP {response.status}"
        + (f", {words})" if words else ")"),
        error=error or None,
        status=response.status,
    )


def token_set_from(
    response: HttpResponse,
    *,
    login: str,
    provider: str,
    refreshing: bool = False,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """The token set in a token endpoint's answer, or the typed error it means."""
    check_error(response, login=login, provider=provider, refreshing=refreshing)
    data = json_body(response)
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError(f"{provider} answered without an access token", status=response.status)
    token_type = str(data.get("token_type", "Bearer"))
    if token_type.lower() != "bearer":
        raise ProviderError(f"{provider} issued a {token_type!r} token; only Bearer is usable")
    lifetime = data.get("expires_in")
    try:
        seconds = float(lifetime) if lifetime is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    refresh = data.get("refresh_token")
    scope = data.get("scope")
    return TokenSet(
        access_token=Secret(access),
        expires_at=clock() + seconds,
        refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
        scope=scope if isinstance(scope, str) else None,
    )
