"""pytest fixtures for the OAuth2 test bed: authorization server, token-checking Dovecot, browser.

Loaded as a plugin by tests/conftest.py. The server and the Dovecot live for the session;
tests stay independent by each taking a fresh user and a fresh client. A sign-in, as
tests/integration/test_oauth_testbed.py does it::

    def test_x(oauth_server, oauth_dovecot, oauth_client, oauth_user, oauth_browser):
        url = f"{oauth_server.authorization_endpoint}?response_type=code&client_id=..."
        redirect = oauth_browser.sign_in(url, oauth_user)  # loopback URL with code, state
        # POST the code to oauth_server.token_endpoint; then IMAP AUTHENTICATE XOAUTH2 at
        # oauth_dovecot.imap_port as oauth_user.username with the access token.

Short-lived tokens: ``oauth_server.register_client(access_token_lifetime=2)``. A user who
withdraws consent: ``oauth_server.revoke_user(name)``. What happened (logins, refreshes,
reuse of a rotated refresh token): ``oauth_server.events("refreshed", user=name)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.testbed.dovecot import Dovecot
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_server import OAuthClient, OAuthServer, OAuthUser


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """The running authorization server (plain HTTP on 127.0.0.1), stopped after the session."""
    with OAuthServer() as server:
        yield server


@pytest.fixture(scope="session")
def oauth_dovecot(oauth_server: OAuthServer) -> Iterator[Dovecot]:
    """A private Dovecot that also takes XOAUTH2/OAUTHBEARER with ``oauth_server``'s tokens.

    Password logins work as on the default instance; it is a separate instance, so the
    default ``dovecot`` fixture stays exactly as it was.
    """
    with Dovecot(oauth2=oauth_server.dovecot_validation()) as instance:
        yield instance


@pytest.fixture(scope="session")
def shared_mailbox_dovecot(oauth_server: OAuthServer) -> Iterator[Dovecot]:
    """Like ``oauth_dovecot``, and a token may also open mailboxes granted to its user, as
    Exchange's Full Access does: ``grant_full_access(instance.root / "oauth2", user, box)``
    (oauth_dovecot.py says how). A separate instance, so ``oauth_dovecot`` stays as it is."""
    validation = dataclasses.replace(oauth_server.dovecot_validation(), full_access=True)
    with Dovecot(oauth2=validation) as instance:
        yield instance


@pytest.fixture
def oauth_user(oauth_server: OAuthServer, oauth_dovecot: Dovecot) -> OAuthUser:
    """A fresh mailbox user of ``oauth_dovecot`` who can also sign in at ``oauth_server``.

    ``password`` is the identity provider's password (the login form); the IMAP password
    is ``oauth_dovecot.password(user.username)`` and is a different string, so a client
    that sends one where the other belongs fails.
    """
    name, _imap_password = oauth_dovecot.new_user()
    return oauth_server.add_user(name, f"{name}-sso-secret")


@pytest.fixture
def oauth_client(oauth_server: OAuthServer) -> OAuthClient:
    """A fresh public client (PKCE, loopback redirect, device grant, refresh tokens).

    For other settings call ``oauth_server.register_client(access_token_lifetime=2, ...)``.
    """
    return oauth_server.register_client()


@pytest.fixture
def oauth_browser(oauth_server: OAuthServer) -> Browser:
    """A browser stand-in with its own cookie jar; see Browser.sign_in / verify_device."""
    return Browser(ssl_context=oauth_server.ssl_context())
