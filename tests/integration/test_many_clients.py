"""Many clients on one mailbox at once: a harmless race never stalls anyone, hanging up is normal.

A phone on the same mailbox (straight to the server, as phones are) deletes and moves new mail
while triage is deciding on it. The server then refuses triage's ``UID MOVE`` with
``NO [EXPUNGEISSUED]``, or skips UIDs that are gone: a finished case for triage, never a reason
to back off, and no client through the proxy ever waits out a backoff at the gate. Clients that
hang up in the middle of an IDLE or a FETCH, while the gate is holding responses for them, end
their sessions quietly: the proxy's log has no ERROR and no unretrieved task exception.

The first test makes the race certain: a decider that deletes or moves some messages on the
server while the engine decides on them (after its FETCH, before its MOVE). The others run a
real ``commsproxy run`` with clients in threads, where the race happens as it happens.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import random
import re
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commsproxy.classifier.mail import Mail
from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import NORMAL
from commsproxy.schedule import Schedule
from commsproxy.triage.decide import Decision, RuleDecider
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import (
    Password,
    census,
    quiet_batches,
    triage_proxy,
    wait_until,
    write_triage_config,
)

VIP = ("boss@example.com",)
ARCHIVE = "Archive"
PLACES = ("INBOX", "Later", "Later/Bulk", ARCHIVE)
GATE_TIMEOUT = 5.0  # write_triage_config's gate_timeout
BACKOFF = "reconnecting in"
_MID = re.compile(rb"message-id:\s*(<[^>]*>)", re.IGNORECASE)


def message(tag: str, n: int, *, vip: bool) -> tuple[str, bytes]:
    mid = f"<many-{tag}-{n}-{random.getrandbits(32):08x}@example.org>"
    sender = "boss@example.com" if vip else f"colleague{n}@corp.example"
    headers = {
        "From": sender, "To": "me@example.com", "Message-ID": mid,
        "Subject": f"{tag} {n}", "Date": "Mon, 23 Nov 2026 09:00:00 +0000",
    }  # fmt: skip
    return mid, render(headers, "Notes from the meeting.")


def direct(dovecot: Dovecot, user: str, password: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    conn.login(user, password)
    return conn


# --- the race made certain, with the engine in process ------------------------------------------


class StealingDecider:
    """VIP rules, the rest normal (held); while deciding, a 'phone' deletes or moves some of
    the very messages being decided, straight on the server."""

    def __init__(self, phone: imaplib.IMAP4) -> None:
        self.rules = RuleDecider(VIP)
        self.phone = phone
        self.stolen: dict[str, str] = {}  # Message-ID -> "deleted" / "moved"

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        decisions = self.rules.decide(mails)
        self.phone.select("INBOX")
        for mail in mails:
            subject, mid = mail.subject, mail.message_id or ""
            if "delete" in subject or "move" in subject:
                uid = _uid_of(self.phone, mid)
                if "delete" in subject:
                    self.phone.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
                    self.phone.uid("EXPUNGE", uid)
                    self.stolen[mid] = "deleted"
                else:
                    self.phone.uid("MOVE", uid, ARCHIVE)
                    self.stolen[mid] = "moved"
        return decisions


def _uid_of(conn: imaplib.IMAP4, mid: str) -> str:
    typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid)
    assert typ == "OK", data
    (uid,) = data[0].split()
    return str(uid.decode())


async def test_a_message_gone_before_the_move_is_done_without_backoff(
    dovecot: Dovecot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy")
    user, password = dovecot.new_user()
    phone = direct(dovecot, user, password)
    phone.create(ARCHIVE)
    plan = ["keep", "delete", "move", "keep", "delete", "move", "move"]
    mids = {}
    for n, what in enumerate(plan):
        mid, raw = message(what, n, vip=False)
        dovecot.deliver(user, raw)
        mids[mid] = what
    vip_mid, raw = message("vip", 99, vip=True)
    dovecot.deliver(user, raw)
    decider = StealingDecider(phone)
    noon = Schedule.parse(["12:00"], "daily", "UTC")
    settings = EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(vip=VIP),
        batches=(BatchConfig("later", "Later", (NORMAL,), noon),),
        connect_timeout=10,
    )
    with StateStore.open(tmp_path / "state") as store:
        engine = Engine(settings, decider, store, Password(user, password))
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        try:
            assert await engine.catch_up(20) is not None, caplog.text
            assert engine.ready
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
        decisions = {mid: store.latest_decision_by_message_id(user, mid) for mid in mids}
    phone.logout()

    assert [r.getMessage() for r in caplog.records if BACKOFF in r.getMessage()] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert set(decider.stolen) == {m for m, what in mids.items() if what != "keep"}
    assert "gone before it could be held" in caplog.text
    counts = census(dovecot, user, PLACES)
    places = _places(dovecot, user)
    for mid, what in mids.items():
        decision = decisions[mid]
        assert decision is not None
        if what == "keep":
            assert places[mid] == "Later"
            assert decision.held
        else:
            assert places.get(mid) == (ARCHIVE if what == "move" else None)
            assert not decision.held
            assert "deleted or moved by another client" in decision.reason
    assert places[vip_mid] == "INBOX"
    assert set(counts.values()) == {1}


def _places(dovecot: Dovecot, user: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for mailbox in PLACES:
        counts = census(dovecot, user, (mailbox,))
        for mid in counts:
            found[mid] = mailbox
    return found


# --- many clients through a real proxy --------------------------------------------------------


@pytest.fixture
def proxy(dovecot: Dovecot, tmp_path: Path) -> Iterator[tuple[ProxyProcess, str, str]]:
    user, password = dovecot.new_user()
    config = write_triage_config(dovecot, user, password, tmp_path, batches=quiet_batches())
    process = triage_proxy(config)
    yield process, user, password
    process.stop()


@dataclass
class Timings:
    """How long each client command took, measured around the command."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    slowest: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def timed(self, name: str, call: object, *args: object) -> object:
        started = time.monotonic()
        result = call(*args)  # type: ignore[operator]
        took = time.monotonic() - started
        with self.lock:
            self.count += 1
            self.slowest[name] = max(self.slowest.get(name, 0.0), took)
        return result


def _phone(
    dovecot: Dovecot, user: str, password: str, stop: threading.Event, touched: set[str]
) -> None:
    """Straight to the server: deletes or moves some new mail, at random moments after it
    arrives -- sometimes before triage looks, sometimes while it decides."""
    rng = random.Random(15)
    conn = direct(dovecot, user, password)
    conn.select("INBOX")
    seen: set[bytes] = set()
    while not stop.is_set():
        conn.noop()
        _typ, data = conn.uid("SEARCH", "ALL")
        for uid in data[0].split():
            if uid in seen:
                continue
            seen.add(uid)
            what = rng.choice(("leave", "leave", "delete", "move"))
            if what == "leave":
                continue
            _typ, fetched = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            found = [_MID.search(part[1]) for part in fetched if isinstance(part, tuple)]
            if not found or found[0] is None:
                continue  # triage moved it first
            touched.add(found[0].group(1).decode())
            time.sleep(rng.uniform(0, 0.6))  # lands before, during or after triage's look
            if what == "delete":
                conn.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
                conn.uid("EXPUNGE", uid)
            else:
                conn.uid("MOVE", uid, ARCHIVE)
        time.sleep(0.02)
    conn.logout()


def _watcher(port: int, user: str, password: str, stop: threading.Event, timings: Timings) -> None:
    """A mail program through the proxy: the commands that go through the gate, timed."""
    conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    conn.login(user, password)
    while not stop.is_set():
        timings.timed("SELECT", conn.select, "INBOX")
        timings.timed("NOOP", conn.noop)
        timings.timed("STATUS", conn.status, "INBOX", "(MESSAGES UNSEEN)")
        timings.timed("EXAMINE", conn.select, "INBOX", True)
        timings.timed("SELECT Later", conn.select, "Later")
    conn.logout()


def _cleaner(port: int, user: str, password: str, stop: threading.Event, touched: set[str]) -> None:
    """A second mail program through the proxy that deletes some of the mail it is shown."""
    conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    conn.login(user, password)
    conn.select("INBOX")
    done: set[bytes] = set()
    while not stop.is_set():
        conn.noop()
        _typ, data = conn.uid("SEARCH", "ALL")
        for uid in data[0].split()[::3]:
            if uid in done:
                continue
            done.add(uid)
            _typ, fetched = conn.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            found = [_MID.search(part[1]) for part in fetched if isinstance(part, tuple)]
            if found and found[0] is not None:
                touched.add(found[0].group(1).decode())
            conn.uid("STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
            conn.uid("EXPUNGE", uid)
        time.sleep(0.05)
    conn.logout()


def test_many_clients_and_a_phone_deleting_new_mail(
    dovecot: Dovecot, proxy: tuple[ProxyProcess, str, str]
) -> None:
    process, user, password = proxy
    setup = direct(dovecot, user, password)
    setup.create(ARCHIVE)
    setup.logout()
    stop = threading.Event()
    timings = Timings()
    touched: set[str] = set()  # Message-IDs a test client deleted or moved (or tried to)
    threads = [
        threading.Thread(target=_phone, args=(dovecot, user, password, stop, touched)),
        threading.Thread(target=_cleaner, args=(process.imap_port, user, password, stop, touched)),
        *(
            threading.Thread(
                target=_watcher, args=(process.imap_port, user, password, stop, timings)
            )
            for _ in range(3)
        ),
    ]
    for thread in threads:
        thread.start()
    delivered: dict[str, bool] = {}
    try:
        for n in range(60):
            mid, raw = message("race", n, vip=n % 4 == 0)
            dovecot.deliver(user, raw)
            delivered[mid] = n % 4 == 0
        placed = _settled(dovecot, user, delivered, touched)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    log = process.log_text()
    assert placed is not None, (census(dovecot, user, PLACES), log[-4000:])
    counts = census(dovecot, user, PLACES)
    assert all(counts[mid] <= 1 for mid in delivered), counts  # nothing duplicated
    lost = [mid for mid in delivered if counts[mid] == 0 and mid not in touched]
    assert lost == []  # nothing lost: what is nowhere, a test client deleted
    assert timings.count >= 15  # every watcher went round at least once
    slowest = max(timings.slowest.values())
    assert slowest < GATE_TIMEOUT, timings.slowest
    assert BACKOFF not in log, log[-4000:]
    assert "Traceback" not in log
    assert " ERROR " not in log


def _settled(
    dovecot: Dovecot, user: str, delivered: dict[str, bool], touched: set[str]
) -> dict[str, str] | None:
    """Wait until every message is where triage (or a test client) put it."""

    def done() -> dict[str, str] | None:
        places = _places(dovecot, user)
        for mid, vip in delivered.items():
            where = places.get(mid)
            if mid in touched and where in (None, ARCHIVE):
                continue
            if where != ("INBOX" if vip else "Later"):
                return None
        return places

    placed: dict[str, str] | None = None

    def check() -> bool:
        nonlocal placed
        placed = done()
        return placed is not None

    return placed if wait_until(check, 40) else None


# --- clients hanging up at random -------------------------------------------------------------


def _hang_up(conn: imaplib.IMAP4) -> None:
    """Close with a reset, as a phone losing its network does: no LOGOUT, unread data dropped."""
    sock = conn.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _restless(port: int, user: str, password: str, seed: int, rounds: int) -> None:
    """Log in, watch INBOX, and leave abruptly mid-IDLE or mid-FETCH, ``rounds`` times."""
    rng = random.Random(seed)
    for _ in range(rounds):
        conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        conn.login(user, password)
        conn.select("INBOX")
        tag = conn._new_tag().decode()
        if rng.random() < 0.5:
            conn.send(f"{tag} IDLE\r\n".encode())
        else:
            conn.send(f"{tag} FETCH 1:* (FLAGS BODY.PEEK[])\r\n".encode())
        time.sleep(rng.uniform(0, 0.5))  # then hang up wherever the session is
        _hang_up(conn)


def test_clients_hanging_up_at_random_leave_no_errors_in_the_log(
    dovecot: Dovecot, proxy: tuple[ProxyProcess, str, str]
) -> None:
    process, user, password = proxy
    threads = [
        threading.Thread(target=_restless, args=(process.imap_port, user, password, seed, 3))
        for seed in range(20)
    ]
    for thread in threads:
        thread.start()
    delivered = []
    try:
        for n in range(80):
            mid, raw = message("stress", n, vip=n % 3 == 0)
            dovecot.deliver(user, raw)
            delivered.append(mid)
        assert wait_until(lambda: sum(census(dovecot, user, PLACES).values()) >= 80, 30)
        assert wait_until(lambda: dovecot.message_count(user, "INBOX") == 27, 30)
    finally:
        for thread in threads:
            thread.join(60)
    assert process.stop() == 0
    log = process.log_text()
    sessions = len(re.findall(r"imap#\d+: client .* connected", log))
    assert sessions == 20 * 3, sessions
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line][:5]
    assert "Task exception was never retrieved" not in log
    assert "Traceback" not in log
    assert Counter(census(dovecot, user, PLACES)[mid] for mid in delivered) == {1: 80}
