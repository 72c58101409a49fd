"""Reading mail through commsproxy as an OAuth2 login, against the real OAuth2 test bed.

The chain: imaplib (the local password, LOGIN as Thunderbird sends it or AUTHENTICATE PLAIN as
Outlook does) → commsproxy → Dovecot (AUTHENTICATE XOAUTH2 with a JWT that the bed's
authorization server issued and Dovecot validates itself). Sign-ins are real: commsproxy's PKCE
browser flow with the test playing the browser, or the device grant. The refresh token is kept
either in a keyring (a file backend in the temp dir) or, with keyring's ``fail`` backend, in the
encrypted file; nothing of the user running the tests is touched. Access tokens live 2 s.
"""

from __future__ import annotations

import imaplib
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.file_keyring import ENV as KEYRING_FILE_ENV
from tests.testbed.file_keyring import FileKeyring
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_checks import (
    LIFETIME,
    RawImap,
    assert_no_secret,
    let_the_token_expire,
)
from tests.testbed.oauth_server import OAuthServer, OAuthUser
from tests.testbed.oauth_signin import BedLogin, bed_config, bed_provider
from tests.testbed.proxy import ProxyProcess

TIMEOUT = 30


@dataclass(kw_only=True)
class Setup(BedLogin):
    dovecot: Dovecot
    proxy: ProxyProcess
    files: list[Path]  # the config and the state dir: no secret may be in them

    def connect(self) -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", self.proxy.imap_port, timeout=TIMEOUT)

    def login(self, style: str = "thunderbird", password: str | None = None) -> imaplib.IMAP4:
        conn = self.connect()
        password = self.local_password if password is None else password
        try:
            if style == "thunderbird":
                conn.login(self.name, password)
            else:  # Outlook: AUTHENTICATE PLAIN
                conn.authenticate("PLAIN", lambda _: f"\0{self.name}\0{password}".encode())
        except BaseException:
            conn.shutdown()
            raise
        return conn

    def refused(self, password: str | None = None) -> str:
        """The text of a refused LOGIN."""
        conn = self.connect()
        try:
            with pytest.raises(imaplib.IMAP4.error) as raised:
                conn.login(self.name, self.local_password if password is None else password)
        finally:
            conn.shutdown()
        return str(raised.value)


@pytest.fixture(params=["keyring", "encrypted-file"])
def oauth_imap(
    request: pytest.FixtureRequest,
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
    tmp_path: Path,
) -> Iterator[Setup]:
    client = oauth_server.register_client(access_token_lifetime=LIFETIME)
    provider = bed_provider(oauth_server, client)
    data = tmp_path / "data"
    keyring_file = tmp_path / "keyring.json"
    env = {"XDG_DATA_HOME": str(data)}  # the proxy's data dir: the password hash, token file
    backend: KeyringBackend
    if request.param == "keyring":
        env["PYTHON_KEYRING_BACKEND"] = "tests.testbed.file_keyring.FileKeyring"
        env[KEYRING_FILE_ENV] = str(keyring_file)
        backend = FileKeyring(keyring_file)
    else:
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        backend = fail.Keyring()  # type: ignore[no-untyped-call]
    config = bed_config(tmp_path, provider, oauth_dovecot, oauth_user.username)
    setup = Setup(
        server=oauth_server,
        dovecot=oauth_dovecot,
        browser=oauth_browser,
        user=oauth_user,
        provider=provider,
        secrets_dir=data / "commsproxy" / "oauth",
        backend=backend,
        local_password=f"local-{secrets.token_hex(6)}",
        proxy=ProxyProcess(["--config", str(config), "-v"], env=env),
        files=[config, tmp_path / "state"],
    )
    setup.sign_in()
    setup.proxy.start()
    try:
        kept = "the keyring" if request.param == "keyring" else "an encrypted file"
        assert setup.proxy.wait_for_log(f"tokens kept in {kept}", 1)
        yield setup
    finally:
        setup.proxy.stop()
    _assert_no_secret_kept(setup)


def _assert_no_secret_kept(setup: Setup) -> None:
    log = setup.proxy.log_text()
    assert "imap#" in log  # the -v log was captured, with the IMAP sessions in it
    assert_no_secret(log, setup.files, setup.secrets(), encrypted=[setup.secrets_dir])


@pytest.mark.parametrize("style", ["thunderbird", "outlook"])
def test_the_local_password_reads_mail_through_xoauth2(oauth_imap: Setup, style: str) -> None:
    setup = oauth_imap
    subject = f"oauth-imap-{secrets.token_hex(4)}"
    setup.dovecot.deliver(setup.name, message(subject))
    conn = setup.login(style)
    try:
        assert conn.select("INBOX")[0] == "OK"
        typ, data = conn.search(None, "SUBJECT", subject)
        assert typ == "OK"
        assert data[0], data
        typ, fetched = conn.fetch(data[0].split()[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        assert subject.encode() in repr(fetched).encode()
    finally:
        conn.logout()
    assert setup.refreshes() == 1  # the proxy's first token came from the stored sign-in
    assert setup.proxy.wait_for_log(rf"logged in as {setup.name}", 5)


def test_a_wrong_local_password_is_refused_before_any_token(oauth_imap: Setup) -> None:
    setup = oauth_imap
    for password in (setup.local_password + "x", setup.user.password):  # nor the SSO password
        said = setup.refused(password)
        assert "[AUTHENTICATIONFAILED]" in said, said
        assert "wrong password" in said, said
    assert setup.refreshes() == 0
    setup.login().logout()  # the right one still works after the refusals


def test_device_sign_in_serves_the_same_logins(oauth_imap: Setup) -> None:
    setup = oauth_imap
    setup.sign_in(device=True)
    setup.login("outlook").logout()
    assert setup.refreshes() == 1  # with the device grant's refresh token


def test_an_idle_session_outlives_many_token_expiries(oauth_imap: Setup) -> None:
    """The relay is transparent after login: tokens expire around an IDLE that goes on."""
    setup = oauth_imap
    with RawImap(setup.proxy.imap_port) as idler:
        _idle_across_expiries(setup, idler)
    assert setup.refreshes() == 4


def _idle_across_expiries(setup: Setup, idler: RawImap) -> None:
    idler.command(f'a LOGIN {setup.name} "{setup.local_password}"')
    idler.command("b SELECT INBOX")
    idler.send("c IDLE")
    assert idler.line().startswith(b"+")
    subjects = []
    for _ in range(3):  # 3 expiries; each new login refreshes, the IDLE goes on regardless
        let_the_token_expire()
        subject = f"oauth-idle-{secrets.token_hex(4)}"
        subjects.append(subject)
        writer = setup.login()
        writer.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message(subject))
        writer.logout()
        assert re.match(rb"\* \d+ EXISTS", idler.line_matching(rb"EXISTS")), "no push in IDLE"
    idler.send("DONE")
    assert idler.line_matching(rb"^c ").startswith(b"c OK")
    fetched = idler.command("d FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert all(s.encode() in fetched for s in subjects)
    idler.command("e LOGOUT")


def test_many_logins_at_once_share_one_refresh(oauth_imap: Setup) -> None:
    setup = oauth_imap
    setup.login().logout()
    let_the_token_expire()
    before = setup.refreshes()

    def one(style: str) -> str:
        conn = setup.login(style)
        try:
            return conn.select("INBOX")[0]
        finally:
            conn.logout()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, ["thunderbird", "outlook"] * 4))
    assert results == ["OK"] * 8
    assert setup.refreshes() == before + 1


def test_revoked_sign_in_asks_for_login_and_a_new_sign_in_works_without_restart(
    oauth_imap: Setup,
) -> None:
    setup = oauth_imap
    setup.login().logout()
    assert setup.server.revoke_user(setup.name) >= 1
    let_the_token_expire()
    for _ in range(3):  # a mail program retrying
        said = setup.refused()
        assert "[AUTHENTICATIONFAILED]" in said, said
        assert f"run `commsproxy login {setup.name}`" in said, said
    told = [line for line in setup.proxy.lines() if "no longer accepts the sign-in" in line]
    assert len(told) == 1, told  # in the log once, however often the client retries
    assert f"imap: cannot log in {setup.name}" in told[0]

    setup.sign_in()  # `commsproxy login` again; the proxy keeps running
    conn = setup.login("outlook")
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    assert setup.proxy.wait_for_log(rf"imap: {setup.name} can log in again", 5)
