"""A day of an OAuth2 login in miniature, with the proxy at ``-v``, then a search for secrets.

One proxy process (IMAP and SMTP, DEBUG log) lives through: a browser sign-in, the mail
program's IMAP login with the local password, an IDLE that goes on while the 2 s token expires
and is refreshed, a message sent through the SMTP side to the user herself that the IDLE then
shows, the consent revoked (both sides refuse, asking for `commsproxy login`), and a new sign-in
with the device grant and a new local password, after which reading and sending work again
without a restart. Then every token the sign-ins issued, both local passwords and the identity
provider's password are looked for in the log, the state dir, the config and the token store
(with anything token- or JWT-shaped in the log, and anything JWT-shaped in the state dir and
the config). Triage is off here: test_triage_oauth.py checks its side the same way.
"""

from __future__ import annotations

import imaplib
import re
import secrets
import smtplib
from pathlib import Path

import pytest
from keyring.backends import fail

from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_checks import (
    LIFETIME,
    RawImap,
    assert_no_secret,
    let_the_token_expire,
    wait_for,
)
from tests.testbed.oauth_server import OAuthServer, OAuthUser
from tests.testbed.oauth_signin import BedLogin, bed_config, bed_provider
from tests.testbed.proxy import ProxyProcess

TIMEOUT = 30


def test_a_day_at_debug_level_leaves_no_secret_behind(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    state = tmp_path / "state"
    login = BedLogin(
        server=oauth_server,
        user=oauth_user,
        browser=oauth_browser,
        provider=bed_provider(
            oauth_server, oauth_server.register_client(access_token_lifetime=LIFETIME)
        ),
        secrets_dir=data / "commsproxy" / "oauth",
        backend=fail.Keyring(),  # type: ignore[no-untyped-call]
        local_password=f"local-{secrets.token_hex(6)}",
    )
    name = login.name
    config = bed_config(tmp_path, login.provider, oauth_dovecot, name, smtp=True)

    def send(subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.login(name, login.local_password)
            assert smtp.sendmail(f"{name}@localhost", [f"{name}@localhost"], message(subject)) == {}

    login.sign_in()
    proxy = ProxyProcess(
        ["--config", str(config), "-v"],
        env={"XDG_DATA_HOME": str(data), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    ).start()
    try:
        # Morning: the mail program logs in and IDLEs; the token expires under the IDLE.
        with RawImap(proxy.imap_port) as idler:
            idler.command(f'a LOGIN {name} "{login.local_password}"')
            idler.command("b SELECT INBOX")
            idler.send("c IDLE")
            assert idler.line().startswith(b"+")
            let_the_token_expire()
            subject = f"day-{secrets.token_hex(4)}"
            send(subject)  # a refresh for the SMTP side; the IDLE carries on
            assert re.match(rb"\* \d+ EXISTS", idler.line_matching(rb"EXISTS"))
            idler.send("DONE")
            assert idler.line_matching(rb"^c ").startswith(b"c OK")
            assert subject.encode() in idler.command("d FETCH 1:* (BODY.PEEK[HEADER])")
            idler.command("e LOGOUT")
        assert login.refreshes() == 2

        # Afternoon: consent is withdrawn; both sides say to sign in again.
        assert oauth_server.revoke_user(name) >= 1
        let_the_token_expire()
        with (
            imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=TIMEOUT) as conn,
            pytest.raises(imaplib.IMAP4.error, match="commsproxy login"),
        ):
            conn.login(name, login.local_password)
        with (
            smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=TIMEOUT) as smtp,
            pytest.raises(smtplib.SMTPAuthenticationError, match="commsproxy login"),
        ):
            smtp.login(name, login.local_password)

        # Evening: `commsproxy login --device` with a new local password; no restart.
        login.local_password = f"local-{secrets.token_hex(6)}"
        login.sign_in(device=True)
        later = f"day-after-{secrets.token_hex(4)}"
        send(later)
        with imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=TIMEOUT) as conn:
            conn.login(name, login.local_password)
            conn.select("INBOX")
            wait_for(lambda: conn.search(None, "SUBJECT", later)[1][0] != b"", "not delivered")
            conn.logout()
    finally:
        proxy.stop()

    log = proxy.log_text()
    assert "imap#" in log  # the -v log of both sides was captured
    assert "smtp: " in log
    assert re.search(r"\bDEBUG\b", log), "not a debug log"
    assert len(login.passwords) == 2
    assert_no_secret(log, [config, state], login.secrets(), encrypted=[login.secrets_dir])
