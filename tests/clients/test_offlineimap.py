"""offlineimap (offlineimap3, imaplib2) through the proxy: two-way sync with a local maildir.

Unlike mbsync, offlineimap logs in with AUTHENTICATE, APPENDs with synchronizing literals (it
waits for the ``+`` the proxy must pass on) and expunges with EXPUNGE.

No STARTTLS variant: imaplib2 3.05 (Debian's offlineimap3) races its reader thread against the
TLS handshake after STARTTLS. In loops of 40 one-shot syncs it hung, failed with "[SSL] internal
error" or segfaulted in 7 runs through the proxy and hung in 2 straight against Dovecot, so such a
test would fail for the client's sake. mbsync and neomutt cover STARTTLS through the proxy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.helpers import (
    Security,
    assert_imap_sessions_secured,
    assert_password_not_logged,
    check_two_way_sync,
    client_env,
    output_of,
    proxy_imap_port,
    require_program,
    run_client,
    write_offlineimap_config,
)
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

pytestmark = pytest.mark.clients


def _offlineimap_config(
    tmp_path: Path,
    dovecot: Dovecot,
    proxy: ProxyProcess,
    user: str,
    password: str,
    security: Security,
) -> Path:
    maildir = tmp_path / "mail"
    maildir.mkdir()
    return write_offlineimap_config(
        tmp_path / "offlineimaprc",
        port=proxy_imap_port(proxy, security),
        user=user,
        password=password,
        security=security,
        ca_file=dovecot.ca_file,
        maildir=maildir,
        metadata=tmp_path / "metadata",
    )


@pytest.mark.parametrize("security", ["plain", "imaps"])
def test_offlineimap_two_way_sync(
    security: Security,
    dovecot: Dovecot,
    proxy: ProxyProcess,
    imap_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    offlineimap = require_program("offlineimap")
    user, password = imap_user
    config = _offlineimap_config(tmp_path, dovecot, proxy, user, password, security)

    def sync() -> None:
        # -o: one sync and exit; -u basic: plain log lines, no terminal UI.
        run_client([offlineimap, "-c", str(config), "-o", "-u", "basic"], env=client_env(tmp_path))

    check_two_way_sync(dovecot, user, password, tmp_path / "mail", sync)
    assert_imap_sessions_secured(proxy, user, security)
    assert_password_not_logged(proxy, user, password)


def test_offlineimap_wrong_password_fails(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    offlineimap = require_program("offlineimap")
    user, password = imap_user
    wrong = f"not-{password}"
    config = _offlineimap_config(tmp_path, dovecot, proxy, user, wrong, "imaps")
    result = run_client(
        [offlineimap, "-c", str(config), "-o", "-u", "basic"],
        env=client_env(tmp_path),
        expect_success=False,
    )
    assert result.returncode != 0, output_of(result)
    assert "authentication" in (result.stdout + result.stderr).lower(), output_of(result)
    assert not list((tmp_path / "mail").glob("*/*/*")), "nothing may be synced without a login"
    assert_password_not_logged(proxy, user, wrong)
