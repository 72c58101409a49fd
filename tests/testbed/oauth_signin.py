"""`commsproxy login` as a test does it: a real sign-in at the bed's server, the test the browser.

``browser_sign_in`` runs commsproxy's own PKCE flow with its loopback listener, while the
``Browser`` stand-in logs in, consents and delivers the redirect; ``device_sign_in`` runs the
device grant and approves the code on the verification page. ``BedLogin`` does the whole of
`commsproxy login` (a sign-in, then ``save_sign_in``) and remembers what it was issued.
``bed_provider`` is the ``provider = "custom"`` that a config pointing at the bed resolves to;
``bed_config`` writes such a config.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from keyring.backend import KeyringBackend

from commsproxy.oauth import (
    DeviceCode,
    OAuthProvider,
    TokenSet,
    save_sign_in,
    sign_in_with_browser,
    sign_in_with_device,
)
from tests.testbed.dovecot import Dovecot
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_checks import secrets_of
from tests.testbed.oauth_server import OAuthClient, OAuthServer, OAuthUser

__all__ = [
    "SCOPES",
    "BedLogin",
    "bed_config",
    "bed_provider",
    "browser_sign_in",
    "device_sign_in",
    "provider_toml",
]

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


def bed_config(
    directory: Path, provider: OAuthProvider, dovecot: Dovecot, user: str, *, smtp: bool = False
) -> Path:
    """A config with one OAuth2 login on ``dovecot`` (its submission too with ``smtp``),
    the state dir ``directory/state`` and triage off."""
    smtp_lines = (
        'smtp = "127.0.0.1:0"\n' if smtp else "",
        f'upstream_smtp = "smtp+starttls://localhost:{dovecot.submission_port}"\n'
        f'cafile = "{dovecot.ca_file}"\n'
        if smtp
        else "",
    )
    config = directory / "config.toml"
    config.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
{smtp_lines[0]}state_dir = "{directory / "state"}"

[[login]]
username = "{user}"
{provider_toml(provider)}
upstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"
{smtp_lines[1]}
[triage]
enabled = false
""",
        encoding="utf-8",
    )
    return config


@dataclass(kw_only=True)
class BedLogin:
    """A bed user who runs `commsproxy login`, and everything those sign-ins were issued."""

    server: OAuthServer
    user: OAuthUser
    browser: Browser
    provider: OAuthProvider
    secrets_dir: Path  # the proxy's (XDG_DATA_HOME/commsproxy/oauth)
    backend: KeyringBackend
    local_password: str  # the next sign-in sets this one
    issued: list[TokenSet] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)  # every local password set

    @property
    def name(self) -> str:
        return self.user.username

    def refreshes(self) -> int:
        return len(self.server.events("refreshed", user=self.name))

    def sign_in(self, *, device: bool = False) -> str:
        """A browser (or device) sign-in, then the refresh token and the local password kept;
        returns where the token went."""
        flow = device_sign_in if device else browser_sign_in
        tokens = flow(self.provider, self.user, self.browser)
        self.issued.append(tokens)
        self.passwords.append(self.local_password)
        return save_sign_in(
            self.name,
            self.provider,
            tokens,
            self.local_password,
            directory=self.secrets_dir,
            backend=self.backend,
        )

    def secrets(self) -> list[str]:
        """Every token issued and password set, and the identity provider's password."""
        return secrets_of(self.issued, *self.passwords, self.user.password)


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
