"""``commsproxy check`` of an OAuth2 login against the bed's authorization server and Dovecot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from commsproxy.check import Outcome, check_login, report
from commsproxy.config import load_config
from commsproxy.oauth import SignIns
from tests.testbed.dovecot import Dovecot
from tests.testbed.file_keyring import FileKeyring
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_server import OAuthClient, OAuthServer, OAuthUser
from tests.testbed.oauth_signin import BedLogin, bed_config, bed_provider


def test_a_signed_in_login_checks_with_its_token_and_one_without_says_to_sign_in(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_client: OAuthClient,
    oauth_browser: Browser,
    tmp_path: Path,
) -> None:
    provider = bed_provider(oauth_server, oauth_client)
    keyring = FileKeyring(tmp_path / "keyring.json")
    secrets_dir = tmp_path / "oauth"
    path = bed_config(tmp_path, provider, oauth_dovecot, oauth_user.username, smtp=True)
    config = load_config(path, required=True)
    (login,) = config.logins
    signins = SignIns(directory=secrets_dir, backend=keyring)

    before = asyncio.run(check_login(config, login, signins=signins, seconds=10))
    assert before.imap.outcome is Outcome.NO_CREDENTIALS
    assert before.failed
    assert f"run `commsproxy login {oauth_user.username}`" in before.imap.detail

    bed = BedLogin(
        server=oauth_server,
        user=oauth_user,
        browser=oauth_browser,
        provider=provider,
        secrets_dir=secrets_dir,
        backend=keyring,
        local_password="local-secret-1",
    )
    bed.sign_in()
    signins = SignIns(directory=secrets_dir, backend=keyring)
    after = asyncio.run(check_login(config, login, signins=signins, seconds=10))
    lines = "\n".join(report(after))
    assert after.imap.outcome is Outcome.OK, lines
    assert after.smtp.outcome is Outcome.OK, lines
    assert not after.failed
    assert after.mailboxes == []  # triage is off in this config: no hold mailboxes to check
    for secret in bed.secrets():
        assert secret not in lines
