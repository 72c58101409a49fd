"""How a connection logs in, as a step the caller chooses: a password, or any SASL mechanism.

A login step is an async callable taking the connected :class:`ImapClient`. ``password_login``
is LOGIN (or AUTHENTICATE PLAIN where LOGIN cannot carry the name or password);
``sasl_login`` is any mechanism with an initial response and a handler for challenges, e.g.
XOAUTH2 or OAUTHBEARER: ``sasl_login("XOAUTH2", b"user=me\\x01auth=Bearer TOKEN\\x01\\x01",
on_challenge=empty_answer)`` (a refused token gets a JSON challenge to answer with an empty
line before the ``NO``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .client import Challenge, ImapClient

__all__ = ["Login", "empty_answer", "password_login", "sasl_login"]

Login = Callable[[ImapClient], Awaitable[object]]


def password_login(user: str, password: str) -> Login:
    async def step(client: ImapClient) -> object:
        return await client.login(user, password)

    return step


def sasl_login(
    mechanism: str, initial_response: bytes | None, on_challenge: Challenge | None = None
) -> Login:
    async def step(client: ImapClient) -> object:
        return await client.authenticate(mechanism, initial_response, on_challenge)

    return step


async def empty_answer(_challenge: bytes) -> bytes:
    """Answer any challenge with an empty response (what XOAUTH2's error challenge wants)."""
    return b""
