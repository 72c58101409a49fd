"""Health of triage against the real Dovecot: a failing password, an unreachable server, a crash.

The login's password_command reads a file the test rewrites, so the password fails and then
works without a restart. ``[triage] notice_after`` and ``retry_max`` are a second or two, so
nothing waits for the real 15 minutes; batches are released 12 hours from now unless a test
records an old release, which makes one overdue. The server becomes unreachable behind a
fault hop whose upstream is switched to a closed port (and every link cut), then back.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import quopri
import re
import shlex
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import INBOX
from commsproxy.triage.notice import NoticeBox, notice_message
from commsproxy.triage.state_store import FILENAME, StateStore
from commsproxy.triage.upstream import connect
from tests.integration.test_triage import _id, newsletter
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, quiet_batches, wait_until, where

NOTICE = "commsproxy cannot triage your mail"
NOTICE_AFTER = 2  # seconds of failing before the notice (15 minutes in real life)


class Login:
    """A fresh user whose password_command reads ``password_file``."""

    def __init__(
        self,
        dovecot: Dovecot,
        directory: Path,
        upstream: str | None = None,
        batches: str | None = None,
    ) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.directory = directory
        self.state = directory / "state"
        self.password_file = directory / "password"
        self.set_password(self.password)
        self.config = directory / "config.toml"
        server = upstream or f"imap://127.0.0.1:{dovecot.imap_port}"
        self.config.write_text(
            f"""
[proxy]
imap = "127.0.0.1:0"
state_dir = "{self.state}"

[[login]]
username = "{self.user}"
password_command = "cat {shlex.quote(str(self.password_file))}"
upstream_imap = "{server}"

[web]
enabled = false

[triage]
gate_timeout = 5
notice_after = {NOTICE_AFTER}
retry_max = 1
{batches or quiet_batches()}
""",
            encoding="utf-8",
        )

    def set_password(self, password: str) -> None:
        self.password_file.write_text(password + "\n", encoding="utf-8")

    def start(self) -> ProxyProcess:
        return ProxyProcess(["--config", str(self.config), "-v"]).start()

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "commsproxy", "status", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def health(self) -> dict[str, Any]:
        done = self.status("--json")
        health: dict[str, Any] | None = json.loads(done.stdout)["logins"][0]["health"]
        assert health is not None, done.stdout
        return {**health, "exit": done.returncode}

    def notices(self) -> int:
        found = self.dovecot.doveadm(
            "search", "-u", self.user, "mailbox", "INBOX", "subject", NOTICE
        )
        return found.count("\n")

    def notice_text(self) -> str:
        """The text of the notices in INBOX not marked deleted, decoded."""
        found = self.dovecot.doveadm(
            "fetch", "-u", self.user, "body", "mailbox", "INBOX", "subject", NOTICE,
            "NOT", "DELETED",
        )  # fmt: skip
        return quopri.decodestring(found.encode()).decode("utf-8", "replace")

    def placed(self, mid: str) -> str | None:
        return where(self.dovecot, self.user).get(mid)

    def client_login(self, proxy: ProxyProcess) -> None:
        """The mail program logs in through the proxy (with the server's password)."""
        conn = imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=30)
        conn.login(self.user, self.password)
        conn.logout()

    def overdue(self) -> datetime:
        """Both batches were last released a week ago: their next release is overdue."""
        long_ago = datetime.now(UTC) - timedelta(days=8)
        with sqlite3.connect(self.state / FILENAME) as db:
            db.execute("DELETE FROM releases")
        db.close()
        with StateStore.open(self.state) as store:
            for batch in ("later", "bulk"):
                release = store.start_release(self.user, batch, long_ago, long_ago)
                store.finish_release(release, 0, long_ago)
        return long_ago

    def scheduled_releases(self, after: datetime) -> int:
        with StateStore.open(self.state) as store:
            return sum(
                1
                for r in store.recent_releases(self.user, 100)
                if r.scheduled is not None and r.scheduled > after
            )


def errors(proxy: ProxyProcess, pattern: str) -> int:
    return sum(1 for line in proxy.lines() if " ERROR " in line and re.search(pattern, line))


def count(proxy: ProxyProcess, pattern: str) -> int:
    return sum(1 for line in proxy.lines() if re.search(pattern, line))


def test_wrong_password_then_right_one_notice_overdue_release_and_a_crash_between(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    login = Login(dovecot, tmp_path)
    user = login.user
    held = _id()

    # A working start holds a newsletter; then its batch's release time passes meanwhile.
    proxy = login.start()
    try:
        assert proxy.wait_for_log("watching INBOX", 20), proxy.log_text()
        dovecot.deliver(user, newsletter(held))
        assert wait_until(lambda: login.placed(held) == "Later/Bulk", 20), proxy.log_text()
        health = login.health()
        assert (health["state"], health["exit"]) == ("connected", 0)
        assert health["last_decision"]["what"] == "bulk, held in Later/Bulk"
        assert health["next_release"]["overdue"] is False
    finally:
        proxy.stop()
    long_ago = login.overdue()

    # The password goes wrong: said once however often it is tried; status exits 1.
    login.set_password("not-the-password")
    proxy = login.start()
    killed = False
    try:
        failed = rf"triage\[{re.escape(user)}\]: signing in failed: .*refused the login"
        assert proxy.wait_for_log(failed, 20), proxy.log_text()
        arrived = _id()
        dovecot.deliver(user, newsletter(arrived))
        health = login.health()
        assert (health["state"], health["ok"], health["exit"]) == ("signing in failed", False, 1)
        assert "check the password" in health["todo"]
        assert health["next_release"]["overdue"] is True
        text = login.status()
        assert text.returncode == 1
        assert "triage: SIGNING IN FAILED since" in text.stdout
        assert login.placed(held) == "Later/Bulk"  # nothing released while failing

        # The mail program logs in through the proxy: with its password, one notice goes in.
        login.client_login(proxy)
        assert wait_until(lambda: login.notices() == 1, 20), proxy.log_text()
        assert wait_until(lambda: count(proxy, r"still signing in failed") >= 3, 20)
        assert login.notices() == 1  # once, not per try
        assert errors(proxy, r"signing in failed") == 1, proxy.log_text()
        assert login.health()["notice_in_inbox"] is not None
        assert login.placed(arrived) == "INBOX"  # not triaged while failing

        # Killed while failing, and started again, still failing: still one notice.
        proxy.signal(signal.SIGKILL)
        proxy.wait()
        killed = True
        proxy = login.start()
        killed = False
        assert proxy.wait_for_log(failed, 20), proxy.log_text()  # said again in the new log
        login.client_login(proxy)
        seen = count(proxy, r"still signing in failed")
        assert wait_until(lambda: count(proxy, r"still signing in failed") >= seen + 3, 20)
        assert login.notices() == 1
        assert login.health()["exit"] == 1

        # The password works again: triage resumes, releases the overdue batch at once,
        # triages what came meanwhile and takes the notice out.
        login.set_password(login.password)
        assert proxy.wait_for_log(r"triage works again", 20), proxy.log_text()
        assert wait_until(lambda: login.placed(held) == "INBOX", 20), proxy.log_text()
        assert wait_until(lambda: login.placed(arrived) == "Later/Bulk", 20)
        assert wait_until(lambda: login.notices() == 0, 20), proxy.log_text()
        health = login.health()
        assert (health["state"], health["ok"], health["exit"]) == ("connected", True, 0)
        assert health["notice_in_inbox"] is None
        assert login.status().returncode == 0
    finally:
        if not killed:
            proxy.stop()

    # Nothing lost, nothing twice: one scheduled release per batch, each message once.
    assert login.scheduled_releases(long_ago) == 2
    mail = Counter(
        {mid: n for mid, n in census(dovecot, user).items() if not mid.startswith("<digest-")}
    )
    assert mail == Counter({held: 1, arrived: 1}), mail
    trash = dovecot.doveadm("search", "-u", user, "mailbox", "*", "subject", NOTICE)
    assert trash.strip() == ""  # the notice is gone, not moved elsewhere


def test_a_failing_password_command_is_said_once_and_needs_no_notice_to_be_found(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    login = Login(dovecot, tmp_path)
    login.password_file.unlink()  # `cat` fails: no password at all
    proxy = login.start()
    try:
        failed = r"signing in failed: password_command .* failed with exit status 1"
        assert proxy.wait_for_log(failed, 20), proxy.log_text()
        assert wait_until(lambda: count(proxy, r"still signing in failed") >= 3, 20)
        assert errors(proxy, "password_command") == 1, proxy.log_text()
        health = login.health()
        assert health["state"] == "signing in failed"
        assert "fix password_command" in health["todo"]
        assert health["exit"] == 1
        # No mail program has logged in: nothing can reach INBOX, and nothing tries.
        assert login.notices() == 0
        login.set_password(login.password)
        assert proxy.wait_for_log(r"triage works again", 20), proxy.log_text()
        assert login.health()["exit"] == 0
    finally:
        proxy.stop()


def test_a_step_the_server_refuses_is_said_once_and_the_notice_left_once(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    # Dovecot refuses to create a mailbox whose name begins with "~": logged in, then stuck.
    batches = quiet_batches().replace('mailbox = "Later/Bulk"', 'mailbox = "~Bulk"')
    login = Login(dovecot, tmp_path, batches=batches)
    proxy = login.start()
    try:
        refused = r"WARNING .*CREATE ~Bulk: NO \[CANNOT\]"
        assert proxy.wait_for_log(refused, 20), proxy.log_text()
        assert wait_until(lambda: login.notices() == 1, 20), proxy.log_text()
        seen = count(proxy, r"still failing")
        assert wait_until(lambda: count(proxy, r"still failing") >= seen + 3, 20)
        assert login.notices() == 1
        assert count(proxy, refused) == 1, proxy.log_text()
        health = login.health()
        assert (health["state"], health["exit"]) == ("failing", 1)
        assert "Invalid mailbox name" in health["reason"]
        assert health["notice_in_inbox"] is not None
    finally:
        proxy.stop()


def test_a_notice_is_replaced_when_the_reason_changes_and_removed_when_it_works(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    # Dovecot refuses a hold mailbox named "~Bulk": once the password works, a step fails.
    batches = quiet_batches().replace('mailbox = "Later/Bulk"', 'mailbox = "~Bulk"')
    login = Login(dovecot, tmp_path, batches=batches)
    login.set_password("not-the-password")
    proxy = login.start()
    try:
        assert proxy.wait_for_log(r"signing in failed: .*refused the login", 20), proxy.log_text()
        login.client_login(proxy)
        assert wait_until(lambda: login.notices() == 1, 20), proxy.log_text()
        assert "refused the login" in login.notice_text()

        # The password is fixed, but now the server refuses a step: the notice says so.
        login.set_password(login.password)
        assert proxy.wait_for_log(r"WARNING .*CREATE ~Bulk: NO \[CANNOT\]", 20), proxy.log_text()
        assert wait_until(lambda: "Invalid mailbox name" in login.notice_text(), 20)
        assert login.notices() == 1
        seen = count(proxy, r"still failing")
        assert wait_until(lambda: count(proxy, r"still failing") >= seen + 3, 20)
        assert login.notices() == 1  # replaced once, not per try
        assert count(proxy, r"the notice in INBOX is replaced") == 1, proxy.log_text()
        assert "refused the login" not in login.notice_text()

        # Fixed in the config while running: triage works, the notice goes.
        text = login.config.read_text(encoding="utf-8")
        login.config.write_text(text.replace('"~Bulk"', '"Later/Bulk"'), encoding="utf-8")
        assert proxy.wait_for_log(r"triage works again", 30), proxy.log_text()
        assert wait_until(lambda: login.notices() == 0, 20), proxy.log_text()
    finally:
        proxy.stop()
    anywhere = dovecot.doveadm("search", "-u", login.user, "mailbox", "*", "subject", NOTICE)
    assert anywhere.strip() == ""


async def test_server_unreachable_for_a_while_then_back(dovecot: Dovecot, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    async with FaultHop("127.0.0.1", dovecot.imap_port) as hop:
        login = Login(dovecot, tmp_path, upstream=f"imap://127.0.0.1:{hop.port}")
        proxy = await asyncio.to_thread(login.start)
        try:
            assert await asyncio.to_thread(proxy.wait_for_log, "watching INBOX", 20)
            assert (await asyncio.to_thread(login.health))["state"] == "connected"

            # The server goes away: every link is cut, and new ones find nothing there.
            cut_at = datetime.now(UTC)
            hop.upstream = ("127.0.0.1", closed)
            hop.arm(rb".", "before", times=1_000_000)
            unreachable = r"triage\[[^\]]+\]: .*(connection lost|unreachable|closed).*reconnecting"
            assert await asyncio.to_thread(proxy.wait_for_log, unreachable, 20), proxy.log_text()
            tries = count(proxy, r"still server unreachable")
            await asyncio.to_thread(
                wait_until, lambda: count(proxy, r"still server unreachable") >= tries + 3, 20
            )
            health = await asyncio.to_thread(login.health)
            assert (health["state"], health["exit"]) == ("server unreachable", 1), health
            assert datetime.fromisoformat(health["failing_since"]) >= cut_at - timedelta(seconds=1)
            assert health["reason"]
            assert count(proxy, r"WARNING .*reconnecting in") == 1, proxy.log_text()
            assert login.notices() == 0  # an unreachable server cannot take a notice

            # Back: connected again, said once.
            hop.arm(rb"^$", "before", times=0)
            hop.upstream = ("127.0.0.1", dovecot.imap_port)
            assert await asyncio.to_thread(proxy.wait_for_log, r"triage works again", 20)
            health = await asyncio.to_thread(login.health)
            assert (health["state"], health["exit"]) == ("connected", 0), health
            mid = _id()
            await asyncio.to_thread(dovecot.deliver, login.user, newsletter(mid))
            assert await asyncio.to_thread(
                wait_until, lambda: login.placed(mid) == "Later/Bulk", 20
            ), proxy.log_text()
        finally:
            await asyncio.to_thread(proxy.stop)


async def test_notice_appended_before_a_crash_is_found_not_sent_twice_and_removed_alone(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user, password = dovecot.new_user()
    now = datetime.now(UTC)
    endpoint = parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap")
    up = await connect(endpoint, ssl.create_default_context(), user, password)
    mine = _id()
    await asyncio.to_thread(dovecot.deliver, user, newsletter(mine))

    def inbox_notices() -> int:
        found = dovecot.doveadm("search", "-u", user, "mailbox", "INBOX", "subject", NOTICE)
        return found.count("\n")

    try:
        with StateStore.open(tmp_path) as store:
            box = NoticeBox(store, user, lambda: now)
            # Killed between the APPEND and its record: the store knows only the plan.
            plan = store.plan_notice(user, "crash-1@commsproxy.localhost", "refused", now)
            text = notice_message(user, "refused", "fix it", now, plan.message_id, sign_in=False)
            await up.append(INBOX, text, [])
            await box.leave(up, "refused", "fix it")
            await box.leave(up, "refused", "fix it")
            assert await asyncio.to_thread(inbox_notices) == 1
            left = store.notice(user)
            assert left is not None
            assert left.appended is not None

            # The user's own deleted mail stays: only the notice is expunged.
            await up.select(INBOX)
            kept = await up.search(f'HEADER Message-ID "{mine}"')
            await up.add_flags(kept, ["\\Deleted"])
            await box.remove(up)
            assert await asyncio.to_thread(inbox_notices) == 0
            assert store.notice(user) is None
            assert await up.search(f'HEADER Message-ID "{mine}"') == kept
    finally:
        await up.logout()
