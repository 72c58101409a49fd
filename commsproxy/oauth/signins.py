"""The OAuth2 side of a running commsproxy: one place that the proxy and triage ask for tokens.

``SignIns`` keeps one ``AccessTokens`` per sign-in (so a login's IMAP sessions, its SMTP relay
and its triage engine share one refresh), checks the local password a mail program logs in with,
and — where the refresh token lives in the encrypted file — unlocks it with that password.
``save_sign_in`` is what ``commsproxy login`` calls after a browser or device sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from keyring.backend import KeyringBackend

from .errors import SecretStoreError
from .files import default_secrets_dir
from .http import Transport, urllib_transport
from .identity import MailboxIdentity, mailbox_identity
from .password import check_local_password, set_local_password
from .providers import OAuthProvider
from .refresh import DEFAULT_MARGIN, AccessTokens
from .tokens import Secret, TokenSet
from .vault import EncryptedFileStore, KeyringStore, choose_store

__all__ = ["SignIns", "save_sign_in"]


def save_sign_in(
    username: str,
    provider: OAuthProvider,
    tokens: TokenSet,
    password: str,
    *,
    directory: Path | None = None,
    backend: KeyringBackend | None = None,
) -> str:
    """Keep the refresh token and the local password's hash; returns where the token went."""
    if tokens.refresh_token is None:
        hint = " (is offline_access among the scopes?)" if provider.name != "gmail" else ""
        raise SecretStoreError(f"{provider.title} issued no refresh token{hint}")
    identity = mailbox_identity(username, provider.name)
    directory = directory or default_secrets_dir()
    store = choose_store(directory, password=password, backend=backend)
    store.save(identity.account, tokens.refresh_token)
    set_local_password(directory, identity.account, password)
    return store.kind


class SignIns:
    def __init__(
        self,
        *,
        directory: Path | None = None,
        backend: KeyringBackend | None = None,
        transport: Transport = urllib_transport,
        clock: Callable[[], float] = time.time,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.directory = directory or default_secrets_dir()
        self._store = choose_store(self.directory, backend=backend)
        self._transport = transport
        self._clock = clock
        self._margin = margin
        self._tokens: dict[tuple[str, str, str], AccessTokens] = {}

    @property
    def store(self) -> KeyringStore | EncryptedFileStore:
        return self._store

    def identity(self, username: str, provider: OAuthProvider) -> MailboxIdentity:
        return mailbox_identity(username, provider.name)

    def tokens(self, username: str, provider: OAuthProvider) -> AccessTokens:
        """The token source for ``username``'s sign-in (the same object for every caller)."""
        account = self.identity(username, provider).account
        key = (account, provider.token_endpoint, provider.client_id)
        source = self._tokens.get(key)
        if source is None:
            source = AccessTokens(
                provider,
                account,
                self._store,
                transport=self._transport,
                clock=self._clock,
                margin=self._margin,
            )
            self._tokens[key] = source
        return source

    async def access_token(self, username: str, provider: OAuthProvider) -> Secret:
        """A fresh access token for ``username``: what IMAP/SMTP put in XOAUTH2/OAUTHBEARER."""
        return await self.tokens(username, provider).get()

    def check_password(self, username: str, provider: OAuthProvider, password: str) -> bool:
        """Whether a mail program's password is ``username``'s local password.

        Blocking (scrypt): call it with ``asyncio.to_thread``. A right password also unlocks the
        encrypted refresh-token file of this account, so refreshes can start; every time, since
        a new sign-in may have set a new password while the proxy ran.
        """
        account = self.identity(username, provider).account
        if not check_local_password(self.directory, account, password):
            return False
        if isinstance(self._store, EncryptedFileStore):
            self._store.unlock(password, account)
        return True
