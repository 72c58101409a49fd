"""Where a refresh token is kept: the OS keyring, else a file encrypted with the local password.

The keyring (Secret Service, macOS Keychain, Windows Credential Locker) is used through
``keyring`` whenever its backend is a real one. On a headless Linux box keyring falls back to its
``fail`` (or ``null``) backend; then the token goes to ``DATA_DIR/oauth/ACCOUNT.token``: AES-256-GCM
(``cryptography``) under a key derived from the local password with scrypt (own random salt), the
account name as associated data so a file cannot be swapped between accounts, owner-only. A wrong
password fails the GCM tag and is refused as ``WrongPassword``; until the password is given (the
mail program's first login, or ``commsproxy login``) the store is ``Locked``. Each account
keeps the password it was unlocked with: two logins may have different local passwords, and a
new sign-in with a new one replaces the old at the next login.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Protocol

import keyring
import keyring.errors
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from .errors import SecretStoreError, WrongPassword
from .files import file_for, read_json, write_private_json
from .password import DEFAULT_SCRYPT, ScryptParams
from .tokens import Secret

__all__ = [
    "KEYRING_SERVICE",
    "EncryptedFileStore",
    "KeyringStore",
    "Locked",
    "RefreshTokenStore",
    "choose_store",
    "keyring_usable",
]

KEYRING_SERVICE = "commsproxy-oauth"


class Locked(SecretStoreError):
    """The encrypted token file waits for the local password."""

    def __init__(self, account: str) -> None:
        super().__init__(
            f"the sign-in of {account} is encrypted with your local password: log in once "
            "from your mail program, or run `commsproxy login`"
        )


class RefreshTokenStore(Protocol):
    kind: str  # said to the user: "the keyring (SecretService)", "an encrypted file ..."

    def load(self, account: str) -> Secret | None: ...

    def save(self, account: str, token: Secret) -> None: ...

    def delete(self, account: str) -> None: ...


def keyring_usable(backend: KeyringBackend) -> bool:
    """Whether ``backend`` really stores secrets (not keyring's fail/null placeholder)."""
    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return any(keyring_usable(b) for b in backend.backends)
    return True


class KeyringStore:
    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self.backend = backend or keyring.get_keyring()
        self.kind = f"the keyring ({type(self.backend).__module__.rpartition('.')[2]})"

    def load(self, account: str) -> Secret | None:
        try:
            value = self.backend.get_password(KEYRING_SERVICE, account)
        except keyring.errors.KeyringError as err:
            raise SecretStoreError(f"cannot read the keyring: {err}") from None
        return Secret(value) if value else None

    def save(self, account: str, token: Secret) -> None:
        try:
            self.backend.set_password(KEYRING_SERVICE, account, token.reveal())
        except keyring.errors.KeyringError as err:
            raise SecretStoreError(f"cannot write to the keyring: {err}") from None

    def delete(self, account: str) -> None:
        try:
            self.backend.delete_password(KEYRING_SERVICE, account)
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as err:
            raise SecretStoreError(f"cannot write to the keyring: {err}") from None


class EncryptedFileStore:
    def __init__(
        self,
        directory: Path,
        password: str | None = None,
        *,
        params: ScryptParams = DEFAULT_SCRYPT,
    ) -> None:
        self.directory = directory
        self.params = params
        # ``password`` opens every account (``commsproxy login`` saving one sign-in);
        # ``unlock(password, account)`` sets one account's.
        self._default = Secret(password) if password is not None else None
        self._passwords: dict[str, Secret] = {}
        self.kind = f"an encrypted file in {directory}"

    @property
    def locked(self) -> bool:
        return self._default is None and not self._passwords

    def unlock(self, password: str, account: str | None = None) -> None:
        if account is None:
            self._default = Secret(password)
        else:
            self._passwords[account] = Secret(password)

    def _password(self, account: str) -> Secret:
        password = self._passwords.get(account, self._default)
        if password is None:
            raise Locked(account)
        return password

    def path(self, account: str) -> Path:
        return file_for(self.directory, account, "token")

    def _key(self, account: str, salt: bytes) -> bytes:
        return self.params.derive(self._password(account).reveal(), salt)

    def load(self, account: str) -> Secret | None:
        try:
            data = read_json(self.path(account))
        except (OSError, ValueError) as err:
            raise SecretStoreError(f"cannot read {self.path(account)}: {err}") from None
        if data is None:
            return None
        try:
            params = ScryptParams(int(data["n"]), int(data["r"]), int(data["p"]))
            salt = base64.b64decode(data["salt"])
            nonce = base64.b64decode(data["nonce"])
            sealed = base64.b64decode(data["ciphertext"])
        except (KeyError, TypeError, ValueError):
            raise SecretStoreError(
                f"{self.path(account)} is damaged: run `commsproxy login {account}`"
            ) from None
        key = params.derive(self._password(account).reveal(), salt)
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, account.encode("utf-8"))
        except InvalidTag:
            raise WrongPassword(
                f"wrong local password for {account} (it does not open {self.path(account)})"
            ) from None
        return Secret(plain.decode("utf-8"))

    def save(self, account: str, token: Secret) -> None:
        salt, nonce = os.urandom(16), os.urandom(12)
        key = self._key(account, salt)
        sealed = AESGCM(key).encrypt(nonce, token.reveal().encode("utf-8"), account.encode())
        write_private_json(
            self.path(account),
            {
                "format": 1,
                "cipher": "AES-256-GCM",
                "kdf": "scrypt",
                "n": self.params.n,
                "r": self.params.r,
                "p": self.params.p,
                "salt": base64.b64encode(salt).decode(),
                "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(sealed).decode(),
            },
        )

    def delete(self, account: str) -> None:
        self.path(account).unlink(missing_ok=True)


def choose_store(
    directory: Path,
    *,
    password: str | None = None,
    backend: KeyringBackend | None = None,
) -> KeyringStore | EncryptedFileStore:
    """The keyring when it works, else the encrypted file (locked until ``password`` is given)."""
    backend = backend or keyring.get_keyring()
    if keyring_usable(backend):
        return KeyringStore(backend)
    return EncryptedFileStore(directory, password)
