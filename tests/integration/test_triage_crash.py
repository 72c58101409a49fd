"""Crash safety, by killing: SIGKILL at random points during triage and during release.

Ten times the proxy is killed without warning — six times while mail arrives and is being
tagged and moved, four times while a batch is being released (by re-appending, the path with
the most steps) — and once the upstream drops the engine's connections mid-work. After a clean
final run, a Message-ID census over every mailbox must show each delivered message exactly once.

Each kill costs a start of ``commsproxy run`` (seconds), so the kill points are not drawn
freely but spread over each phase's window, one drawn point in each equal slice: ten kills cover
the whole window without the gaps chance leaves. ``COMMSPROXY_FAULTS_LONG=1`` kills twelve and
eight times; ``COMMSPROXY_FAULTS_SEED=<n>`` picks another seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, triage_proxy, wait_until, write_triage_config

BATCHES = """
[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal"]
release = ["08:30"]
days = "daily"
reappend = true

[[batch]]
name = "bulk"
mailbox = "Later/Bulk"
labels = ["bulk"]
release = ["16:30"]
days = "daily"
"""

LONG = os.environ.get("COMMSPROXY_FAULTS_LONG", "") not in ("", "0")
SEED = int(os.environ.get("COMMSPROXY_FAULTS_SEED", "20261122"))
TRIAGE_KILLS, RELEASE_KILLS = (12, 8) if LONG else (6, 4)


def spread(rng: random.Random, count: int, longest: float) -> list[float]:
    """``count`` delays in ``[0, longest)``, one in each equal slice, in a shuffled order."""
    delays = [(i + rng.random()) * longest / count for i in range(count)]
    rng.shuffle(delays)
    return delays


def message(user: str, n: int) -> tuple[str, bytes]:
    mid = f"<crash-{n}@example.org>"
    headers = {"To": user, "Message-ID": mid, "Date": "Mon, 23 Nov 2026 09:00:00 +0000"}
    if n % 3 == 0:
        headers |= {"From": "boss@example.com", "Subject": f"Urgent {n}"}
    elif n % 3 == 1:
        headers |= {
            "From": "noreply@news.example",
            "Subject": f"Newsletter {n}",
            "List-Unsubscribe": "<mailto:u@news.example>",
            "Precedence": "bulk",
        }
    else:
        headers |= {"From": f"someone{n}@corp.example", "Subject": f"Notes {n}"}
    return mid, render(headers, f"Message number {n}.")


def kill(process: ProxyProcess) -> None:
    process.signal(signal.SIGKILL)
    process.wait()


def held(dovecot: Dovecot, user: str) -> int:
    return dovecot.message_count(user, "Later") + dovecot.message_count(user, "Later/Bulk")


def untriaged(dovecot: Dovecot, user: str) -> str:
    return dovecot.doveadm(
        "search", "-u", user, "mailbox", "INBOX",
        "NOT", "KEYWORD", "$Triaged", "NOT", "KEYWORD", "$Released",
    ).strip()  # fmt: skip


def release_now(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "commsproxy", "release", "--now", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_during_triage_and_release_loses_nothing(dovecot: Dovecot, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    user, password = dovecot.new_user()
    config = write_triage_config(dovecot, user, password, tmp_path, batches=BATCHES)
    delivered: set[str] = set()
    counter = iter(range(10_000))

    def deliver(count: int) -> None:
        for _ in range(count):
            mid, data = message(user, next(counter))
            dovecot.deliver(user, data)
            delivered.add(mid)

    # Killed while triaging: mail waiting at start, and more arriving while it runs.
    for delay in spread(rng, TRIAGE_KILLS, 0.4):
        deliver(5)
        process = ProxyProcess(["--config", str(config)]).start()
        for _ in range(rng.randrange(0, 6)):
            deliver(1)
        time.sleep(delay)  # a point in time to kill at, not a wait for a schedule
        kill(process)

    # Killed while releasing (appending fresh copies, then expunging the originals).
    for delay in spread(rng, RELEASE_KILLS, 0.6):
        deliver(4)
        process = triage_proxy(config)
        wait_until(lambda: held(dovecot, user) > 0, 5)
        releaser = release_now(config)
        time.sleep(delay)
        kill(process)
        releaser.kill()
        releaser.wait()

    # The upstream drops the engine's connections while it works.
    process = triage_proxy(config)
    deliver(10)
    dovecot.kick(user)
    deliver(5)
    assert process.wait_for_log(r"reconnecting|watching INBOX", 10)

    # A clean run finishes what was interrupted; then everything is released once more.
    assert wait_until(lambda: not untriaged(dovecot, user), 30)
    result = subprocess.run(
        [sys.executable, "-m", "commsproxy", "release", "--now", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    process.stop()

    counts = census(dovecot, user)
    mail = {mid: n for mid, n in counts.items() if not mid.startswith("<digest-")}
    missing = delivered - set(mail)
    duplicated = {mid: n for mid, n in mail.items() if n != 1}
    assert not missing, sorted(missing)[:10]
    assert not duplicated, duplicated
    assert set(mail) == delivered
    assert held(dovecot, user) == 0
