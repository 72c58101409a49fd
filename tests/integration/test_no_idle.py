"""A server without IDLE: check says what that means, and triage still holds new mail.

A hop in front of the test Dovecot takes IDLE out of every capability list it passes on and
answers an IDLE command with BAD, as a server without IDLE does; Dovecot itself is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, quiet_batches, wait_until, where

_CAPABILITY = re.compile(rb"CAPABILITY ", re.IGNORECASE)
_IDLE_COMMAND = re.compile(rb"^(\S+) IDLE\r?\n$", re.IGNORECASE)


class NoIdleHop:
    """Forwards IMAP connections to ``port``, removing IDLE from the server's capabilities."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> NoIdleHop:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            for writer in self._writers:
                writer.close()
        # asyncio.run cancels the connections' tasks and closes the loop.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers += [writer, up_writer]

        async def to_server() -> None:
            # Line by line: a literal's bytes pass as lines too, and no test message says IDLE.
            while line := await reader.readline():
                idle = _IDLE_COMMAND.match(line)
                if idle is not None:  # as a server without IDLE answers it
                    writer.write(idle.group(1) + b" BAD unknown command\r\n")
                    await writer.drain()
                    continue
                up_writer.write(line)
                await up_writer.drain()

        async def to_client() -> None:
            while line := await up_reader.readline():
                if _CAPABILITY.search(line):
                    line = re.sub(rb" IDLE(?=[\s\]])", b"", line)
                writer.write(line)
                await writer.drain()

        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await asyncio.wait(
                [asyncio.ensure_future(to_server()), asyncio.ensure_future(to_client())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        writer.close()
        up_writer.close()


@pytest.fixture
def hop(dovecot: Dovecot) -> Iterator[NoIdleHop]:
    with NoIdleHop(dovecot.imap_port) as made:
        yield made


def _config(tmp_path: Path, user: str, password: str, port: int) -> Path:
    command = json.dumps(f"printf %s {shlex.quote(password)}")
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{tmp_path / "state"}"

[[login]]
username = "{user}"
password_command = {command}
upstream_imap = "imap://127.0.0.1:{port}"
{quiet_batches()}
[web]
enabled = false
""",
        encoding="utf-8",
    )
    return path


NEWSLETTER = (
    b"From: News <noreply@news.example.org>\r\nTo: me@example.com\r\n"
    b"Subject: Weekly digest\r\nMessage-ID: <no-idle-news@example.org>\r\n"
    b"List-Id: <weekly.news.example.org>\r\nList-Unsubscribe: <mailto:x@news.example.org>\r\n"
    b"Precedence: bulk\r\n\r\nThis week: articles and events. Unsubscribe at any time.\r\n"
)


def test_check_says_what_no_idle_means(dovecot: Dovecot, hop: NoIdleHop, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    result = subprocess.run(
        [sys.executable, "-m", "commsproxy", "check", "--config",
         str(_config(tmp_path, user, password, hop.port))],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "COMMSPROXY_CONFIG": "/nonexistent"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server offers: MOVE UIDPLUS" in result.stdout
    assert "  no IDLE: new mail is noticed by triage's look at INBOX every 2 s" in result.stdout


def test_triage_holds_new_mail_without_idle(
    dovecot: Dovecot, hop: NoIdleHop, tmp_path: Path
) -> None:
    user, password = dovecot.new_user()
    proxy = ProxyProcess(["--config", str(_config(tmp_path, user, password, hop.port))]).start()
    try:
        assert proxy.wait_for_log("watching INBOX", 20), proxy.log_text()
        dovecot.deliver(user, NEWSLETTER)
        mid = "<no-idle-news@example.org>"
        assert wait_until(lambda: where(dovecot, user).get(mid) == "Later/Bulk", 20), (
            proxy.log_text()
        )
    finally:
        proxy.stop()
    log = proxy.log_text()
    assert log.count("watching INBOX") == 1, log  # one session: no failure, no reconnect
    assert "Traceback" not in log
    assert census(dovecot, user)[mid] == 1
