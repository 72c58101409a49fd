"""Proof Key for Code Exchange (RFC 7636) with S256, and the ``state`` value (RFC 6749 §10.12).

The verifier is 32 random bytes in base64url (43 characters, the shortest RFC 7636 §4.1 allows
with the full 256 bits of entropy); the challenge is base64url(SHA-256(verifier)) without padding.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

__all__ = ["Pkce", "new_pkce", "new_state", "s256_challenge"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` for ``verifier`` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str
    method: str = "S256"

    def __repr__(self) -> str:  # the verifier redeems the code: never in a log
        return f"Pkce(challenge={self.challenge!r}, method={self.method!r})"


def new_pkce() -> Pkce:
    verifier = _b64url(secrets.token_bytes(32))
    return Pkce(verifier, s256_challenge(verifier))


def new_state() -> str:
    """An unguessable value tying the redirect to this sign-in (CSRF protection)."""
    return secrets.token_urlsafe(24)
