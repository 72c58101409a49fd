"""OAuth2 logins on the SMTP side: the local password towards the mail program, a token upstream.

A mail program logs in to commsproxy with AUTH PLAIN or LOGIN and the login's local password,
which is checked against its scrypt hash in a worker thread (it takes tens of milliseconds and
must not stall other sessions). Upstream, commsproxy logs in with an access token from the
login's shared ``AccessTokens`` (``upstream/smtp.py``: XOAUTH2 or OAUTHBEARER, a fresh token
once when one is refused).
"""

from __future__ import annotations

import asyncio
from enum import Enum

import aiosmtplib

from ...endpoints import Endpoint
from ...oauth import (
    AccessTokens,
    OAuthError,
    OAuthProvider,
    SignInNeeded,
    SignIns,
    mailbox_identity,
    reason_in_one_line,
)
from ...oauth.password import has_local_password
from ...upstream.smtp import NoBearerMechanism, TokenRefused, bearer_login

__all__ = [
    "LocalPassword",
    "NoBearerMechanism",
    "TokenRefused",
    "authenticate_with_token",
    "check_local_password",
    "oauth_reply",
]


class LocalPassword(Enum):
    RIGHT = "right"
    WRONG = "wrong"
    UNSET = "unset"  # never signed in with `commsproxy login`


def _check(signins: SignIns, user: str, provider: OAuthProvider, password: str) -> LocalPassword:
    account = signins.identity(user, provider).account
    if not has_local_password(signins.directory, account):
        return LocalPassword.UNSET
    if signins.check_password(user, provider, password):
        return LocalPassword.RIGHT
    return LocalPassword.WRONG


async def check_local_password(
    signins: SignIns, user: str, provider: OAuthProvider, password: str
) -> LocalPassword:
    """Whether ``password`` is ``user``'s local password; scrypt runs in a worker thread.

    Raises SecretStoreError when the stored hash cannot be read.
    """
    return await asyncio.to_thread(_check, signins, user, provider, password)


async def authenticate_with_token(
    link: aiosmtplib.SMTP, tokens: AccessTokens, user: str, provider: OAuthProvider, where: Endpoint
) -> None:
    """Log ``link`` in as ``user``'s mailbox with an access token; retry once with a fresh one.

    Raises OAuthError (SignInNeeded, Throttled, ...) when no token can be had, TokenRefused or
    another SMTPResponseException when the upstream says no.
    """
    await bearer_login(link, tokens, mailbox_identity(user, provider.name).mailbox, where)


def oauth_reply(err: OAuthError) -> str:
    """The SMTP reply for a login that cannot get an access token, in one line."""
    status = "535 5.7.8" if isinstance(err, SignInNeeded) else "454 4.7.0"
    return f"{status} commsproxy: {reason_in_one_line(err)}"
