"""An account's sla against the real Dovecot: its held mail is in INBOX when the sla is up.

The engine runs in process with the sla part and a clock the test sets. Mail from the sla
account (``acme.example``, sla = "1h") and from anyone else is held at 10:00; at 10:59 both are
still held, at 11:00 the account's is in INBOX (``$Released``, not recorded as a correction)
and the other one waits for its batch. A message whose batch was released first is not
delivered a second time. Both batch kinds: one moves mail back, one re-appends it. Quiet hours
do not delay an sla: mail the quiet batch holds at 18:30 is in INBOX at 19:30.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.config import AccountConfig, AccountsConfig, BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import NORMAL
from commsproxy.schedule import QuietHours, Schedule
from commsproxy.timespec import parse_when
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.sla import SlaLimits
from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage_quiet import LabelDecider, mail, mid_of
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password, flags_by_id

ZONE = ZoneInfo("Europe/Brussels")
ACME = AccountConfig(key="acme", name="Acme", domains=("acme.example",), sla=parse_when("1h"))
OTHER = AccountConfig(key="other", name="Other", domains=("other.example",))
MAILBOXES = ("INBOX", "Later", "Quiet")


def local(hour: int, minute: int = 0) -> datetime:
    """Monday 1 December 2025 in Brussels (in the past: a re-append's date is kept)."""
    return datetime(2025, 12, 1, hour, minute, tzinfo=ZONE)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bed:
    dovecot: Dovecot
    user: str
    engine: Engine
    part: SlaLimits
    store: StateStore
    clock: Clock

    async def held(self, sender: str, mailbox: str = "Later") -> str:
        """Mail from ``sender`` arrives and is held in ``mailbox`` (decided at the clock's
        time)."""
        message = mail(f"notes {uuid.uuid4().hex[:6]}", sender=sender)
        await asyncio.to_thread(self.dovecot.deliver, self.user, message)
        mid = mid_of(message)
        for _ in range(100):
            assert await self.engine.catch_up(10) is not None
            if (await self.places()).get(mid) == (mailbox,):
                return mid
            await asyncio.sleep(0.05)
        raise AssertionError(f"{mid} was not held")

    async def places(self) -> dict[str, tuple[str, ...]]:
        """Message-ID -> the mailboxes holding a copy (one entry per copy)."""
        out: dict[str, list[str]] = {}
        for mailbox in MAILBOXES:
            found = await asyncio.to_thread(flags_by_id, self.dovecot, self.user, (mailbox,))
            for mid in found:
                out.setdefault(mid, []).append(mailbox)
        return {mid: tuple(where) for mid, where in out.items()}

    async def at(self, moment: datetime) -> None:
        """The clock shows ``moment``; returns after a step of the part that began then."""
        self.clock.now = moment
        for _ in range(400):
            self.engine.wake()
            await asyncio.sleep(0.05)
            if self.part.stepped == moment:
                return
        raise AssertionError(f"no step of the sla part at {moment}")


@asynccontextmanager
async def bed(
    dovecot: Dovecot,
    tmp_path: Path,
    *,
    reappend: bool = False,
    batches: tuple[BatchConfig, ...] | None = None,
    start: datetime | None = None,
) -> AsyncIterator[Bed]:
    user, password = dovecot.new_user()
    start = start or local(10)
    clock = Clock(start - timedelta(minutes=1))  # the start (and its due releases) come first
    schedule = Schedule.parse(["03:00"], "daily", "UTC")  # never inside the test's hours
    if batches is None:
        batches = (BatchConfig("later", "Later", (NORMAL,), schedule, reappend=reappend),)
    settings = EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(vip=("boss@example.com",), retry_max=1),
        batches=batches,
        clock=clock,
        connect_timeout=10,
        look_elsewhere=3600,
        accounts=AccountsConfig(accounts=(ACME, OTHER)),
    )
    with StateStore.open(tmp_path / "state") as store:
        part = SlaLimits(settings, store)
        engine = Engine(settings, LabelDecider(), store, Password(user, password), parts=[part])
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        try:
            assert await engine.catch_up(30) is not None, "the engine did not start"
            clock.now = start
            yield Bed(dovecot, user, engine, part, store, clock)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


@pytest.mark.parametrize("reappend", [False, True], ids=["move", "reappend"])
async def test_sla_mail_is_in_inbox_when_its_sla_is_up(
    dovecot: Dovecot, tmp_path: Path, reappend: bool
) -> None:
    async with bed(dovecot, tmp_path, reappend=reappend) as b:
        acme = await b.held("anna@acme.example")
        other = await b.held("olaf@other.example")
        stranger = await b.held("sam@elsewhere.example")
        (limit,) = b.store.sla_pending(b.user)
        assert (limit.message_id, limit.due, limit.sla) == (acme.strip("<>"), local(11), "1h")

        await b.at(local(10, 59))
        places = await b.places()
        assert places[acme] == places[other] == places[stranger] == ("Later",)

        await b.at(local(11))
        places = await b.places()
        assert places[acme] == ("INBOX",)
        assert places[other] == places[stranger] == ("Later",)
        (_, flags) = flags_by_id(b.dovecot, b.user, ("INBOX",))[acme]
        assert "$Released" in flags
        assert b.store.corrections(b.user) == []  # delivered by the clock, not a correction
        held = {d.message_id for d in b.store.held_now(b.user, ["later"])}  # the page's view
        assert held == {other.strip("<>"), stranger.strip("<>")}
        assert b.store.sla_pending(b.user) == []
        assert [x.message_id for x in b.store.sla_settled(b.user, "delivered", local(10))] == [
            acme.strip("<>")
        ]

        # Not a second time: later steps leave it as it is.
        await b.at(local(12))
        assert (await b.places())[acme] == ("INBOX",)


async def test_a_batch_released_first_is_not_delivered_twice(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    async with bed(dovecot, tmp_path, reappend=True) as b:
        b.clock.now = local(10, 30)
        acme = await b.held("anna@acme.example")
        b.clock.now = local(10, 45)
        assert await b.engine.release("later") == {"later": 1}
        assert (await b.places())[acme] == ("INBOX",)

        await b.at(local(11, 30))
        assert (await b.places())[acme] == ("INBOX",)  # one copy, where the release put it
        assert b.store.sla_pending(b.user) == []
        assert len(b.store.sla_settled(b.user, "released", local(10))) == 1


async def test_quiet_hours_do_not_delay_an_sla(dovecot: Dovecot, tmp_path: Path) -> None:
    quiet = QuietHours.parse("18:00-08:00", "daily")
    batches = (BatchConfig("quiet", "Quiet", (), quiet.releases(ZONE), quiet=quiet),)
    async with bed(dovecot, tmp_path, batches=batches, start=local(18, 30)) as b:
        acme = await b.held("anna@acme.example", "Quiet")
        other = await b.held("olaf@other.example", "Quiet")
        await b.at(local(19, 30))
        places = await b.places()
        assert (places[acme], places[other]) == (("INBOX",), ("Quiet",))
