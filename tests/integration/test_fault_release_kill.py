"""SIGKILL of ``commsproxy run`` while ``release --now`` moves held mail back, many times over.

Mail is held in both batches (``later`` re-appends on release, ``bulk`` moves), a release is
asked of the running service, and run is killed with SIGKILL at a point drawn from a seeded
generator: after a random delay (before it looked at the request, or somewhere in the
release), as soon as the server shows the release under way (the digest or the first message
in INBOX, or the hold mailboxes emptying), or just after it logged the release done. The
release command is killed too; its request stays queued. Then run starts again and finishes:
the interrupted release and the queued request. After every round a census (tests/testbed/
census.py): every message exactly once, the hold mailboxes empty, each message back in INBOX
marked ``$Released``, at most one digest per release and one for each release that moved mail,
no release left unfinished.

CI runs 6 kills with the seed below: each costs a start of run (seconds), so rather than
drawing the kind of kill point and the way the release is asked at random, the rounds go
through them in turn (delay, moving, delay, done, ...; ``release --now`` in every third round),
and the delays of the delay rounds are spread over their window, one per equal slice; six
rounds reach every kind of point, both ways of asking and the whole delay window.
``COMMSPROXY_FAULTS_LONG=1`` runs 40, and ``COMMSPROXY_FAULTS_SEED=<n>`` picks another seed
(the seed and each round's kill point are printed, so a failure is reproducible).
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from commsproxy.triage.state_store import FILENAME, StateStore
from tests.integration.test_triage import newsletter, thread_reply
from tests.integration.test_triage_health import Login
from tests.testbed.census import Census, assert_sound
from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import quiet_batches, wait_until

HOLDS = ("Later", "Later/Bulk")
ROOT = Path(__file__).parents[2]  # run the commsproxy of this tree, as ProxyProcess does
LONG = os.environ.get("COMMSPROXY_FAULTS_LONG", "") not in ("", "0")
SEED = int(os.environ.get("COMMSPROXY_FAULTS_SEED", "20261207"))
ROUNDS = 40 if LONG else 6
POINTS = ("delay", "moving", "delay", "done")  # round n kills at POINTS[n % 4]
LONGEST_DELAY = 0.6


def delays(rng: random.Random, count: int) -> list[float]:
    """``count`` delays in ``[0, LONGEST_DELAY)``, one in each equal slice, shuffled."""
    spread = [(i + rng.random()) * LONGEST_DELAY / count for i in range(count)]
    rng.shuffle(spread)
    return spread


def count(dovecot: Dovecot, user: str, mailbox: str) -> int:
    try:
        return dovecot.message_count(user, mailbox)
    except DovecotError:  # not created yet
        return 0


def held(dovecot: Dovecot, user: str) -> int:
    return sum(count(dovecot, user, box) for box in HOLDS)


def deliver(dovecot: Dovecot, user: str, rng: random.Random, n: int) -> list[str]:
    mids = []
    for _ in range(n):
        mid = f"<release-kill-{uuid.uuid4().hex[:12]}@test.example>"
        dovecot.deliver(user, newsletter(mid) if rng.random() < 0.5 else thread_reply(mid))
        mids.append(mid)
    return mids


def started(login: Login) -> ProxyProcess:
    proxy = login.start()
    assert proxy.wait_for_log("watching INBOX", 30), proxy.log_text()
    return proxy


def settled(login: Login) -> bool:
    with StateStore.open(login.state) as store:
        return not store.pending_release_requests() and not store.unfinished_releases(login.user)


def queued(login: Login) -> int:
    """Release requests ever queued, served or not."""
    with sqlite3.connect(login.state / FILENAME) as db:
        found: int = db.execute("SELECT COUNT(*) FROM release_requests").fetchone()[0]
    db.close()
    return found


def release_command(login: Login) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "commsproxy", "release", "--now", "--config", str(login.config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip


def kill_at(point: str, delay: float, proxy: ProxyProcess, login: Login, before: int) -> str:
    """Kill run at ``point``; says where the release was when the signal went."""
    dovecot, user = login.dovecot, login.user
    if point == "delay":
        time.sleep(delay)  # a point in time, not a wait for a schedule
    elif point == "moving":
        inbox = count(dovecot, user, "INBOX")
        wait_until(
            lambda: count(dovecot, user, "INBOX") > inbox or held(dovecot, user) < before, 20
        )
    else:
        done = re.compile(r"released \d+ message")
        seen = sum(1 for line in proxy.lines() if done.search(line))
        wait_until(lambda: sum(1 for line in proxy.lines() if done.search(line)) > seen, 20)
    proxy.signal(signal.SIGKILL)
    proxy.wait()
    now = held(dovecot, user)
    return f"{now} of {before} still held, INBOX {count(dovecot, user, 'INBOX')}"


def one_round(
    login: Login, proxy: ProxyProcess, rng: random.Random, n: int, round_: int, delay: float
) -> tuple[ProxyProcess, list[str], str]:
    """Hold ``n`` new messages, ask for a release, kill run at the round's point, start it
    again, and wait until everything is released; returns the new run, the mail, what
    happened."""
    dovecot, user = login.dovecot, login.user
    new = deliver(dovecot, user, rng, n)
    assert wait_until(lambda: held(dovecot, user) == n, 60), proxy.log_text()
    asked = queued(login)
    # One round in three through `release --now`, which waits for the running service and
    # must be served by the next one; otherwise queued in the store as that command does.
    releaser = release_command(login) if round_ % 3 == 1 else None
    if releaser is None:
        with StateStore.open(login.state) as store:
            store.request_release(None, None, datetime.now(UTC))
    assert wait_until(lambda: queued(login) > asked, 30)  # the kill point counts from here
    point = POINTS[round_ % len(POINTS)]
    state = kill_at(point, delay, proxy, login, n)
    how = "release --now" if releaser else "request"
    said = f"{n} held, {how}, killed at {point} ({delay:.2f}s): {state}\n{proxy.log_text()}"
    proxy = started(login)
    if releaser is not None:
        out, _ = releaser.communicate(timeout=90)
        assert releaser.returncode == 0, out
    # The queued request is served by the new run (or was before the kill), and a release
    # cut short is finished: nothing stays held.
    finished = wait_until(lambda: held(dovecot, user) == 0 and settled(login), 60)
    assert finished, said + "\n" + proxy.log_text()
    return proxy, new, said


def test_sigkill_during_releases_with_mail_to_release(dovecot: Dovecot, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    login = Login(dovecot, tmp_path, batches=quiet_batches(later_reappend=True))
    delivered: list[str] = []
    journal = [f"seed {SEED}"]
    logs: list[str] = []
    spread = delays(rng, sum(POINTS[r % len(POINTS)] == "delay" for r in range(ROUNDS)))
    proxy = started(login)
    try:
        for round_ in range(ROUNDS):
            n = 16 if round_ == 0 else rng.randint(3, 6)
            delay = spread.pop() if POINTS[round_ % len(POINTS)] == "delay" else 0.0
            proxy, new, said = one_round(login, proxy, rng, n, round_, delay)
            delivered += new
            head, _, log = said.partition("\n")
            journal.append(f"round {round_}: {head}")
            logs.append(log)
            print(journal[-1])
            assert_sound(
                Census.take(dovecot, login.user),
                delivered,
                holds=HOLDS,
                released=HOLDS,
                store=login.state,
                login=login.user,
                context="\n".join(journal),
            )
    finally:
        proxy.stop()
    logs.append(proxy.log_text())
    assert not [log for log in logs if "Traceback" in log], logs
