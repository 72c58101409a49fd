"""AUTHENTICATE XOAUTH2 or OAUTHBEARER on a connected upstream link, for an OAuth2 login.

The server's capabilities come from its greeting, else from a CAPABILITY command. XOAUTH2 is
used where offered (Gmail and Microsoft 365 both do), else OAUTHBEARER (RFC 7628). With SASL-IR
(RFC 4959) the token goes on the AUTHENTICATE line itself, one round trip fewer; without it,
after the server's ``+``.

A refused token comes back as an error challenge (``+`` and base64 JSON): the exchange is ended
with the mechanism's abort and the server answers NO. When the challenge says the token itself
is bad (or a bare ``NO [AUTHENTICATIONFAILED]`` comes), the cached token is dropped and the
login tried once more with a fresh one: that covers a token revoked or expired before its
announced lifetime. ``NO [THROTTLED]`` (Microsoft 365) is never retried here; it becomes
``ServerThrottled`` for the caller to turn into ``NO [UNAVAILABLE]``, with the wait Exchange
suggests ("Suggested Backoff Time: N milliseconds") where it names one.

Every reply is read as one whole message through the framer (``read_message``), reading no byte
past it, so the relay's framer takes over the stream exactly where the login ended.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from ...imap.capability import capabilities_in
from ...imap.errors import No
from ...imap.grammar import ParseError, Response, ResponseKind, parse_response
from ...oauth import AccessTokens, BearerMechanism, Secret, choose_mechanism, parse_error_challenge
from ...upstream.connect import read_message
from ...upstream.errors import ConnectError
from .hooks import UpstreamLink
from .upstream_link import UpstreamError

__all__ = ["BearerLogin", "ServerThrottled", "TokenRefused", "backoff_seconds"]

_TAGS = ("cpauth1", "cpauth2", "cpauth3")  # the proxy's own: CAPABILITY, first try, retry
_MAX_REPLIES = 64  # untagged lines a server may send before answering a login step
_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d{1,9})\s*milli", re.IGNORECASE)


class ServerThrottled(No):
    """The server said ``NO [THROTTLED]``: too many logins for now."""


class TokenRefused(No):
    """The server refused a fresh access token too (or offers no bearer mechanism)."""


@dataclass(frozen=True)
class _Reply:
    line: bytes
    response: Response

    @property
    def continuation(self) -> bool:
        return self.response.kind is ResponseKind.CONTINUATION

    @property
    def ok(self) -> bool:
        return self.response.name == "OK" and not self.continuation

    @property
    def text(self) -> str:
        """What the server said after its tag, status and code, in one short line."""
        words = self.line.decode("utf-8", "replace").strip().split(" ", 2)
        rest = words[2] if len(words) > 2 else ""
        if rest.startswith("["):
            rest = rest.partition("]")[2].strip()
        return rest[:200] or self.response.name


class BearerLogin:
    """One login's exchange: ``tokens`` give the token, ``mailbox`` is the SASL user."""

    def __init__(
        self, tokens: AccessTokens, mailbox: str, client_tag: str, first_token: Secret
    ) -> None:
        self.tokens = tokens
        self.mailbox = mailbox
        self.client_tag = client_tag
        self._token = first_token
        self.retried = False  # a fresh token was needed (for the log)

    async def log_in(self, link: UpstreamLink) -> bytes:
        """The server's tagged OK under the client's tag; raises a ``No`` refusal, or
        ``OAuthError`` when no fresh token can be had for the retry."""
        caps = capabilities_in(link.greeting) or await self._capabilities(link)
        mechanism = choose_mechanism(c.removeprefix("AUTH=") for c in caps if c.startswith("AUTH="))
        if mechanism is None:
            raise TokenRefused(
                f"commsproxy: upstream {link.endpoint} offers neither AUTH=XOAUTH2 nor "
                "AUTH=OAUTHBEARER",
                code="UNAVAILABLE",
            )
        sasl_ir = "SASL-IR" in caps
        reply, fresh_may_help = await self._attempt(link, mechanism, sasl_ir, _TAGS[1])
        if not reply.ok and fresh_may_help:
            self.retried = True
            self.tokens.forget()
            self._token = await self.tokens.get()
            reply, _ = await self._attempt(link, mechanism, sasl_ir, _TAGS[2])
        if reply.ok:
            tag = reply.response.tag or ""
            return self.client_tag.encode() + reply.line[len(tag) :]
        if reply.response.code == "THROTTLED":
            wait = backoff_seconds(reply.text)
            when = f"in {wait} s" if wait is not None else "in a few minutes"
            raise ServerThrottled(
                f"commsproxy: upstream {link.endpoint} is throttling logins ({reply.text}); "
                f"try again {when}",
                code="UNAVAILABLE",
            )
        raise TokenRefused(
            f"commsproxy: upstream {link.endpoint} refused the access token for "
            f"{self.mailbox}: {reply.text}",
            code="AUTHENTICATIONFAILED",
        )

    async def _capabilities(self, link: UpstreamLink) -> frozenset[str]:
        link.writer.write(f"{_TAGS[0]} CAPABILITY\r\n".encode())
        caps: frozenset[str] = frozenset()
        for _ in range(_MAX_REPLIES):
            line = await _read(link)
            caps = capabilities_in(line) or caps
            if line.startswith(_TAGS[0].encode() + b" "):
                return caps
        raise UpstreamError(f"upstream {link.endpoint}: no answer to CAPABILITY")

    async def _attempt(
        self, link: UpstreamLink, mechanism: BearerMechanism, sasl_ir: bool, tag: str
    ) -> tuple[_Reply, bool]:
        """One AUTHENTICATE: the server's final reply, and whether a fresh token may help."""
        where = link.endpoint
        response = mechanism.response(self.mailbox, self._token, where.host, where.port)
        command = f"{tag} AUTHENTICATE {mechanism.name}".encode()
        if sasl_ir:
            link.writer.write(command + b" " + response + b"\r\n")
        else:
            link.writer.write(command + b"\r\n")
            reply = await _next(link, tag)
            if not reply.continuation:
                return reply, False
            link.writer.write(response + b"\r\n")
        reply = await _next(link, tag)
        challenge = None
        if reply.continuation:  # an error challenge (RFC 7628 §3.2.2): end it, then the NO
            challenge = parse_error_challenge(reply.line[1:].strip())
            link.writer.write(mechanism.abort + b"\r\n")
            reply = await _next(link, tag)
            if reply.continuation:  # a server that wants more: cancel (RFC 3501 §6.2.2)
                link.writer.write(b"*\r\n")
                reply = await _next(link, tag)
        if challenge is not None:
            return reply, challenge.token_rejected
        return reply, reply.response.code == "AUTHENTICATIONFAILED"


def backoff_seconds(text: str) -> int | None:
    """The wait in Exchange Online's throttling text ("Suggested Backoff Time: 9000
    milliseconds"), in whole seconds; None when it names none."""
    found = _BACKOFF.search(text)
    return max(1, math.ceil(int(found.group(1)) / 1000)) if found else None


async def _read(link: UpstreamLink) -> bytes:
    try:
        return await read_message(link.reader, f"upstream {link.endpoint}")
    except ConnectError as err:
        raise UpstreamError(str(err)) from None
    except asyncio.IncompleteReadError:
        raise UpstreamError(f"upstream {link.endpoint} closed the connection") from None


async def _next(link: UpstreamLink, tag: str) -> _Reply:
    """The next continuation, or this tag's completion; untagged data is passed over."""
    for _ in range(_MAX_REPLIES):
        line = await _read(link)
        try:
            response = parse_response(line)
        except ParseError:
            continue
        if response.kind is ResponseKind.CONTINUATION or response.tag == tag:
            return _Reply(line, response)
        if response.kind is ResponseKind.UNTAGGED and response.name == "BYE":
            raise UpstreamError(f"upstream {link.endpoint} ended the login: {line[:120]!r}")
    raise UpstreamError(f"upstream {link.endpoint}: no answer to AUTHENTICATE")
