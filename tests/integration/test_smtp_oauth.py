"""Sending through commsproxy as an OAuth2 login, against the real OAuth2 test bed.

The chain: smtplib (local password) → commsproxy → Dovecot submission (AUTH XOAUTH2 with a JWT
the bed's authorization server issued) → relay target. The sign-in is the real one: commsproxy's
browser flow with PKCE (or, once, the device grant), the test playing the browser, and
``save_sign_in`` keeping the refresh token in an encrypted file under a temporary data dir
(keyring's ``fail`` backend, so no keyring of the user running the tests is ever touched).
Access tokens live 2 s, so the proxy has to refresh between sends.
"""

from __future__ import annotations

import secrets
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from keyring.backends import fail

from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_checks import (
    LIFETIME,
    assert_no_secret,
    let_the_token_expire,
    wait_for,
)
from tests.testbed.oauth_server import OAuthServer, OAuthUser
from tests.testbed.oauth_signin import BedLogin, bed_config, bed_provider
from tests.testbed.proxy import ProxyProcess

TIMEOUT = 30


@dataclass(kw_only=True)
class OAuthSetup(BedLogin):
    dovecot: Dovecot
    proxy: ProxyProcess

    def send(self, subject: str, *, mechanism: str = "PLAIN") -> None:
        with smtplib.SMTP("127.0.0.1", self.proxy.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.ehlo("client.test")
            _login(smtp, self.name, self.local_password, mechanism)
            refused = smtp.sendmail(f"{self.name}@localhost", ["bob@localhost"], message(subject))
            assert refused == {}

    def relayed(self, subject: str) -> bool:
        return any(subject.encode() in m for m in self.dovecot.relay_captured())


def _login(smtp: smtplib.SMTP, user: str, password: str, mechanism: str) -> None:
    """AUTH PLAIN as Outlook sends it, or AUTH LOGIN step by step as Thunderbird does."""
    smtp.user, smtp.password = user, password
    method = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login}[mechanism]
    smtp.auth(mechanism, method, initial_response_ok=mechanism == "PLAIN")


@pytest.fixture
def oauth_proxy(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
    tmp_path: Path,
) -> Iterator[OAuthSetup]:
    client = oauth_server.register_client(access_token_lifetime=LIFETIME)
    provider = bed_provider(oauth_server, client)
    data = tmp_path / "data"
    config = bed_config(tmp_path, provider, oauth_dovecot, oauth_user.username, smtp=True)
    proxy = ProxyProcess(
        ["--config", str(config), "-v"],
        env={
            # The proxy's data dir (where the encrypted token and the password hash go) and a
            # keyring that refuses everything: nothing of the real user's is read or written.
            "XDG_DATA_HOME": str(data),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        },
    )
    setup = OAuthSetup(
        server=oauth_server,
        dovecot=oauth_dovecot,
        browser=oauth_browser,
        user=oauth_user,
        provider=provider,
        secrets_dir=data / "commsproxy" / "oauth",
        backend=fail.Keyring(),  # type: ignore[no-untyped-call]
        local_password=f"local-{secrets.token_hex(6)}",
        proxy=proxy,
    )
    assert setup.sign_in() == f"an encrypted file in {setup.secrets_dir}"
    proxy.start()
    try:
        assert proxy.wait_for_log(rf"tokens kept in an encrypted file in {setup.secrets_dir}", 1)
        yield setup
    finally:
        proxy.stop()
    _assert_no_secret_logged(setup)


def _assert_no_secret_logged(setup: OAuthSetup) -> None:
    log = setup.proxy.log_text()
    assert "smtp: " in log  # the -v log was captured, and it is the SMTP side's
    assert_no_secret(log, [], setup.secrets(), encrypted=[setup.secrets_dir])


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_local_password_sends_through_xoauth2_and_tokens_refresh(
    oauth_proxy: OAuthSetup, mechanism: str
) -> None:
    setup = oauth_proxy
    first = f"oauth-first-{secrets.token_hex(4)}"
    setup.send(first, mechanism=mechanism)
    wait_for(lambda: setup.relayed(first), "the first message was not relayed")
    assert setup.refreshes() == 1  # the proxy's first token came from the stored sign-in

    let_the_token_expire()
    second = f"oauth-second-{secrets.token_hex(4)}"
    setup.send(second, mechanism=mechanism)
    wait_for(lambda: setup.relayed(second), "the second message was not relayed")
    assert setup.refreshes() == 2

    let_the_token_expire()
    subjects = [f"oauth-together-{i}-{secrets.token_hex(4)}" for i in range(5)]
    with ThreadPoolExecutor(len(subjects)) as pool:
        list(pool.map(setup.send, subjects))
    wait_for(lambda: all(map(setup.relayed, subjects)), "not all five were relayed")
    assert setup.refreshes() == 3  # five sessions at once, one refresh


def test_wrong_local_password_is_refused(oauth_proxy: OAuthSetup) -> None:
    setup = oauth_proxy
    for password in (setup.local_password + "x", setup.user.password):  # nor the SSO password
        with smtplib.SMTP("127.0.0.1", setup.proxy.smtp_port, timeout=TIMEOUT) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
                smtp.login(setup.name, password)
            assert raised.value.smtp_code == 535
    assert setup.refreshes() == 0  # refused before any token was asked for
    assert setup.proxy.wait_for_log(rf"smtp: wrong local password for {setup.name}", 5)


def test_revoked_sign_in_asks_for_login_and_a_new_sign_in_works_without_restart(
    oauth_proxy: OAuthSetup,
) -> None:
    setup = oauth_proxy
    before = f"oauth-before-{secrets.token_hex(4)}"
    setup.send(before)
    wait_for(lambda: setup.relayed(before), "the message before revoking was not relayed")

    assert setup.server.revoke_user(setup.name) >= 1
    let_the_token_expire()
    refused = f"oauth-refused-{secrets.token_hex(4)}"
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", setup.proxy.smtp_port, timeout=TIMEOUT) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
                smtp.login(setup.name, setup.local_password)
            assert raised.value.smtp_code == 535
            error = raised.value.smtp_error
            reason = error.decode() if isinstance(error, bytes) else error
            assert reason.startswith("5.7.8 commsproxy: ")
            assert f"run `commsproxy login {setup.name}`" in reason
            with pytest.raises(smtplib.SMTPSenderRefused):  # nothing goes out unauthenticated
                smtp.sendmail(f"{setup.name}@localhost", ["bob@localhost"], message(refused))
    assert not setup.relayed(refused)
    # One line in the log, however often the mail program retries, and only the SMTP side's:
    # the refresh that found the sign-in revoked does not say it again.
    said = [line for line in setup.proxy.lines() if "no longer accepts the sign-in" in line]
    assert len(said) == 1, said
    assert "smtp: cannot send as" in said[0]
    assert f"run `commsproxy login {setup.name}`" in said[0]

    # `commsproxy login` again, choosing a new local password; the proxy keeps running.
    setup.local_password = f"local-{secrets.token_hex(6)}"
    setup.sign_in()
    after = f"oauth-after-{secrets.token_hex(4)}"
    setup.send(after)
    wait_for(lambda: setup.relayed(after), "the message after signing in again was not relayed")
    assert setup.proxy.wait_for_log(rf"smtp: {setup.name} can send again", 5)


def test_device_sign_in_then_send(oauth_proxy: OAuthSetup) -> None:
    """`commsproxy login --device` on a machine without a browser, then sending as usual."""
    setup = oauth_proxy
    setup.local_password = f"local-{secrets.token_hex(6)}"
    setup.sign_in(device=True)
    refreshes = setup.refreshes()
    subject = f"oauth-device-{secrets.token_hex(4)}"
    setup.send(subject, mechanism="LOGIN")
    wait_for(lambda: setup.relayed(subject), "the message after the device sign-in was lost")
    assert setup.refreshes() == refreshes + 1  # with the device grant's refresh token
    grants = [e["grant_type"] for e in setup.server.events("access_token", user=setup.name)]
    assert "urn:ietf:params:oauth:grant-type:device_code" in grants, grants
