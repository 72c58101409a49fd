"""The local password: what the user's mail program logs in to commsproxy with.

Only a scrypt hash is kept (``hashlib.scrypt``, a random 16-byte salt, N=2^14, r=8, p=1: about
16 MiB and tens of milliseconds, RFC 7914's interactive-login scale), in an owner-only file; a
login attempt is compared in constant time. The same password also unlocks the encrypted
refresh-token file where no keyring works (``vault``), with its own salt, so the stored hash is
never the file's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SecretStoreError
from .files import file_for, read_json, write_private_json

__all__ = ["ScryptParams", "check_local_password", "has_local_password", "set_local_password"]


@dataclass(frozen=True)
class ScryptParams:
    n: int = 1 << 14
    r: int = 8
    p: int = 1
    length: int = 32

    def derive(self, password: str, salt: bytes) -> bytes:
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=256 * self.n * self.r + (1 << 20),  # 128·N·r bytes, with room to spare
            dklen=self.length,
        )


DEFAULT_SCRYPT = ScryptParams()


def _path(directory: Path, account: str) -> Path:
    return file_for(directory, account, "password")


def set_local_password(
    directory: Path, account: str, password: str, params: ScryptParams = DEFAULT_SCRYPT
) -> None:
    if not password:
        raise SecretStoreError("the local password cannot be empty")
    salt = os.urandom(16)
    write_private_json(
        _path(directory, account),
        {
            "format": 1,
            "kdf": "scrypt",
            "n": params.n,
            "r": params.r,
            "p": params.p,
            "salt": base64.b64encode(salt).decode(),
            "hash": base64.b64encode(params.derive(password, salt)).decode(),
        },
    )


def has_local_password(directory: Path, account: str) -> bool:
    return _path(directory, account).exists()


def check_local_password(directory: Path, account: str, password: str) -> bool:
    """Whether ``password`` is the local password set for ``account`` (False if none is set)."""
    try:
        data = read_json(_path(directory, account))
    except (OSError, ValueError) as err:
        raise SecretStoreError(f"cannot read the local password of {account}: {err}") from None
    if data is None:
        return False
    try:
        params = ScryptParams(int(data["n"]), int(data["r"]), int(data["p"]))
        salt = base64.b64decode(data["salt"])
        expected = base64.b64decode(data["hash"])
    except (KeyError, TypeError, ValueError):
        raise SecretStoreError(
            f"the local password file of {account} is damaged: run `commsproxy login` again"
        ) from None
    params = ScryptParams(params.n, params.r, params.p, len(expected))
    return hmac.compare_digest(params.derive(password, salt), expected)
