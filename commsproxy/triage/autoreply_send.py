"""Sending auto-replies through the login's own SMTP server, logged in as the login.

A password login uses the credentials triage already has (the engine's; never stored): AUTH
PLAIN, or LOGIN where PLAIN is not offered, tried once, so a wrong password counts once
against the server's lockout. An OAuth2 login uses the access token its IMAP and SMTP sessions
share, over XOAUTH2 or OAUTHBEARER, with the SASL response on its own line after the server's
334 (a JWT on the AUTH line is longer than some servers take); a refused token is dropped and
the login tried once more with a fresh one, as the proxy's SMTP side does.

One connection serves the few replies of one engine step, then QUIT.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosmtplib

from ..endpoints import Endpoint
from ..oauth import AccessTokens
from ..upstream.smtp import bearer_login, smtp_client

__all__ = ["PasswordLogin", "SmtpRefused", "TokenLogin", "smtp_link"]


@dataclass(frozen=True)
class PasswordLogin:
    user: str
    password: str

    def __repr__(self) -> str:  # never the password, not even in a traceback
        return f"PasswordLogin({self.user!r})"


@dataclass(frozen=True)
class TokenLogin:
    tokens: AccessTokens
    mailbox: str  # the SASL user


class SmtpRefused(Exception):
    """The server refused the login or a message; ``permanent`` for a 5xx answer."""

    def __init__(self, what: str, code: int, text: str) -> None:
        super().__init__(f"{what}: {code} {text}".strip())
        self.permanent = 500 <= code < 600


async def _password(link: aiosmtplib.SMTP, login: PasswordLogin) -> None:
    methods = link.server_auth_methods
    if "plain" in methods or "login" not in methods:
        await link.auth_plain(login.user, login.password)
    else:
        await link.auth_login(login.user, login.password)


async def _log_in(
    link: aiosmtplib.SMTP, login: PasswordLogin | TokenLogin, where: Endpoint
) -> None:
    if not link.server_auth_methods:  # connect() greets with EHLO only when it did STARTTLS
        await link.ehlo()
    if isinstance(login, PasswordLogin):
        await _password(link, login)
    else:
        await bearer_login(link, login.tokens, login.mailbox, where)


@asynccontextmanager
async def smtp_link(
    where: Endpoint, tls: ssl.SSLContext, login: PasswordLogin | TokenLogin, seconds: float
) -> AsyncIterator[SmtpLink]:
    """A logged-in link to ``where``, closed (QUIT) at the end.

    Raises SmtpRefused when the server refuses the login, aiosmtplib.SMTPException or OSError
    when it cannot be reached, OAuthError when no access token can be had.
    """
    link = smtp_client(where, tls, seconds)
    await link.connect()
    try:
        try:
            await _log_in(link, login, where)
        except aiosmtplib.SMTPResponseException as err:
            raise SmtpRefused("log in", err.code, err.message) from None
        yield SmtpLink(link)
    finally:
        if link.is_connected:
            try:
                await link.quit()
            except (aiosmtplib.SMTPException, OSError):
                link.close()


class SmtpLink:
    """A logged-in link: one message at a time."""

    def __init__(self, link: aiosmtplib.SMTP) -> None:
        self._link = link

    async def send(self, mail_from: str, recipient: str, content: bytes) -> None:
        """Raises SmtpRefused when the server refuses the message or its recipient."""
        try:
            await self._link.sendmail(mail_from, [recipient], content)
        except aiosmtplib.SMTPRecipientsRefused as err:
            first = err.recipients[0] if err.recipients else None
            code, text = (first.code, first.message) if first is not None else (550, "")
            raise SmtpRefused(f"to {recipient}", code, text) from None
        except aiosmtplib.SMTPResponseException as err:
            raise SmtpRefused(f"to {recipient}", err.code, err.message) from None
