"""A link to the user's SMTP server: made with the login's TLS, logged in with an access token.

The SMTP relay, `commsproxy check` and triage's auto-replies all talk to the same server the
same way, so they share this (aiosmtplib underneath). An OAuth2 login uses AUTH XOAUTH2, or
OAUTHBEARER (RFC 7628) where the server offers only that. The SASL response goes on its own
line after the server's ``334``, never as an initial response on the AUTH line: a JWT access
token makes that line longer than some servers take (Dovecot 2.3 submission refuses command
lines over about 1 KiB; Microsoft's tokens are longer still). A refused token (an error
challenge saying ``invalid_token``/401, or a bare 535) is dropped and the login tried once more
with a fresh one, which covers a token revoked or rotated before its announced expiry; a second
refusal raises with the server's own reply.
"""

from __future__ import annotations

import logging
import ssl

import aiosmtplib

from ..endpoints import Endpoint, Security
from ..oauth import AccessTokens, BearerMechanism, Secret, choose_mechanism, parse_error_challenge

__all__ = ["NoBearerMechanism", "TokenRefused", "bearer_login", "smtp_client"]

log = logging.getLogger("commsproxy.smtp")


def smtp_client(where: Endpoint, tls: ssl.SSLContext, seconds: float) -> aiosmtplib.SMTP:
    """An unconnected client for ``where``: implicit TLS or STARTTLS as the endpoint says."""
    return aiosmtplib.SMTP(
        hostname=where.host,
        port=where.port,
        use_tls=where.security is Security.IMPLICIT_TLS,
        start_tls=where.security is Security.STARTTLS,
        tls_context=tls,
        timeout=seconds,
        local_hostname="localhost",
    )


class TokenRefused(aiosmtplib.SMTPAuthenticationError):
    """The server refused the access token; ``fresh_may_help`` when it said the token is bad."""

    def __init__(self, code: int, message: str, *, fresh_may_help: bool) -> None:
        super().__init__(code, message)
        self.fresh_may_help = fresh_may_help


class NoBearerMechanism(aiosmtplib.SMTPResponseException):
    """The server offers neither XOAUTH2 nor OAUTHBEARER."""


async def _exchange(
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
    if mechanism is None:
        offered = " ".join(m.upper() for m in methods) or "none"
        raise NoBearerMechanism(
            454, f"4.7.0 upstream {where} offers neither XOAUTH2 nor OAUTHBEARER (AUTH {offered})"
        )
    await _exchange(link, mechanism.response(mailbox, token, where.host, where.port), mechanism)


async def bearer_login(
    link: aiosmtplib.SMTP, tokens: AccessTokens, mailbox: str, where: Endpoint
) -> None:
    """Log ``link`` in as ``mailbox`` with an access token; once more with a fresh one.

    Raises OAuthError (SignInNeeded, Throttled, ...) when no token can be had, TokenRefused,
    NoBearerMechanism or another SMTPResponseException when the server says no.
    """
    try:
        await _sasl(link, mailbox, await tokens.get(), where)
    except TokenRefused as err:
        if not err.fresh_may_help:
            raise
        log.info("smtp: %s refused the access token of %s; trying a fresh one", where, mailbox)
        tokens.forget()
        await _sasl(link, mailbox, await tokens.get(), where)
