"""Snooze against the real Dovecot: a message the user moves into a ``Snoozed/…`` mailbox comes
back to the top of INBOX, unread, at its time -- once, and not a minute early.

The engine runs in process with the snooze part and a clock the test sets (time is a
parameter: nothing sleeps for a schedule). The user moves mail with imaplib, as a mail program
would; the part notices it within its look interval (0.2 s here) and records its due time; the
test then sets the clock and wakes the engine, and waits for the part's step that began at that
time before it looks at the server.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.config import SnoozeConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.timespec import parse_when
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.snooze import Snoozes
from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage_quiet import LabelDecider, batches, mail, mid_of
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password, fetch_fields

ZONE = ZoneInfo("Europe/Brussels")
BOXES = (
    *SnoozeConfig().boxes,
    ("After lunch", parse_when("13:30")),  # a box of the user's own, with a time rule
)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """December 2025 in Brussels (the 1st is a Monday): in the past, since a server may take
    an APPEND's date in the future for a wrong one and use its own clock instead."""
    return datetime(2025, 12, day, hour, minute, tzinfo=ZONE)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Bed:
    dovecot: Dovecot
    user: str
    password: str
    engine: Engine
    part: Snoozes
    store: StateStore
    clock: Clock
    imap: imaplib.IMAP4 = field(init=False)

    def __post_init__(self) -> None:
        self.imap = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port, timeout=30)
        self.imap.login(self.user, self.password)

    # -- what the user does, in a mail program ------------------------------------------------

    def read_and_snooze(self, message: bytes, box: str) -> str:
        """The message comes (urgent: it stays in INBOX), is read, and is moved into ``box``."""
        mid = mid_of(message)
        self.imap.select("INBOX")
        typ, data = self.imap.append("INBOX", "(\\Seen $Triaged $NotHeld)", None, message)
        assert typ == "OK", data
        self.move(mid, "INBOX", f"Snoozed/{box}")
        return mid

    def move(self, mid: str, source: str, target: str) -> None:
        self.imap.select(f'"{source}"')
        typ, data = self.imap.uid("SEARCH", "HEADER", "Message-ID", mid)
        assert typ == "OK", data
        assert data[0], (source, mid)
        typ, data = self.imap.uid("MOVE", data[0].decode(), f'"{target}"')
        assert typ == "OK", data
        self.imap.unselect()

    # -- what the test looks at ---------------------------------------------------------------

    def messages(self, mailbox: str) -> list[dict[str, str]]:
        fields = "flags date.received.unixtime hdr.message-id"
        return fetch_fields(self.dovecot, self.user, mailbox, fields)

    def copies(self, mid: str, mailbox: str) -> list[dict[str, str]]:
        return [m for m in self.messages(mailbox) if m.get("hdr.message-id") == mid]

    async def noticed(self, count: int) -> None:
        """The part recorded ``count`` snoozed messages (it looks every 0.2 s)."""
        for _ in range(200):
            if len(self.store.snoozed(self.user)) == count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not noticed: {self.store.snoozed(self.user)}")

    async def at(self, moment: datetime) -> None:
        """The clock shows ``moment``; returns after a step of the part that began then."""
        self.clock.now = moment
        for _ in range(400):
            self.engine.wake()
            await asyncio.sleep(0.05)
            if self.part.stepped == moment:
                return
        raise AssertionError(f"no step of the snooze part at {moment}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as opened:
        yield opened


@asynccontextmanager
async def bed(dovecot: Dovecot, store: StateStore, start: datetime) -> AsyncIterator[Bed]:
    user, password = dovecot.new_user()
    clock = Clock(start)
    settings = EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(vip=("boss@example.com",), retry_max=1),
        batches=batches(),
        clock=clock,
        connect_timeout=10,
        look_elsewhere=3600,
        snooze=SnoozeConfig(boxes=BOXES),
    )
    part = Snoozes(settings, store, zone=ZONE, look_every=0.2)
    engine = Engine(settings, LabelDecider(), store, Password(user, password), parts=[part])
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        assert await engine.catch_up(30) is not None, "the engine did not start"
        test_bed = Bed(dovecot, user, password, engine, part, store, clock)
        try:
            yield test_bed
        finally:
            test_bed.imap.logout()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def boss_mail(subject: str) -> bytes:
    return mail(f"{subject} {uuid.uuid4().hex[:6]}", sender="boss@example.com")


def back_in_inbox(bed: Bed, mid: str, moment: datetime) -> None:
    """Exactly one copy in INBOX, unread, arrived at ``moment``; none left in a snooze box."""
    (copy,) = bed.copies(mid, "INBOX")
    flags = set(copy["flags"].split())
    assert "\\Seen" not in flags
    assert {"$Triaged", "$Released", "$Unsnoozed"} <= flags
    assert int(copy["date.received.unixtime"]) == int(moment.timestamp())  # on top, by date
    for box, _ in BOXES:
        assert not bed.copies(mid, f"Snoozed/{box}"), box


async def test_boxes_are_made_and_mail_comes_back_at_its_time(
    dovecot: Dovecot, store: StateStore
) -> None:
    async with bed(dovecot, store, local(1, 10)) as b:
        # The boxes exist and are subscribed, so mail programs show them.
        typ, listed = b.imap.lsub('""', "Snoozed*")
        assert typ == "OK"
        names = {re.sub(r'^.*"/" "?(.*?)"?$', r"\1", line.decode()) for line in listed if line}
        assert names >= {"Snoozed", *(f"Snoozed/{box}" for box, _ in BOXES)}

        lunch = b.read_and_snooze(boss_mail("lunch"), "After lunch")
        early = b.read_and_snooze(boss_mail("early"), "Tomorrow")
        await b.noticed(2)
        # Taken out before its time: forgotten, never returned.
        b.move(early, "Snoozed/Tomorrow", "INBOX")
        for _ in range(200):
            if len(store.snoozed(b.user)) == 1:
                break
            await asyncio.sleep(0.05)
        assert [s.message_id for s in store.snoozed(b.user)] == [lunch.strip("<>")]

        await b.at(local(1, 13, 29))
        assert len(b.copies(lunch, "Snoozed/After lunch")) == 1
        assert not b.copies(lunch, "INBOX")
        await b.at(local(1, 13, 30))
        back_in_inbox(b, lunch, local(1, 13, 30))

        b.clock.now = local(1, 15)
        tomorrow = b.read_and_snooze(boss_mail("tomorrow"), "Tomorrow")
        await b.noticed(1)
        await b.at(local(2, 7, 59))
        assert not b.copies(tomorrow, "INBOX")
        await b.at(local(2, 8))
        back_in_inbox(b, tomorrow, local(2, 8))
        # Once: later steps bring nothing back again.
        await b.at(local(2, 9))
        assert len(b.copies(tomorrow, "INBOX")) == 1
        (kept,) = b.copies(early, "INBOX")  # the one taken out early, as the user left it
        assert "$Unsnoozed" not in kept["flags"]
        assert store.snoozed(b.user) == []


async def test_a_sleep_across_its_time_returns_it_once_at_wake(
    dovecot: Dovecot, store: StateStore
) -> None:
    async with bed(dovecot, store, local(1, 15)) as b:
        mid = b.read_and_snooze(boss_mail("asleep"), "Tomorrow")
        await b.noticed(1)
        (due,) = [s.due for s in store.snoozed(b.user)]
        assert due == local(2, 8)
        # The laptop sleeps from Monday 15:00 to Wednesday 10:00.
        await b.at(local(3, 10))
        back_in_inbox(b, mid, local(3, 10))
        await b.at(local(3, 10, 1))
        assert len(b.copies(mid, "INBOX")) == 1
