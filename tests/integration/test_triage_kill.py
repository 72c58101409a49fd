"""SIGKILL of ``commsproxy run`` in the middle of a config reload, a ``release --now`` it serves,
and a ``stop-holding``, against the real Dovecot; then a restart.

After each: nothing lost and nothing twice (a Message-ID census over INBOX and every hold
mailbox), no batch released twice for the same scheduled time (the store's release log), and
the interrupted action carried out after the restart. Time is a parameter: batches are due 12
hours from now unless a test records an old release, and every wait polls with a bound.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from commsproxy.triage.holding import holding_stopped
from commsproxy.triage.state_store import FILENAME, StateStore
from tests.integration.test_triage_health import Login, newsletter
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, quiet_batches, wait_until

HOLDS = ("Later", "Later/Bulk", "Newsletters")
EVERY = ("INBOX", *HOLDS)


class Mail:
    """Mail delivered to one user, remembered by Message-ID for the census."""

    def __init__(self, dovecot: Dovecot, user: str) -> None:
        self.dovecot, self.user = dovecot, user
        self.delivered: set[str] = set()
        self.n = 0

    def deliver(self, count: int, *, bulk: bool = True) -> list[str]:
        mids = []
        for _ in range(count):
            self.n += 1
            mid = f"<kill-{self.n}@test.example>"
            if bulk:
                data = newsletter(mid)
            else:
                headers = {
                    "From": "anna@example.org",
                    "To": self.user,
                    "Subject": f"Notes {self.n}",
                    "Message-ID": mid,
                }
                data = render(headers, f"The notes of meeting {self.n}, for when you have time.")
            self.dovecot.deliver(self.user, data)
            self.delivered.add(mid)
            mids.append(mid)
        return mids

    def held(self) -> int:
        return sum(self.dovecot.message_count(self.user, box) for box in HOLDS if self._has(box))

    def _has(self, mailbox: str) -> bool:
        return mailbox in self.dovecot.doveadm("mailbox", "list", "-u", self.user).split()

    def untriaged(self) -> str:
        return self.dovecot.doveadm(
            "search", "-u", self.user, "mailbox", "INBOX",
            "NOT", "KEYWORD", "$Triaged", "NOT", "KEYWORD", "$Released",
        ).strip()  # fmt: skip

    def check_once(self) -> None:
        """Each delivered message exactly once across INBOX and the hold mailboxes."""
        counts = census(self.dovecot, self.user, EVERY)
        mail = Counter({m: n for m, n in counts.items() if m in self.delivered})
        missing = self.delivered - set(mail)
        twice = {m: n for m, n in mail.items() if n != 1}
        assert not missing, sorted(missing)
        assert not twice, twice


def kill(process: ProxyProcess) -> None:
    process.signal(signal.SIGKILL)
    process.wait()


def released_once_per_schedule(login: Login) -> Counter[tuple[str, str]]:
    """The release log's scheduled releases, counted per (batch, scheduled time)."""
    with StateStore.open(login.state) as store:
        releases = store.recent_releases(login.user, 1000)
        assert not store.unfinished_releases(login.user)
    scheduled = Counter(
        (r.batch, r.scheduled.isoformat()) for r in releases if r.scheduled is not None
    )
    assert all(n == 1 for n in scheduled.values()), scheduled
    return scheduled


def command(login: Login, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "commsproxy", *args, "--config", str(login.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def pending(login: Login) -> int:
    with StateStore.open(login.state) as store:
        return len(store.pending_release_requests())


def queued(login: Login) -> int:
    """Release requests ever queued, done or not (run may serve one before a poll sees it)."""
    with sqlite3.connect(login.state / FILENAME) as db:
        count: int = db.execute("SELECT COUNT(*) FROM release_requests").fetchone()[0]
    db.close()
    return count


def started(login: Login) -> ProxyProcess:
    proxy = login.start()
    assert proxy.wait_for_log("watching INBOX", 30), proxy.log_text()
    return proxy


def reappending() -> str:
    """Both batches re-append on release: the path with the most steps to cut."""
    return quiet_batches(later_reappend=True).replace(
        'name = "bulk"', 'name = "bulk"\nreappend = true'
    )


def test_killed_during_a_reload_that_moves_a_batch_and_adds_a_vip(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    login = Login(dovecot, tmp_path)
    mail = Mail(dovecot, login.user)
    proxy = started(login)
    mail.deliver(4)
    assert wait_until(lambda: mail.held() == 4, 30), proxy.log_text()
    proxy.stop()
    long_ago = login.overdue()  # the next start releases both batches, scheduled

    moves = [
        ("Later/Bulk", "Newsletters"),
        ("Newsletters", "Later/Bulk"),
        ("Later/Bulk", "Newsletters"),
    ]
    for attempt, (old, new) in enumerate(moves):
        proxy = started(login)
        mail.deliver(3)
        text = login.config.read_text(encoding="utf-8")
        text = text.replace(f'mailbox = "{old}"', f'mailbox = "{new}"')
        if attempt == 0:
            text = text.replace("retry_max = 1", 'retry_max = 1\nvip = ["anna@example.org"]')
        login.config.write_text(text, encoding="utf-8")
        mail.deliver(2)  # mail arriving while the engine starts over with the new batches
        assert proxy.wait_for_log(r"config reloaded", 20), proxy.log_text()
        kill(proxy)
        mail.deliver(2)

    # Restarted: the reloaded config is in force, and what came meanwhile is triaged.
    proxy = started(login)
    try:
        assert wait_until(lambda: not mail.untriaged(), 30), proxy.log_text()
        (vip,) = mail.deliver(1, bulk=False)
        (news,) = mail.deliver(1)
        assert wait_until(lambda: login.placed(vip) == "INBOX" and not mail.untriaged(), 30)
        there = ("Newsletters",)
        assert wait_until(lambda: census(dovecot, login.user, there)[news] == 1, 30)
    finally:
        proxy.stop()
    assert "Traceback" not in proxy.log_text(), proxy.log_text()
    mail.check_once()
    released_once_per_schedule(login)
    assert login.scheduled_releases(long_ago) == 2  # each batch's overdue time, once


def test_killed_right_after_a_release_now_is_queued(dovecot: Dovecot, tmp_path: Path) -> None:
    login = Login(dovecot, tmp_path, batches=reappending())
    mail = Mail(dovecot, login.user)
    proxy = started(login)
    mail.deliver(6)
    assert wait_until(lambda: mail.held() == 6, 30), proxy.log_text()

    releaser = command(login, "release", "--now")
    assert wait_until(lambda: queued(login) == 1, 20)
    kill(proxy)  # run polls for requests twice a second: killed before it looked, mostly
    mail.deliver(2)

    proxy = started(login)
    try:
        out, _ = releaser.communicate(timeout=90)
        assert releaser.returncode == 0, out
        assert "commsproxy run" in out, out
        assert wait_until(lambda: mail.held() <= 2 and pending(login) == 0, 30)
        assert wait_until(lambda: not mail.untriaged(), 30)
    finally:
        proxy.stop()
    mail.check_once()
    released_once_per_schedule(login)


async def test_killed_while_a_release_now_is_moving_messages(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    async with FaultHop("127.0.0.1", dovecot.imap_port) as hop:
        login = Login(
            dovecot, tmp_path, upstream=f"imap://127.0.0.1:{hop.port}", batches=reappending()
        )
        mail = Mail(dovecot, login.user)
        proxy = await asyncio.to_thread(started, login)
        await asyncio.to_thread(mail.deliver, 8)
        assert await asyncio.to_thread(wait_until, lambda: mail.held() == 8, 30)

        # The copies are in INBOX, the originals marked deleted: the link is cut before their
        # UID EXPUNGE reaches the server, and run is killed before it can try again.
        hop.arm(rb"^\S+ UID EXPUNGE ", "before")
        releaser = await asyncio.to_thread(command, login, "release", "--now")
        assert await asyncio.to_thread(wait_until, lambda: hop.cuts >= 1, 30), proxy.log_text()
        await asyncio.to_thread(kill, proxy)
        releaser.kill()
        await asyncio.to_thread(releaser.communicate)  # closes its pipe too

        proxy = await asyncio.to_thread(started, login)
        try:
            assert await asyncio.to_thread(
                proxy.wait_for_log, r"finishing the interrupted release", 30
            ), proxy.log_text()
            assert await asyncio.to_thread(wait_until, lambda: mail.held() == 0, 30)
            assert await asyncio.to_thread(wait_until, lambda: pending(login) == 0, 30)
        finally:
            await asyncio.to_thread(proxy.stop)
    mail.check_once()
    released_once_per_schedule(login)


def test_killed_in_the_middle_of_stop_holding(dovecot: Dovecot, tmp_path: Path) -> None:
    login = Login(dovecot, tmp_path)
    mail = Mail(dovecot, login.user)
    proxy = started(login)
    mail.deliver(5)
    assert wait_until(lambda: mail.held() == 5, 30), proxy.log_text()

    stopper = command(login, "stop-holding")
    assert wait_until(lambda: holding_stopped(login.state) is not None, 20)
    kill(proxy)  # the switch is set; the release is queued for run, or about to be
    mail.deliver(2)

    proxy = started(login)
    try:
        out, _ = stopper.communicate(timeout=90)
        assert stopper.returncode == 0, out
        assert wait_until(lambda: mail.held() == 0 and pending(login) == 0, 30)
        assert wait_until(lambda: not mail.untriaged(), 30)
        more = mail.deliver(2)  # holding stays stopped after the restart
        assert wait_until(lambda: all(login.placed(m) == "INBOX" for m in more), 30)
        assert wait_until(lambda: not mail.untriaged(), 30)
        assert mail.held() == 0
    finally:
        proxy.stop()
    assert holding_stopped(login.state) is not None
    mail.check_once()
    released_once_per_schedule(login)
