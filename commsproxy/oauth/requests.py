"""The requests each flow sends, built as data: authorization URL, token, refresh, device code.

Parameter names are RFC 6749 (§4.1.1, §4.1.3, §6), RFC 7636 (§4.3, §4.5) and RFC 8628 (§3.1,
§3.4), which Microsoft's and Google's documentation use as they are. Nothing here does I/O.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from .errors import SignInFailed
from .http import HttpRequest
from .pkce import Pkce
from .providers import OAuthProvider

__all__ = [
    "DEVICE_GRANT_TYPE",
    "authorization_url",
    "code_request",
    "device_code_request",
    "device_token_request",
    "refresh_request",
]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def _with_secret(provider: OAuthProvider, form: dict[str, str]) -> dict[str, str]:
    # A desktop app's secret is not confidential (Google issues one anyway and wants it back);
    # sent in the body as RFC 6749 §2.3.1 allows, so no provider needs Basic auth.
    if provider.client_secret:
        form["client_secret"] = provider.client_secret
    return form


def authorization_url(
    provider: OAuthProvider,
    *,
    redirect_uri: str,
    state: str,
    pkce: Pkce,
    login_hint: str | None = None,
) -> str:
    """Where the browser signs in; the provider redirects back with ``code`` and ``state``."""
    query = {
        "client_id": provider.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": provider.scope,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": pkce.method,
    }
    if provider.name == "microsoft365":
        query["response_mode"] = "query"  # the code in the query string, as a loopback reads it
    if login_hint:
        query["login_hint"] = login_hint
    base = provider.authorization_endpoint
    joiner = "&" if urlsplit(base).query else "?"
    return base + joiner + urlencode(query)


def code_request(
    provider: OAuthProvider, *, code: str, redirect_uri: str, pkce: Pkce
) -> HttpRequest:
    """Redeem an authorization code (with the PKCE verifier) for tokens."""
    form = {
        "grant_type": "authorization_code",
        "client_id": provider.client_id,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
    }
    if provider.name == "microsoft365":
        form["scope"] = provider.scope  # Microsoft's v2 token endpoint asks for it again
    return HttpRequest(provider.token_endpoint, _with_secret(provider, form))


def refresh_request(provider: OAuthProvider, refresh_token: str) -> HttpRequest:
    form = {
        "grant_type": "refresh_token",
        "client_id": provider.client_id,
        "refresh_token": refresh_token,
    }
    if provider.name != "gmail":  # Google documents no scope on refresh; RFC 6749 §6 allows it
        form["scope"] = provider.scope
    return HttpRequest(provider.token_endpoint, _with_secret(provider, form))


def device_code_request(provider: OAuthProvider) -> HttpRequest:
    if not provider.device_endpoint:
        raise SignInFailed(
            f"{provider.title} has no device authorization endpoint configured "
            "(device_endpoint); sign in with the browser instead"
        )
    form = {"client_id": provider.client_id, "scope": provider.scope}
    return HttpRequest(provider.device_endpoint, form)


def device_token_request(provider: OAuthProvider, device_code: str) -> HttpRequest:
    form = {
        "grant_type": DEVICE_GRANT_TYPE,
        "client_id": provider.client_id,
        "device_code": device_code,
    }
    return HttpRequest(provider.token_endpoint, _with_secret(provider, form))
