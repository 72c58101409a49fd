"""OAuth2 logins on the SMTP side: the local password towards the mail program, a token upstream.

A mail program logs in to commsproxy with AUTH PLAIN or LOGIN and the login's local password,
which is checked against its scrypt hash in a worker thread (it takes tens of milliseconds and
must not stall other sessions). Upstream, commsproxy authenticates with AUTH XOAUTH2, or
OAUTHBEARER (RFC 7628) where the server offers only that, and an access token from the login's
shared ``AccessTokens``.

The SASL response goes on its own line after the server's ``334``, never as an initial response
on the AUTH line: a JWT access token makes that line longer than some servers take (Dovecot 2.3
submission refuses command lines over about 1 KiB; Microsoft's tokens are longer still). A
refused token (an error challenge saying ``invalid_token``/401, or a bare 535) is dropped and
the login tried once more with a fresh one, which covers a token revoked or rotated before its
announced expiry; a second refusal reaches the client with the server's own reply.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

import aiosmtplib

from ...endpoints import Endpoint
from ...oauth import (
    AccessTokens,
    BearerMechanism,
    OAuthError,
    OAuthProvider,
    Secret,
    SignInNeeded,
    SignIns,
    choose_mechanism,
    mailbox_identity,
    parse_error_challenge,
    reason_in_one_line,
)
from ...oauth.password import has_local_password

__all__ = [
    "LocalPassword",
    "NoBearerMechanism",
    "TokenRefused",
    "authenticate_with_token",
    "check_local_password",
    "oauth_reply",
]

log = logging.getLogger("commsproxy.smtp")


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


class TokenRefused(aiosmtplib.SMTPAuthenticationError):
    """The upstream refused the access token; ``fresh_may_help`` when it said the token is bad."""

    def __init__(self, code: int, message: str, *, fresh_may_help: bool) -> None:
        super().__init__(code, message)
        self.fresh_may_help = fresh_may_help


class NoBearerMechanism(aiosmtplib.SMTPResponseException):
    """The upstream offers neither XOAUTH2 nor OAUTHBEARER."""


async def _bearer_exchange(
    link: aiosmtplib.SMTP, token_response: bytes, mechanism: BearerMechanism
) -> None:
    first = await link.execute_command(b"AUTH", mechanism.name.encode())
    if first.code != 334:
        raise aiosmtplib.SMTPAuthenticationError(first.code, first.message)
    reply = await link.execute_command(token_response)
    if reply.code == 235:
        return
    challenge = None
    if reply.code == 334:  # the error challenge (RFC 7628 §3.2.2): answer it, then the 535
        challenge = parse_error_challenge(reply.message)
        reply = await link.execute_command(mechanism.abort)
    fresh_may_help = challenge.token_rejected if challenge is not None else reply.code == 535
    raise TokenRefused(reply.code, reply.message, fresh_may_help=fresh_may_help)


async def _sasl(link: aiosmtplib.SMTP, mailbox: str, token: Secret, where: Endpoint) -> None:
    if not link.server_auth_methods:  # connect() greets with EHLO only when it did STARTTLS
        await link.ehlo()
    methods = link.server_auth_methods
    mechanism = choose_mechanism(methods)
    if mechanism is not None:
        response = mechanism.response(mailbox, token, where.host, where.port)
        await _bearer_exchange(link, response, mechanism)
    else:
        offered = " ".join(m.upper() for m in methods) or "none"
        raise NoBearerMechanism(
            454, f"4.7.0 upstream {where} offers neither XOAUTH2 nor OAUTHBEARER (AUTH {offered})"
        )


async def authenticate_with_token(
    link: aiosmtplib.SMTP, tokens: AccessTokens, user: str, provider: OAuthProvider, where: Endpoint
) -> None:
    """Log ``link`` in as ``user``'s mailbox with an access token; retry once with a fresh one.

    Raises OAuthError (SignInNeeded, Throttled, ...) when no token can be had, TokenRefused or
    another SMTPResponseException when the upstream says no.
    """
    mailbox = mailbox_identity(user, provider.name).mailbox
    try:
        await _sasl(link, mailbox, await tokens.get(), where)
    except TokenRefused as err:
        if not err.fresh_may_help:
            raise
        log.info("smtp: %s refused the access token of %s; trying a fresh one", where, user)
        tokens.forget()
        await _sasl(link, mailbox, await tokens.get(), where)


def oauth_reply(err: OAuthError) -> str:
    """The SMTP reply for a login that cannot get an access token, in one line."""
    status = "535 5.7.8" if isinstance(err, SignInNeeded) else "454 4.7.0"
    return f"{status} commsproxy: {reason_in_one_line(err)}"
