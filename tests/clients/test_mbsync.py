"""mbsync (isync 1.4) through the proxy: full two-way sync with a local maildir.

isync pipelines its commands, APPENDs with non-synchronizing literals (LITERAL+) and expunges
with CLOSE, so it exercises the relay's framing in both directions; over plain, STARTTLS and
implicit TLS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.clients.helpers import (
    SECURITIES,
    Security,
    assert_imap_sessions_secured,
    assert_password_not_logged,
    check_two_way_sync,
    client_env,
    output_of,
    proxy_imap_port,
    require_program,
    run_client,
    write_mbsync_config,
)
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

pytestmark = pytest.mark.clients


def _backdate_maildirs(maildir: Path) -> None:
    """Age the maildir's directories by a few seconds.

    mbsync sleeps a whole second when a maildir changed within the current second (more
    deliveries could land unseen); the test's own changes are complete, so spare it that.
    """
    past = time.time() - 5
    for sub in maildir.glob("*/*"):
        if sub.name in ("new", "cur"):
            os.utime(sub, (past, past))


@pytest.mark.parametrize("security", SECURITIES)
def test_mbsync_two_way_sync(
    security: Security,
    dovecot: Dovecot,
    proxy: ProxyProcess,
    imap_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    mbsync = require_program("mbsync")
    user, password = imap_user
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = write_mbsync_config(
        tmp_path / "mbsyncrc",
        port=proxy_imap_port(proxy, security),
        user=user,
        password=password,
        security=security,
        ca_file=dovecot.ca_file,
        maildir=maildir,
    )

    def sync() -> None:
        _backdate_maildirs(maildir)
        run_client([mbsync, "-c", str(config), "-a"], env=client_env(tmp_path))

    check_two_way_sync(dovecot, user, password, maildir, sync)
    assert_imap_sessions_secured(proxy, user, security)
    assert_password_not_logged(proxy, user, password)


def test_mbsync_wrong_password_fails_with_upstream_answer(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    mbsync = require_program("mbsync")
    user, password = imap_user
    wrong = f"not-{password}"
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = write_mbsync_config(
        tmp_path / "mbsyncrc",
        port=proxy.imap_port,
        user=user,
        password=wrong,
        security="starttls",
        ca_file=dovecot.ca_file,
        maildir=maildir,
    )
    result = run_client(
        [mbsync, "-c", str(config), "-a"], env=client_env(tmp_path), expect_success=False
    )
    assert result.returncode != 0, output_of(result)
    # Dovecot's own refusal, relayed unchanged.
    assert "AUTHENTICATIONFAILED" in result.stdout + result.stderr, output_of(result)
    assert not list(maildir.glob("*/*/*")), "nothing may be synced without a login"
    assert_password_not_logged(proxy, user, wrong)
