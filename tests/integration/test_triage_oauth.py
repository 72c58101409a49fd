"""Triage of an OAuth2 login against the real bed: XOAUTH2 with 2 s tokens, a revoked sign-in.

The proxy's triage engine logs in with the same AccessTokens as the mail program's sessions;
tokens expire every 2 s across triage passes and a batch release. Then the user's consent is
revoked: triage pauses, ``status`` says why, one notice lands in INBOX, and after a new sign-in
(no restart) triage resumes and releases at once the batch whose time passed meanwhile. A
census proves every message is in INBOX or a hold mailbox exactly once. The refresh token is
kept in a keyring backed by a file in the temp dir (tests/testbed/file_keyring.py).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from commsproxy.oauth import TokenSet, save_sign_in
from commsproxy.triage.state_store import FILENAME, StateStore
from tests.integration.test_triage import _id
from tests.testbed.dovecot import Dovecot
from tests.testbed.file_keyring import ENV as KEYRING_FILE_ENV
from tests.testbed.file_keyring import FileKeyring
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_server import OAuthServer, OAuthUser
from tests.testbed.oauth_signin import bed_provider, browser_sign_in, provider_toml
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, quiet_batches, wait_until, where

LIFETIME = 2
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{40,}")
NOTICE = "sign in again to keep triaging"


def _newsletter(mid: str) -> bytes:
    return (
        "From: News <noreply@news.example.org>\r\nTo: me@example.com\r\n"
        f"Subject: Weekly digest\r\nMessage-ID: {mid}\r\n"
        "List-Id: <weekly.news.example.org>\r\n"
        "List-Unsubscribe: <mailto:leave@news.example.org>\r\n"
        "Precedence: bulk\r\n\r\nThis week: articles and events. Unsubscribe at any time.\r\n"
    ).encode()


def test_triage_signs_in_with_oauth2_pauses_when_revoked_and_resumes(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
    tmp_path: Path,
) -> None:
    user = oauth_user.username
    provider = bed_provider(oauth_server, oauth_server.register_client(access_token_lifetime=2))
    keyring = FileKeyring(tmp_path / "keyring.json")
    password = f"local-{secrets.token_hex(6)}"
    issued: list[TokenSet] = []
    secrets_dir = tmp_path / "data" / "commsproxy" / "oauth"  # the proxy's, by XDG_DATA_HOME

    def sign_in() -> None:
        tokens = browser_sign_in(provider, oauth_user, oauth_browser)
        issued.append(tokens)
        save_sign_in(user, provider, tokens, password, directory=secrets_dir, backend=keyring)

    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    config.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
state_dir = "{state}"

[[login]]
username = "{user}"
{provider_toml(provider)}
upstream_imap = "imap://127.0.0.1:{oauth_dovecot.imap_port}"

[web]
enabled = false

[triage]
gate_timeout = 5
{quiet_batches()}
""",
        encoding="utf-8",
    )
    env = {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHON_KEYRING_BACKEND": "tests.testbed.file_keyring.FileKeyring",
        KEYRING_FILE_ENV: str(keyring.path),
    }
    sign_in()
    proxy = ProxyProcess(["--config", str(config), "-v"], env=env).start()

    def cli(*args: str, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "commsproxy", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, **env},
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout

    def refreshes() -> int:
        return len(oauth_server.events("refreshed", user=user))

    def placed(mid: str) -> str | None:
        return where(oauth_dovecot, user).get(mid)

    try:
        assert proxy.wait_for_log(r"watching INBOX", 20), proxy.log_text()
        # Triage passes and a release across several token expiries.
        first, second = _id(), _id()
        oauth_dovecot.deliver(user, _newsletter(first))
        assert wait_until(lambda: placed(first) == "Later/Bulk", 20), proxy.log_text()
        start = refreshes()
        assert wait_until(lambda: refreshes() >= start + 2, 10)  # the engine keeps them fresh
        oauth_dovecot.deliver(user, _newsletter(second))
        assert wait_until(lambda: placed(second) == "Later/Bulk", 20)
        assert "released" in cli("release", "--now", "--batch", "bulk")
        assert wait_until(lambda: placed(first) == placed(second) == "INBOX", 20)

        # The sign-in is revoked: triage pauses, says why, leaves one notice.
        held = _id()
        oauth_dovecot.deliver(user, _newsletter(held))
        assert wait_until(lambda: placed(held) == "Later/Bulk", 20)
        assert oauth_server.revoke_user(user) >= 1
        assert proxy.wait_for_log(rf"triage\[{re.escape(user)}\]: paused: ", 15)

        def notices() -> int:
            found = oauth_dovecot.doveadm(
                "search", "-u", user, "mailbox", "INBOX", "subject", NOTICE
            )
            return found.count("\n")

        assert wait_until(lambda: notices() == 1, 10)
        status = cli("status", code=1)  # triage does not work: status says so in its exit
        assert "triage PAUSED since" in status
        assert f"run `commsproxy login {user}`" in status
        paused = json.loads(cli("status", "--json", code=1))["logins"][0]["paused"]
        assert f"run `commsproxy login {user}`" in paused["reason"]
        assert paused["notice_sent"] is not None
        untriaged = _id()
        oauth_dovecot.deliver(user, _newsletter(untriaged))
        assert not wait_until(lambda: placed(untriaged) != "INBOX", 5)  # paused indeed
        assert notices() == 1  # one notice, however often triage tried meanwhile

        # The batch's time passes during the pause (its last release a week ago).
        long_ago = datetime.now(UTC) - timedelta(days=8)
        with sqlite3.connect(state / FILENAME) as db:
            db.execute("DELETE FROM releases")  # the record of the last schedule time
        db.close()
        with StateStore.open(state) as store:
            for batch in ("later", "bulk"):
                release = store.start_release(user, batch, long_ago, long_ago)
                store.finish_release(release, 0, long_ago)

        sign_in()  # `commsproxy login`; the proxy keeps running
        assert proxy.wait_for_log(r"signed in again; triage resumes", 15), proxy.log_text()
        assert wait_until(lambda: placed(held) == "INBOX", 20)  # released at once
        assert wait_until(lambda: placed(untriaged) == "Later/Bulk", 20)  # triaged again
        assert wait_until(lambda: notices() == 0, 10)  # the notice goes once triage works
        assert "PAUSED" not in cli("status")

        counts = census(oauth_dovecot, user)
        for mid in (first, second, held, untriaged):
            assert counts[mid] == 1, (mid, counts)
        assert all(n == 1 for n in counts.values()), counts
    finally:
        proxy.stop()

    log = proxy.log_text()
    found = [password, oauth_user.password]
    for tokens in issued:
        found.append(tokens.access_token.reveal())
        if tokens.refresh_token is not None:
            found.append(tokens.refresh_token.reveal())
    assert TOKEN_LIKE.search(log) is None, TOKEN_LIKE.search(log)
    for path in [config, *state.glob(FILENAME + "*")]:
        content = path.read_bytes()
        assert not any(s.encode() in content for s in found), path
    assert all(s not in log for s in found)
