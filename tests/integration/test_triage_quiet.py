"""Triage that costs nothing on the client's path, and a first start that leaves the past alone.

The engine runs in process against the real Dovecot, so the test can read what its worker
link sent (``Upstream.sent`` and ``recent``): a client's NOOP, IDLE or CHECK on INBOX gets what
triage knows without a word to the server, a SELECT or STATUS costs one NOOP, and with nothing
arriving the worker sends nothing at all (the watcher IDLEs). New mail is still triaged and
held at once, driven by the watcher's IDLE.

At a login's first start the mail already in INBOX is tagged ``$Triaged $NotHeld`` and stays
where it is, except unread mail of the last ``first_start_window`` seconds; a second start
tags nothing again, and a crash between the tagging and the cursor is repeated harmlessly.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from commsproxy.classifier.mail import Mail
from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import ListenAddress, parse_endpoint
from commsproxy.imap.names import BULK, NORMAL
from commsproxy.proxy.imap.gate import GateHooks
from commsproxy.proxy.imap.listener import ImapListener, ImapListenerSettings
from commsproxy.schedule import Schedule
from commsproxy.triage.decide import Decision, RuleDecider
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.hub import LoginRoute, TriageHub
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.upstream import Upstream
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password, flags_by_id, where

VIP = ("boss@example.com",)


class LabelDecider:
    """VIP rules; the rest by subject: "bulk ..." is bulk, anything else normal (held)."""

    def __init__(self) -> None:
        self.rules = RuleDecider(VIP)

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        out = []
        for one, decision in zip(mails, self.rules.decide(mails), strict=True):
            if decision.label == "urgent":
                out.append(decision)
            elif one.subject.startswith("bulk"):
                out.append(Decision(BULK, None, "bulk by its subject"))
            else:
                out.append(Decision(NORMAL, None, "normal by its subject"))
        return out


def mail(subject: str, *, sender: str = "anna@example.org", date: datetime | None = None) -> bytes:
    mid = f"<quiet-{uuid.uuid4().hex}@example.org>"
    when = (date or datetime.now(UTC)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    headers = {
        "From": sender, "To": "me@example.com", "Subject": subject, "Message-ID": mid,
        "Date": when,
    }  # fmt: skip
    return render(headers, "Some text.")


def mid_of(message: bytes) -> str:
    for line in message.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Message-ID")


def batches() -> tuple[BatchConfig, ...]:
    """Released 12 hours from now: no release falls inside a test."""
    at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    schedule = Schedule.parse([at], "daily", "UTC")
    return (
        BatchConfig("later", "Later", (NORMAL,), schedule),
        BatchConfig("bulk", "Later/Bulk", (BULK,), schedule),
    )


def settings(dovecot: Dovecot, user: str, **triage: Any) -> EngineSettings:
    return EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(vip=VIP, retry_max=1, **triage),
        batches=batches(),
        connect_timeout=10,
        look_elsewhere=3600,  # no look at the hold mailboxes inside a test's quiet window
    )


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Engine]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        assert await engine.catch_up(30) is not None, "the engine did not start"
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def append(
    dovecot: Dovecot, user: str, password: str, messages: Sequence[tuple[bytes, str, datetime]]
) -> None:
    """APPEND straight to Dovecot with chosen flags and INTERNALDATE (mail that came long ago)."""
    conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    conn.login(user, password)
    for message, flags, at in messages:
        date = imaplib.Time2Internaldate(at.timestamp())
        typ, data = conn.append("INBOX", flags, date, message)
        assert typ == "OK", data
    conn.logout()


async def deliver(dovecot: Dovecot, user: str, message: bytes) -> None:
    await asyncio.to_thread(dovecot.deliver, user, message)


async def places(dovecot: Dovecot, user: str) -> dict[str, str]:
    return await asyncio.to_thread(where, dovecot, user)


async def keywords(dovecot: Dovecot, user: str) -> dict[str, frozenset[str]]:
    found = await asyncio.to_thread(flags_by_id, dovecot, user)
    return {mid: flags for mid, (_, flags) in found.items()}


async def eventually(check: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.1)


async def settled(worker: Upstream) -> None:
    """Wait until the start's own work is done: a second without a command."""
    while True:
        before = worker.sent
        await asyncio.sleep(1)
        if worker.sent == before:
            return


# --- nothing the client waits for scans the mailbox -------------------------------------------


async def test_client_polls_cost_no_scan_and_a_quiet_inbox_costs_nothing(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user, password = dovecot.new_user()
    old = datetime.now(UTC) - timedelta(days=30)
    # The past: left in place at the first start, never scanned again.
    append(
        dovecot, user, password, [(mail(f"old {n}", date=old), "(\\Seen)", old) for n in range(300)]
    )
    with StateStore.open(tmp_path / "state") as store:
        engine = Engine(settings(dovecot, user), LabelDecider(), store, Password(user, password))
        async with running(engine):
            worker = engine.worker
            assert worker is not None
            await settled(worker)
            assert await engine.catch_up(10, while_ready=True, need="known") == (300, 300)

            # A client's NOOP, IDLE or CHECK: nothing sent at all.
            before = worker.sent
            for _ in range(200):
                assert await engine.catch_up(5, while_ready=True, need="known") == (300, 300)
            assert worker.sent == before

            # A client's SELECT or STATUS: one NOOP each, no SELECT, no SEARCH.
            for _ in range(20):
                assert await engine.catch_up(5, while_ready=True, need="look") == (300, 300)
            assert worker.sent == before + 20
            assert set(list(worker.recent)[-20:]) == {"NOOP"}  # INBOX stays selected there

            # Nothing arriving: the worker says nothing (the watcher IDLEs).
            before = worker.sent
            await asyncio.sleep(3)
            assert worker.sent == before, list(worker.recent)[-10:]

            # New mail: heard through IDLE, triaged and held with no scan of INBOX.
            before = worker.sent
            urgent, later = mail("call me", sender="boss@example.com"), mail("notes")
            await deliver(dovecot, user, urgent)
            await deliver(dovecot, user, later)

            async def held() -> bool:
                return (await places(dovecot, user)).get(mid_of(later)) == "Later"

            await eventually(held, 20, "the new normal mail held in Later")
            state = await engine.catch_up(10, while_ready=True, need="look")
            assert state == (301, 301)
            sent = list(worker.recent)[-(worker.sent - before) :]
            assert not [what for what in sent if what.split()[:3] == ["UID", "SEARCH", "ALL"]]
            assert "UID SEARCH UID 301:*" in sent, sent
            assert (await places(dovecot, user))[mid_of(urgent)] == "INBOX"


async def test_mail_the_watcher_has_not_reported_yet_still_gets_a_pass(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """The gate's "pass" (the server told a client of mail) triages it even when the watcher
    has not said a word yet; "look" (a client's SELECT) sees it through its STATUS."""
    user, password = dovecot.new_user()
    with StateStore.open(tmp_path / "state") as store:
        engine = Engine(settings(dovecot, user), LabelDecider(), store, Password(user, password))
        async with running(engine):
            engine._heard = lambda pushed: None  # type: ignore[method-assign]  # a deaf watcher
            first = mail("bulk offer")
            await deliver(dovecot, user, first)
            assert await engine.catch_up(10, while_ready=True, need="pass") == (0, 0)
            assert (await places(dovecot, user))[mid_of(first)] == "Later/Bulk"
            second = mail("notes")
            await deliver(dovecot, user, second)
            assert await engine.catch_up(10, while_ready=True, need="look") == (0, 0)
            assert (await places(dovecot, user))[mid_of(second)] == "Later"


class PollingClient:
    """A mail program polling INBOX through the proxy with NOOP; what it was told."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.conn = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        self.conn.login(user, password)
        self.conn.select("INBOX")
        self.exists: list[int] = []
        self.expunges = 0

    def noop(self) -> None:
        self.conn.noop()
        self.exists += [int(v) for v in self.conn.untagged_responses.pop("EXISTS", [])]
        self.expunges += len(self.conn.untagged_responses.pop("EXPUNGE", []))


async def test_a_client_through_the_proxy_polls_without_costing_a_scan(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """The real path: a client's NOOP, SELECT and STATUS through the proxy's gate and the hub;
    new mail arriving while it polls is held without ever being shown to it."""
    user, password = dovecot.new_user()
    old = datetime.now(UTC) - timedelta(days=30)
    append(
        dovecot, user, password, [(mail(f"old {n}", date=old), "(\\Seen)", old) for n in range(200)]
    )
    with StateStore.open(tmp_path / "state") as store:
        engine = Engine(settings(dovecot, user), LabelDecider(), store, Password(user, password))
        hub = TriageHub(store)
        hub.add(LoginRoute(user, user, None), engine)
        listener = ImapListener(
            ImapListenerSettings(
                upstream=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
                upstream_tls=ssl.create_default_context(),
                listen=ListenAddress("127.0.0.1", 0),
            ),
            hooks=GateHooks(hub, 5.0),
            logins=hub,
        )
        await listener.start()
        try:
            async with running(engine):
                worker = engine.worker
                assert worker is not None
                await settled(worker)
                port = listener.addresses[0].port
                client = await asyncio.to_thread(PollingClient, port, user, password)
                before = worker.sent
                for _ in range(100):
                    await asyncio.to_thread(client.noop)
                assert worker.sent == before  # a hundred NOOPs: not a word to the server
                for _ in range(5):
                    await asyncio.to_thread(client.conn.select, "INBOX")
                    await asyncio.to_thread(client.conn.status, "INBOX", "(MESSAGES)")
                assert worker.sent - before <= 10  # one NOOP each
                assert set(list(worker.recent)[-(worker.sent - before) :]) <= {"NOOP"}

                # Mail arriving while the client polls: the held one is never shown.
                client.exists.clear()
                urgent, later = mail("call me", sender="boss@example.com"), mail("notes")
                await deliver(dovecot, user, later)
                await deliver(dovecot, user, urgent)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                while 201 not in client.exists and loop.time() < deadline:
                    await asyncio.to_thread(client.noop)
                    await asyncio.sleep(0.02)
                assert max(client.exists, default=0) == 201, client.exists
                assert client.expunges == 0
                found = await places(dovecot, user)
                assert (found[mid_of(urgent)], found[mid_of(later)]) == ("INBOX", "Later")
                await asyncio.to_thread(client.conn.logout)
        finally:
            await listener.stop()


# --- a first start leaves the past alone ------------------------------------------------------


class CrashingStore(StateStore):
    """Fails once where the first start records its end: as if killed right after tagging."""

    crashes = 1

    def first_start(self, *args: Any, **kwargs: Any) -> None:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("killed between the tagging and the cursor")
        super().first_start(*args, **kwargs)


@pytest.mark.parametrize("crash", [False, True])
async def test_first_start_leaves_the_past_in_place(
    dovecot: Dovecot, tmp_path: Path, crash: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    user, password = dovecot.new_user()
    now = datetime.now(UTC)
    old_read = mail("notes read long ago", date=now - timedelta(days=40))
    old_unread = mail("bulk never read", date=now - timedelta(days=3))
    append(
        dovecot, user, password,
        [(old_read, "(\\Seen)", now - timedelta(days=40)),
         (old_unread, "()", now - timedelta(days=3))],
    )  # fmt: skip
    recent_bulk, recent_vip = mail("bulk offer"), mail("contract", sender="boss@example.com")
    await deliver(dovecot, user, recent_bulk)
    await deliver(dovecot, user, recent_vip)
    path = tmp_path / "state" / "state.sqlite3"
    path.parent.mkdir()
    store = CrashingStore(path) if crash else StateStore(path)
    store.crashes = int(crash)  # type: ignore[attr-defined]
    try:
        engine = Engine(settings(dovecot, user), LabelDecider(), store, Password(user, password))
        async with running(engine):
            assert engine.inbox_state == (3, 3)
        found = await places(dovecot, user)
        tags = await keywords(dovecot, user)
        for past in (old_read, old_unread):
            assert found[mid_of(past)] == "INBOX"
            assert tags[mid_of(past)] >= {"$Triaged", "$NotHeld"}
            assert not tags[mid_of(past)] & {"$Later", "$Bulk", "$Urgent"}
        assert found[mid_of(recent_bulk)] == "Later/Bulk"
        assert found[mid_of(recent_vip)] == "INBOX"
        assert {"$Triaged", "$Urgent"} <= tags[mid_of(recent_vip)]
        decided = [d.message_id for d in store.recent_decisions(user, 10)]
        assert sorted(decided) == sorted(mid_of(m).strip("<>") for m in (recent_bulk, recent_vip))
        record = store.first_start_record(user)
        assert record is not None
        assert record[1:] == (2, 86400.0)
        assert "2 message(s) already in INBOX left in place" in caplog.text
        if crash:
            assert "killed between the tagging and the cursor" in caplog.text

        # The user takes a keyword off; a second start neither tags nor decides again.
        conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
        conn.login(user, password)
        conn.select("INBOX")
        _, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid_of(old_read))
        conn.uid("STORE", data[0].decode(), "-FLAGS", "($NotHeld)")
        conn.logout()
        caplog.clear()
        again = Engine(settings(dovecot, user), LabelDecider(), store, Password(user, password))
        async with running(again):
            pass
        assert "first start" not in caplog.text
        assert "$NotHeld" not in (await keywords(dovecot, user))[mid_of(old_read)]
        assert store.first_start_record(user) == record
        assert len(store.recent_decisions(user, 10)) == 2
    finally:
        store.close()


async def test_first_start_window_zero_leaves_all_of_it(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    fresh = mail("bulk offer")
    await deliver(dovecot, user, fresh)
    with StateStore.open(tmp_path / "state") as store:
        engine = Engine(
            settings(dovecot, user, first_start_window=0), LabelDecider(), store,
            Password(user, password),
        )  # fmt: skip
        async with running(engine):
            later = mail("bulk after the start")
            await deliver(dovecot, user, later)

            async def held() -> bool:
                return (await places(dovecot, user)).get(mid_of(later)) == "Later/Bulk"

            await eventually(held, 20, "mail after the first start held")
        assert (await places(dovecot, user))[mid_of(fresh)] == "INBOX"
        assert store.first_start_record(user) is not None
