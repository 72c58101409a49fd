"""`commsproxy login` as a test does it: a real sign-in at the bed's server, the test the browser.

``browser_sign_in`` runs commsproxy's own PKCE flow with its loopback listener, while the
``Browser`` stand-in logs in, consents and delivers the redirect; ``device_sign_in`` runs the
device grant and approves the code on the verification page. ``bed_provider`` is the
``provider = "custom"`` that a config pointing at the bed resolves to.
"""

from __future__ import annotations

import threading

from commsproxy.oauth import (
    DeviceCode,
    OAuthProvider,
    TokenSet,
    sign_in_with_browser,
    sign_in_with_device,
)
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_server import OAuthClient, OAuthServer, OAuthUser

__all__ = ["SCOPES", "bed_provider", "browser_sign_in", "device_sign_in", "provider_toml"]

SCOPES = ("openid", "email", "offline_access")
TIMEOUT = 30


def bed_provider(server: OAuthServer, client: OAuthClient) -> OAuthProvider:
    return OAuthProvider(
        name="custom",
        client_id=client.client_id,
        authorization_endpoint=server.authorization_endpoint,
        token_endpoint=server.token_endpoint,
        device_endpoint=server.device_authorization_endpoint,
        revocation_endpoint=server.revocation_endpoint,
        scopes=SCOPES,
    )


def provider_toml(provider: OAuthProvider) -> str:
    """The ``[[login]]`` keys that name ``provider`` (for a config the proxy reads)."""
    scopes = ", ".join(f'"{s}"' for s in provider.scopes)
    return (
        'auth = "oauth2"\nprovider = "custom"\n'
        f'client_id = "{provider.client_id}"\n'
        f'authorization_endpoint = "{provider.authorization_endpoint}"\n'
        f'token_endpoint = "{provider.token_endpoint}"\n'
        f'device_endpoint = "{provider.device_endpoint}"\n'
        f'revocation_endpoint = "{provider.revocation_endpoint}"\n'
        f"scopes = [{scopes}]\n"
    )


def browser_sign_in(provider: OAuthProvider, user: OAuthUser, browser: Browser) -> TokenSet:
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def follow(url: str) -> None:
        try:
            browser.sign_in(url, user, deliver=True)
        except BaseException as err:  # surfaced below, not lost in the thread
            errors.append(err)

    def show_url(url: str) -> None:
        # The loopback listener answers only once show_url returns: the browser runs beside it.
        threads.append(threading.Thread(target=follow, args=(url,), daemon=True))
        threads[-1].start()

    try:
        return sign_in_with_browser(
            provider, login=user.username, show_url=show_url, timeout=TIMEOUT
        )
    finally:
        for thread in threads:
            thread.join(TIMEOUT)
        assert not errors, errors


def device_sign_in(provider: OAuthProvider, user: OAuthUser, browser: Browser) -> TokenSet:
    shown: list[str] = []

    def show_code(code: DeviceCode) -> None:
        # The user approves on another device before commsproxy's first poll.
        if code.verification_uri_complete:
            shown.append(browser.verify_device(code.verification_uri_complete, user))
        else:
            shown.append(
                browser.verify_device(code.verification_uri, user, user_code=code.user_code)
            )

    tokens = sign_in_with_device(provider, login=user.username, show_code=show_code)
    assert shown, "the verification page was never shown"
    assert "Allowed" in shown[0], shown
    return tokens
