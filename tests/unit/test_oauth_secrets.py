"""Refresh tokens in the keyring or an encrypted file; the local password as a scrypt hash."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from keyring.backends import fail, null

from commsproxy.oauth.errors import SecretStoreError, WrongPassword
from commsproxy.oauth.password import check_local_password, has_local_password, set_local_password
from commsproxy.oauth.providers import MICROSOFT365, preset_provider
from commsproxy.oauth.signins import SignIns, save_sign_in
from commsproxy.oauth.tokens import Secret, TokenSet
from commsproxy.oauth.vault import (
    KEYRING_SERVICE,
    EncryptedFileStore,
    KeyringStore,
    Locked,
    choose_store,
    keyring_usable,
)

from .oauth_fakes import FakeTransport, MemoryKeyring, reply

ACCOUNT = "ann@contoso.test"
PROVIDER = preset_provider(MICROSOFT365, "client-id")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keyring_store_round_trip() -> None:
    backend = MemoryKeyring()
    store = KeyringStore(backend)
    assert store.load(ACCOUNT) is None
    store.save(ACCOUNT, Secret("RT"))
    assert backend.items == {(KEYRING_SERVICE, ACCOUNT): "RT"}
    assert store.load(ACCOUNT) == Secret("RT")
    store.delete(ACCOUNT)
    store.delete(ACCOUNT)  # deleting what is gone is fine
    assert store.load(ACCOUNT) is None


def test_headless_keyring_falls_back_to_the_encrypted_file(tmp_path: Path) -> None:
    assert not keyring_usable(fail.Keyring())
    assert not keyring_usable(null.Keyring())
    assert keyring_usable(MemoryKeyring())
    assert isinstance(choose_store(tmp_path, backend=fail.Keyring()), EncryptedFileStore)
    assert isinstance(choose_store(tmp_path, backend=MemoryKeyring()), KeyringStore)


def test_encrypted_file_round_trip_and_wrong_password(tmp_path: Path) -> None:
    directory = tmp_path / "oauth"
    EncryptedFileStore(directory, "local pw").save(ACCOUNT, Secret("RT-very-secret"))
    path = EncryptedFileStore(directory).path(ACCOUNT)
    assert mode(path) == 0o600
    assert mode(directory) == 0o700
    assert b"RT-very-secret" not in path.read_bytes()
    assert EncryptedFileStore(directory, "local pw").load(ACCOUNT) == Secret("RT-very-secret")
    with pytest.raises(WrongPassword, match=f"wrong local password for {ACCOUNT}"):
        EncryptedFileStore(directory, "guess").load(ACCOUNT)
    with pytest.raises(Locked, match="log in once from your mail program"):
        EncryptedFileStore(directory).load(ACCOUNT)
    assert EncryptedFileStore(directory, "local pw").load("bob@contoso.test") is None


def test_encrypted_file_cannot_be_moved_to_another_account(tmp_path: Path) -> None:
    store = EncryptedFileStore(tmp_path, "pw")
    store.save(ACCOUNT, Secret("RT"))
    store.path(ACCOUNT).rename(store.path("eve@contoso.test"))
    with pytest.raises(WrongPassword):
        store.load("eve@contoso.test")


def test_damaged_file_says_what_to_do(tmp_path: Path) -> None:
    store = EncryptedFileStore(tmp_path, "pw")
    store.path(ACCOUNT).write_text(json.dumps({"format": 1}), encoding="utf-8")
    with pytest.raises(SecretStoreError, match="commsproxy login"):
        store.load(ACCOUNT)


def test_local_password_is_a_scrypt_hash(tmp_path: Path) -> None:
    assert not has_local_password(tmp_path, ACCOUNT)
    assert not check_local_password(tmp_path, ACCOUNT, "anything")
    set_local_password(tmp_path, ACCOUNT, "correct horse")
    path = next(tmp_path.glob("*.password"))
    assert mode(path) == 0o600
    data = json.loads(path.read_text())
    assert data["kdf"] == "scrypt"
    assert "correct horse" not in path.read_text()
    assert check_local_password(tmp_path, ACCOUNT, "correct horse")
    assert not check_local_password(tmp_path, ACCOUNT, "correct horse ")
    set_local_password(tmp_path, "other@x.test", "correct horse")  # own random salt each
    other = json.loads(next(tmp_path.glob("other*.password")).read_text())
    assert (other["salt"], other["hash"]) != (data["salt"], data["hash"])
    with pytest.raises(SecretStoreError, match="empty"):
        set_local_password(tmp_path, ACCOUNT, "")


def test_account_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    set_local_password(tmp_path / "d", "../../etc/x", "pw")
    assert [p.parent for p in tmp_path.rglob("*.password")] == [tmp_path / "d"]


def test_save_sign_in_with_keyring_and_check_password(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    tokens = TokenSet(Secret("AT"), 0.0, Secret("RT"))
    where = save_sign_in(ACCOUNT, PROVIDER, tokens, "pw", directory=tmp_path, backend=backend)
    assert where.startswith("the keyring")
    assert backend.items[(KEYRING_SERVICE, ACCOUNT)] == "RT"
    assert not list(tmp_path.glob("*.token"))
    signins = SignIns(directory=tmp_path, backend=backend)
    assert signins.check_password(ACCOUNT, PROVIDER, "pw")
    assert not signins.check_password(ACCOUNT, PROVIDER, "PW")


async def test_headless_sign_in_unlocks_with_the_local_password(tmp_path: Path) -> None:
    """Without a keyring, the token file opens once the mail program gives the right password."""
    tokens = TokenSet(Secret("AT"), 0.0, Secret("RT-file"))
    where = save_sign_in(
        ACCOUNT, PROVIDER, tokens, "pw", directory=tmp_path, backend=fail.Keyring()
    )
    assert where == f"an encrypted file in {tmp_path}"
    transport = FakeTransport(lambda request: reply(access_token="AT-2", expires_in=3600))
    signins = SignIns(directory=tmp_path, backend=fail.Keyring(), transport=transport)
    with pytest.raises(Locked):
        await signins.access_token(ACCOUNT, PROVIDER)
    assert not signins.check_password(ACCOUNT, PROVIDER, "wrong")
    with pytest.raises(Locked):
        await signins.access_token(ACCOUNT, PROVIDER)
    assert signins.check_password(ACCOUNT, PROVIDER, "pw")
    assert (await signins.access_token(ACCOUNT, PROVIDER)).reveal() == "AT-2"
    assert transport.requests[0].form["refresh_token"] == "RT-file"


def test_sign_in_without_refresh_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretStoreError, match="offline_access"):
        save_sign_in(ACCOUNT, PROVIDER, TokenSet(Secret("AT"), 0.0), "pw", directory=tmp_path)


def test_reprs_hide_secrets(tmp_path: Path) -> None:
    token = Secret("s3cr3t-value")
    tokens = TokenSet(token, 12.0, Secret("r3fr3sh-value"))
    shown = " ".join([repr(token), str(token), f"{token}", repr(tokens), str(tokens)])
    assert "s3cr3t" not in shown
    assert "r3fr3sh" not in shown
    store = EncryptedFileStore(tmp_path, "my-local-password")
    assert "my-local-password" not in repr(store.__dict__)


async def test_each_account_opens_with_its_own_password_and_a_new_one_takes_over(
    tmp_path: Path,
) -> None:
    """Two headless logins with different local passwords in one proxy; then one signs in again
    with a new password while the proxy runs."""
    other = "bob@contoso.test"
    for account, password, token in ((ACCOUNT, "pw-ann", "RT-ann"), (other, "pw-bob", "RT-bob")):
        save_sign_in(
            account,
            PROVIDER,
            TokenSet(Secret("AT"), 0.0, Secret(token)),
            password,
            directory=tmp_path,
            backend=fail.Keyring(),
        )
    transport = FakeTransport(lambda request: reply(access_token="AT-new", expires_in=3600))
    signins = SignIns(directory=tmp_path, backend=fail.Keyring(), transport=transport)
    assert signins.check_password(ACCOUNT, PROVIDER, "pw-ann")
    assert signins.check_password(other, PROVIDER, "pw-bob")
    await signins.access_token(ACCOUNT, PROVIDER)
    await signins.access_token(other, PROVIDER)
    assert [r.form["refresh_token"] for r in transport.requests] == ["RT-ann", "RT-bob"]

    save_sign_in(
        ACCOUNT,
        PROVIDER,
        TokenSet(Secret("AT"), 0.0, Secret("RT-ann-2")),
        "pw-ann-2",
        directory=tmp_path,
        backend=fail.Keyring(),
    )
    assert signins.check_password(ACCOUNT, PROVIDER, "pw-ann-2")
    signins.tokens(ACCOUNT, PROVIDER).forget()
    await signins.access_token(ACCOUNT, PROVIDER)
    assert transport.requests[-1].form["refresh_token"] == "RT-ann-2"
