"""Sign-in on a machine without a browser: the device authorization grant (RFC 8628).

The device endpoint answers a ``user_code`` and where to enter it (``verification_uri``;
Google says ``verification_url``); we show both and poll the token endpoint every ``interval``
seconds (5 when not given, §3.2). The poll answers, as a state machine (§3.5):

    authorization_pending  -> wait interval, poll again
    slow_down              -> interval += 5 s, poll again
    access_denied          -> SignInFailed (Microsoft says authorization_declined)
    expired_token          -> SignInFailed; also when expires_in runs out on our own clock
    success                -> the token set
    anything else          -> the typed error check_error raises

``sleep`` and ``clock`` are parameters so tests run the machine without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ProviderError, SignInFailed
from .http import Transport, json_body, urllib_transport
from .providers import OAuthProvider
from .requests import device_code_request, device_token_request
from .tokens import TokenSet, check_error, token_set_from

__all__ = ["DeviceCode", "poll_device_token", "request_device_code", "sign_in_with_device"]

DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0


@dataclass(frozen=True)
class DeviceCode:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float = DEFAULT_INTERVAL
    verification_uri_complete: str | None = None
    message: str | None = None


def request_device_code(
    provider: OAuthProvider, *, login: str, transport: Transport = urllib_transport
) -> DeviceCode:
    response = transport(device_code_request(provider))
    check_error(response, login=login, provider=provider.title, refreshing=False)
    data = json_body(response)
    device_code = data.get("device_code")
    user_code = data.get("user_code")
    uri = data.get("verification_uri") or data.get("verification_url")
    if not (isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)):
        raise ProviderError(f"{provider.title} answered the device code request incompletely")
    complete = data.get("verification_uri_complete")
    message = data.get("message")
    return DeviceCode(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        expires_in=_seconds(data.get("expires_in"), 900.0),
        interval=_seconds(data.get("interval"), DEFAULT_INTERVAL),
        verification_uri_complete=complete if isinstance(complete, str) else None,
        message=message if isinstance(message, str) else None,
    )


def _seconds(value: object, default: float) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default


def poll_device_token(
    provider: OAuthProvider,
    code: DeviceCode,
    *,
    login: str,
    transport: Transport = urllib_transport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    token_clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Poll until the user has signed in on another device, or the code is refused or expired."""
    interval = code.interval
    deadline = clock() + code.expires_in
    while True:
        sleep(interval)
        if clock() >= deadline:
            raise SignInFailed(f"the code {code.user_code} expired before sign-in finished")
        response = transport(device_token_request(provider, code.device_code))
        if 200 <= response.status < 300:
            return token_set_from(response, login=login, provider=provider.title, clock=token_clock)
        error = json_body(response).get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
            continue
        if error in ("access_denied", "authorization_declined"):
            raise SignInFailed(f"sign-in of {login} was declined at {code.verification_uri}")
        if error == "expired_token":
            raise SignInFailed(f"the code {code.user_code} expired before sign-in finished")
        check_error(response, login=login, provider=provider.title, refreshing=False)
        raise ProviderError(f"{provider.title} answered the device poll unexpectedly")


def sign_in_with_device(
    provider: OAuthProvider,
    *,
    login: str,
    show_code: Callable[[DeviceCode], None],
    transport: Transport = urllib_transport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenSet:
    code = request_device_code(provider, login=login, transport=transport)
    show_code(code)
    return poll_device_token(
        provider, code, login=login, transport=transport, clock=clock, sleep=sleep
    )
