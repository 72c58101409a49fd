"""``run``'s log file: where it goes, that -v details reach it, that it never holds a password."""

from __future__ import annotations

import smtplib
import stat
from pathlib import Path

from tests.integration.helpers import connect
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args


def test_verbose_log_file_has_the_session_and_no_password(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    log_file = tmp_path / "logs" / "commsproxy.log"
    proxy = ProxyProcess(proxy_args(dovecot, extra=["-v", "--log-file", str(log_file)])).start()
    try:
        conn = connect(proxy, dovecot)
        conn.login(user, password)
        conn.select("INBOX")
        conn.logout()
        with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
            smtp.login(user, password)
        assert proxy.wait_for_log(rf"logged in as {user}\b")
    finally:
        proxy.stop()
    text = log_file.read_text(encoding="utf-8")
    assert f"logged in as {user}" in text
    assert " DEBUG " in text  # -v reaches the file too
    assert password not in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_default_log_file_is_in_the_user_log_dir(dovecot: Dovecot, tmp_path: Path) -> None:
    """On Linux: $XDG_STATE_HOME/commsproxy/log/commsproxy.log (platformdirs' user log dir)."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state-home")}
    proxy = ProxyProcess(proxy_args(dovecot), env=env).start()
    proxy.stop()
    log_file = tmp_path / "state-home" / "commsproxy" / "log" / "commsproxy.log"
    assert "listening" in log_file.read_text(encoding="utf-8").lower()


def test_no_log_file(dovecot: Dovecot, tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state-home")}
    proxy = ProxyProcess(proxy_args(dovecot, extra=["--no-log-file"]), env=env).start()
    proxy.stop()
    assert not (tmp_path / "state-home" / "commsproxy" / "log").exists()
