"""SASL initial responses for OAuth2 bearer tokens, and the server's JSON error challenge.

XOAUTH2 (Google's "OAuth 2.0 Mechanism" page; Microsoft's IMAP/SMTP OAuth page uses the same)::

    base64("user=" user "\\x01auth=Bearer " token "\\x01\\x01")

OAUTHBEARER (RFC 7628 §3.1) starts with a GS2 header naming the authorization identity, whose
"," and "=" are escaped as "=2C" and "=3D" (RFC 5801 §4)::

    base64("n,a=" user ",\\x01host=" host "\\x01port=" port "\\x01auth=Bearer " token "\\x01\\x01")

On failure the server sends a challenge holding base64 JSON (RFC 7628 §3.2.2: ``status``,
``scope``, ``openid-configuration``; Google's XOAUTH2 sends ``status``, ``schemes``, ``scope``).
The client then ends the exchange: an empty response for XOAUTH2, a single ``\\x01`` for
OAUTHBEARER (§3.2.3), after which the server sends its tagged NO.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .tokens import Secret

__all__ = [
    "OAUTHBEARER",
    "OAUTHBEARER_ABORT",
    "XOAUTH2",
    "XOAUTH2_ABORT",
    "BearerMechanism",
    "SaslErrorChallenge",
    "choose_mechanism",
    "oauthbearer",
    "parse_error_challenge",
    "xoauth2",
]

#: What the client sends after an error challenge to close the exchange.
XOAUTH2_ABORT = b""
OAUTHBEARER_ABORT = base64.b64encode(b"\x01")


def _saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def xoauth2(user: str, token: Secret) -> bytes:
    """The base64 XOAUTH2 initial response (no line ending)."""
    raw = f"user={user}\x01auth=Bearer {token.reveal()}\x01\x01"
    return base64.b64encode(raw.encode("utf-8"))


def oauthbearer(user: str, token: Secret, host: str, port: int) -> bytes:
    """The base64 OAUTHBEARER initial response (RFC 7628), naming ``user`` as authzid."""
    raw = (
        f"n,a={_saslname(user)},\x01host={host}\x01port={port}"
        f"\x01auth=Bearer {token.reveal()}\x01\x01"
    )
    return base64.b64encode(raw.encode("utf-8"))


@dataclass(frozen=True)
class BearerMechanism:
    """XOAUTH2 or OAUTHBEARER, as the IMAP and SMTP sides both speak them."""

    name: str
    abort: bytes  # what ends the exchange after an error challenge

    def response(self, user: str, token: Secret, host: str, port: int) -> bytes:
        """The base64 initial response; ``host`` and ``port`` are OAUTHBEARER's only."""
        if self is XOAUTH2:
            return xoauth2(user, token)
        return oauthbearer(user, token, host, port)


XOAUTH2 = BearerMechanism("XOAUTH2", XOAUTH2_ABORT)
OAUTHBEARER = BearerMechanism("OAUTHBEARER", OAUTHBEARER_ABORT)


def choose_mechanism(offered: Iterable[str]) -> BearerMechanism | None:
    """XOAUTH2 where the server offers it (Gmail and Microsoft 365 both do), else OAUTHBEARER;
    None if neither. ``offered`` are mechanism names, in any case."""
    names = {name.upper() for name in offered}
    return next((m for m in (XOAUTH2, OAUTHBEARER) if m.name in names), None)


@dataclass(frozen=True)
class SaslErrorChallenge:
    status: str | None = None  # "invalid_token", "401", "insufficient_scope", ...
    scope: str | None = None
    schemes: str | None = None
    openid_configuration: str | None = None

    @property
    def token_rejected(self) -> bool:
        """The access token itself was refused: refresh it (once) and try again."""
        return self.status in ("401", "invalid_token", "400")


def parse_error_challenge(challenge: bytes | str) -> SaslErrorChallenge | None:
    """The error in a server challenge (base64 JSON, or the decoded JSON); None if not one."""
    data = challenge.encode("ascii", "replace") if isinstance(challenge, str) else challenge
    data = data.strip()
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        decoded = data
    try:
        parsed = json.loads(decoded.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(parsed, dict):
        return None

    def text(key: str) -> str | None:
        value = parsed.get(key)
        return str(value) if value is not None else None

    return SaslErrorChallenge(
        status=text("status"),
        scope=text("scope"),
        schemes=text("schemes"),
        openid_configuration=text("openid-configuration"),
    )
