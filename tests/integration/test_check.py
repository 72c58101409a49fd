"""``commsproxy check`` against the real Dovecot: logins, capabilities, mailboxes, SMTP."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import census, quiet_batches


def _config(
    dovecot: Dovecot,
    directory: Path,
    user: str,
    password: str,
    *,
    imap_port: int | None = None,
    smtp_port: int | None = None,
    accounts: str = "",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    command = json.dumps(f"printf %s {shlex.quote(password)}")  # a TOML basic string
    path = directory / "config.toml"
    path.write_text(
        f"""
[proxy]
state_dir = "{directory / "state"}"

[[login]]
username = "{user}"
password_command = {command}
upstream_imap = "imap://127.0.0.1:{imap_port or dovecot.imap_port}"
upstream_smtp = "smtp://127.0.0.1:{smtp_port or dovecot.submission_port}"
{quiet_batches()}
{accounts}
""",
        encoding="utf-8",
    )
    return path


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commsproxy", "check", "--config", str(config), "--timeout", "10"],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COMMSPROXY_CONFIG": "/nonexistent/commsproxy.toml"},
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_working_login_creates_the_hold_mailboxes_once(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    config = _config(
        dovecot, tmp_path, user, password, accounts='[accounts.acme]\ndomains = ["acme.com"]\n'
    )
    first = _check(config)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert f"IMAP 127.0.0.1:{dovecot.imap_port}: ok: logged in as {user}" in out
    assert f"SMTP 127.0.0.1:{dovecot.submission_port}: ok: AUTH accepted for {user}" in out
    assert "server offers: IDLE MOVE UIDPLUS NAMESPACE" in out
    assert "hold mailbox of batch 'later' Later: created" in out
    assert "hold mailbox of batch 'bulk' Later/Bulk: created" in out
    assert "account folders' root" in out
    assert password not in out + first.stderr
    listed = dovecot.doveadm("mailbox", "list", "-u", user).split()
    assert {"Later", "Later/Bulk"} <= set(listed)

    second = _check(config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "hold mailbox of batch 'later' Later: exists" in second.stdout
    assert "hold mailbox of batch 'bulk' Later/Bulk: exists" in second.stdout


def test_a_mailbox_that_exists_is_left_as_it_is(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    dovecot.doveadm("mailbox", "create", "-u", user, "Later")
    message = b"From: a@example.org\r\nMessage-ID: <kept@example.org>\r\nSubject: x\r\n\r\nkeep\r\n"
    dovecot.deliver(user, message)
    dovecot.doveadm("move", "-u", user, "Later", "mailbox", "INBOX", "all")
    result = _check(_config(dovecot, tmp_path, user, password))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hold mailbox of batch 'later' Later: exists" in result.stdout
    assert census(dovecot, user) == {"<kept@example.org>": 1}
    assert dovecot.message_count(user, "Later") == 1


def test_a_wrong_password_fails_and_says_so(dovecot: Dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user()
    result = _check(_config(dovecot, tmp_path, user, "not-the-password"))
    assert result.returncode == 1
    assert f"IMAP 127.0.0.1:{dovecot.imap_port}: FAILED: " in result.stdout
    assert "refused the login" in result.stdout
    assert f"not working: {user}" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


def test_an_unreachable_server_says_which_and_why(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    port = _free_port()
    result = _check(_config(dovecot, tmp_path, user, password, imap_port=port))
    assert result.returncode == 1
    line = next(row for row in result.stdout.splitlines() if row.strip().startswith("IMAP"))
    assert f"127.0.0.1:{port}: FAILED (unreachable)" in line
    assert "connect call failed" in line.lower()  # why: no connection at all


def test_no_password_command_and_no_terminal_is_skipped(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    config = _config(dovecot, tmp_path, user, password)
    text = "\n".join(
        row for row in config.read_text().splitlines() if not row.startswith("password_command")
    )
    config.write_text(text)
    result = _check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped: no password_command" in result.stdout


def test_a_failing_password_command_fails(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    config = _config(dovecot, tmp_path, user, password)
    text = "\n".join(
        'password_command = "exit 3"' if row.startswith("password_command") else row
        for row in config.read_text().splitlines()
    )
    config.write_text(text)
    result = _check(config)
    assert result.returncode == 1
    assert "FAILED: password_command 'exit 3' failed with exit status 3" in result.stdout


def test_an_unreachable_smtp_server_fails_after_a_good_imap_login(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user, password = dovecot.new_user()
    port = _free_port()
    result = _check(_config(dovecot, tmp_path, user, password, smtp_port=port))
    assert result.returncode == 1
    assert f"IMAP 127.0.0.1:{dovecot.imap_port}: ok" in result.stdout
    assert f"SMTP 127.0.0.1:{port}: FAILED (unreachable): cannot connect to" in result.stdout


def test_smtp_is_not_tried_with_credentials_imap_refused(dovecot: Dovecot, tmp_path: Path) -> None:
    """A second wrong try would only count once more against the server's lockout."""
    user, _ = dovecot.new_user()
    result = _check(_config(dovecot, tmp_path, user, "wrong"))
    assert result.returncode == 1
    smtp = next(row for row in result.stdout.splitlines() if row.strip().startswith("SMTP"))
    assert "skipped: not tried: the IMAP server refused the same credentials" in smtp
