"""commsproxy as a real process in front of the test Dovecot, the way users run it.

The process listens on port 0; its log lines say which ports it got, and every log line is
kept so tests can check what the proxy said (and that it never said a password).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.testbed.dovecot import Dovecot

_LISTENING = re.compile(r"(IMAP|SMTP) listening on 127\.0\.0\.1:(\d+) \(([^)]+)\)")


class ProxyProcess:
    """``python -m commsproxy run`` with the given arguments."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.args = [sys.executable, "-m", "commsproxy", "run", *args]
        # Never the user's own config: tests say everything on the command line or in env.
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": "/nonexistent",
            **(env or {}),
        }
        self.imap_port = 0
        self.imaps_port = 0
        self.smtp_port = 0
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 20.0) -> ProxyProcess:
        self._proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=Path(__file__).parents[2],
        )
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self.wait_for_log("commsproxy ready", timeout):
            self.stop()
            raise RuntimeError("commsproxy did not start:\n" + self.log_text())
        for line in self.lines():
            match = _LISTENING.search(line)
            if match is None:
                continue
            port = int(match.group(2))
            if match.group(1) == "SMTP":
                self.smtp_port = port
            elif match.group(3) == "implicit TLS":
                self.imaps_port = port
            else:
                self.imap_port = port
        return self

    def _read_log(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def log_text(self) -> str:
        return "\n".join(self.lines())

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> bool:
        """Wait until a log line matches ``pattern`` (a regex); False on timeout or exit."""
        regex = re.compile(pattern)
        with self._changed:
            return self._changed.wait_for(
                lambda: (
                    any(regex.search(line) for line in self._lines)
                    or (self._proc is not None and self._proc.poll() is not None)
                ),
                timeout,
            ) and any(regex.search(line) for line in self._lines)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def signal(self, signum: int) -> None:
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        return code

    def stop(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return self.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.wait()
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self.wait()


def proxy_args(
    dovecot: Dovecot,
    *,
    tls: bool = False,
    extra: Sequence[str] = (),
    state_dir: Path | None = None,
) -> list[str]:
    """Arguments for a proxy in front of ``dovecot`` on free ports (TLS towards the client).

    Triage runs only with a ``state_dir``: the relay tests want INBOX left as delivered.
    """
    triage = ["--state-dir", str(state_dir)] if state_dir is not None else ["--no-triage"]
    args = [
        *triage,
        "--upstream", f"imaps://localhost:{dovecot.imaps_port}",
        "--cafile", str(dovecot.ca_file),
        "--smtp-upstream", f"smtp+starttls://localhost:{dovecot.submission_port}",
        "--listen", "127.0.0.1:0",
        "--smtp-listen", "127.0.0.1:0",
    ]  # fmt: skip
    if tls:
        args += [
            "--tls-cert", str(dovecot.cert_file),
            "--tls-key", str(dovecot.key_file),
            "--tls-listen", "127.0.0.1:0",
        ]  # fmt: skip
    return [*args, *extra]
