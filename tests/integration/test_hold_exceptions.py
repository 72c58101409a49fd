"""Exceptions to the hold, against the real Dovecot with the engine in process.

``me+urgent@``: mail to the user's tagged address comes through at once, however bulk it
looks, whether the tag is in To or only in the envelope (Dovecot's Delivered-To and Received
"for" after an LMTP delivery), while the same mail to the plain address is held.

A quiet batch (``quiet = "18:00-08:00"``): at 18:30 by the engine's clock a normal message (no
batch holds normal here) is held in the quiet batch's mailbox, urgent mail still comes, the
bulk batch's 19:00 release does not happen; at 08:00 both batches come in, once.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.classifier.contacts import Contacts
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.predict import Classifier, LoadedModel
from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import BULK, NORMAL, URGENT
from commsproxy.models.store import load_bundled
from commsproxy.schedule import QuietHours, Schedule
from commsproxy.triage.decide import Decider, Decision, ModelDecider, RuleDecider, UrgentTag
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password, census, flags_by_id

MAILBOXES = ("INBOX", "Later/Bulk", "Quiet")
VIP = ("boss@example.com",)


class Clock:
    """The engine's clock, set by hand: schedules are tested without waiting for them."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def newsletter(to: str) -> tuple[str, bytes]:
    mid = f"<except-{uuid.uuid4().hex}@shop.example>"
    headers = {
        "From": "Deals <deals@shop.example>", "To": to, "Subject": "50% off this week only",
        "Message-ID": mid, "Date": "Mon, 1 Jun 2026 07:00:00 +0000",
        "List-Id": "<deals.shop.example>", "List-Unsubscribe": "<mailto:leave@shop.example>",
        "Precedence": "bulk",
    }  # fmt: skip
    return mid, render(headers, "Our best offers this week. Unsubscribe at any time.")


def note(subject: str, sender: str = "anna@example.org") -> tuple[str, bytes]:
    mid = f"<except-{uuid.uuid4().hex}@example.org>"
    headers = {
        "From": sender, "To": "me@example.com", "Subject": subject, "Message-ID": mid,
        "Date": "Mon, 1 Jun 2026 07:00:00 +0000",
    }  # fmt: skip
    return mid, render(headers, "Some text.")


class Setup:
    def __init__(self, dovecot: Dovecot, tmp_path: Path) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.address = f"{self.user}@localhost"
        self.store = StateStore.open(tmp_path)

    def engine(self, decider: Decider, batches: Sequence[BatchConfig], clock: Clock) -> Engine:
        settings = EngineSettings(
            login=self.user,
            endpoint=parse_endpoint(f"imap://{self.dovecot.host}:{self.dovecot.imap_port}", "imap"),
            tls=ssl.create_default_context(),
            triage=TriageConfig(vip=VIP),
            batches=tuple(batches),
            own_addresses=(self.address,),
            clock=clock,
            connect_timeout=10,
            look_elsewhere=3600,
        )
        return Engine(settings, decider, self.store, Password(self.user, self.password))

    async def deliver(self, message: tuple[str, bytes], rcpt: str | None = None) -> str:
        # In a thread: the engine shares this event loop and must not stall behind LMTP.
        await asyncio.to_thread(self.dovecot.deliver, rcpt or self.user, message[1])
        return message[0]

    async def flags(self) -> dict[str, tuple[str, frozenset[str]]]:
        return await asyncio.to_thread(flags_by_id, self.dovecot, self.user, MAILBOXES)

    async def census(self) -> Counter[str]:
        counts = await asyncio.to_thread(census, self.dovecot, self.user, MAILBOXES)
        return Counter({m: n for m, n in counts.items() if not m.startswith("<digest-")})


@pytest.fixture
def setup(dovecot: Dovecot, tmp_path: Path) -> Iterator[Setup]:
    made = Setup(dovecot, tmp_path)
    yield made
    made.store.close()


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Engine]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.1)


async def settle(engine: Engine) -> None:
    """Two passes: the round before the second one looked for due releases at the clock."""
    for _ in range(2):
        assert await engine.catch_up(15) is not None, "the engine did not finish a pass"


async def placed(setup: Setup, where: dict[str, str]) -> None:
    async def there() -> bool:
        found = await setup.flags()
        return all(found.get(mid, ("",))[0] == box for mid, box in where.items())

    await eventually(there, 15, f"in place: {where}")


# --- me+urgent@ -------------------------------------------------------------------------------


async def test_mail_to_the_urgent_address_comes_at_once(setup: Setup) -> None:
    pipeline, info = load_bundled("urgency")
    me = frozenset({setup.address})
    history = Contacts(None, datetime.now(UTC), me, {}, {}, frozenset())
    model = ModelDecider(Classifier(LoadedModel.from_info(pipeline, info)), me, history)
    tag = UrgentTag.of("urgent", [setup.address])
    # never_urgent for the shop: the tagged address wins over it
    decider = RuleDecider(VIP, model, ["*@shop.example"], tag)
    batches = (
        BatchConfig(
            "bulk", "Later/Bulk", (BULK, NORMAL), Schedule.parse(["12:00"], "daily", "UTC")
        ),
    )
    engine = setup.engine(decider, batches, Clock(datetime(2026, 6, 1, 13, 0, tzinfo=UTC)))
    tagged_rcpt = f"{setup.user}+urgent@localhost"
    async with running(engine):
        await settle(engine)
        plain = await setup.deliver(newsletter(setup.address))
        in_to = await setup.deliver(newsletter(tagged_rcpt))
        # To names a list; only the envelope (LMTP RCPT TO) carries the tag.
        in_envelope = await setup.deliver(newsletter("deals-list@shop.example"), tagged_rcpt)
        await placed(setup, {plain: "Later/Bulk", in_to: "INBOX", in_envelope: "INBOX"})
        await settle(engine)
    found = await setup.flags()
    for mid in (in_to, in_envelope):
        assert "$Urgent" in found[mid][1]
        decision = setup.store.latest_decision_by_message_id(setup.user, mid)
        assert decision is not None
        assert (decision.label, decision.held) == (URGENT, False)
        assert decision.reason == f"sent to your +urgent address ({tagged_rcpt})"
    held = setup.store.latest_decision_by_message_id(setup.user, plain)
    assert held is not None
    assert held.label == BULK
    assert held.held
    # The model's reasons, worded while the server held the mail, are in the store in full.
    assert held.reason.startswith("bulk (")
    assert ": held: " in held.reason, held.reason
    assert await setup.census() == Counter({plain: 1, in_to: 1, in_envelope: 1})


# --- a quiet batch ----------------------------------------------------------------------------


class BySubject:
    """VIP rules; the rest by subject: "bulk ..." is bulk, anything else normal."""

    def __init__(self) -> None:
        self.rules = RuleDecider(VIP)

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        out = []
        for one, decision in zip(mails, self.rules.decide(mails), strict=True):
            if decision.label == URGENT:
                out.append(decision)
            elif one.subject.startswith("bulk"):
                out.append(Decision(BULK, None, "bulk by its subject"))
            else:
                out.append(Decision(NORMAL, None, "normal by its subject"))
        return out


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


QUIET = QuietHours.parse("18:00-08:00", "daily")
QUIET_BATCHES = (
    BatchConfig("bulk", "Later/Bulk", (BULK,), Schedule.parse(["19:00"], "daily", "UTC")),
    BatchConfig("quiet", "Quiet", (), QUIET.releases(UTC), quiet=QUIET),
)


async def test_quiet_hours_hold_normal_mail_and_defer_releases(setup: Setup) -> None:
    clock = Clock(at(1, 17))
    engine = setup.engine(BySubject(), QUIET_BATCHES, clock)
    store, user = setup.store, setup.user

    async def tick(now: datetime) -> None:
        clock.now = now
        engine.wake()
        await settle(engine)

    async with running(engine):
        await settle(engine)  # the first start released the "missed" 08:00 and 19:00: empty
        bulk_before = store.last_scheduled_release(user, "bulk")
        # 17:00, before the window: normal mail comes in, bulk is held by its batch
        day = await setup.deliver(note("notes from today"))
        bulk = await setup.deliver(note("bulk offers"))
        await placed(setup, {day: "INBOX", bulk: "Later/Bulk"})

        await tick(at(1, 18, 30))  # inside the window
        evening = await setup.deliver(note("notes from tonight"))
        boss = await setup.deliver(note("call me", sender="boss@example.com"))
        await placed(setup, {evening: "Quiet", boss: "INBOX"})
        decision = store.latest_decision_by_message_id(user, evening)
        assert decision is not None
        assert (decision.batch, decision.held) == ("quiet", True)
        assert decision.reason == "normal by its subject (quiet hours: held until they end)"

        for now in (at(1, 19), at(1, 23, 59), at(2, 7, 59)):
            await tick(now)  # bulk's 19:00 falls inside the window: nothing is released
            assert store.last_scheduled_release(user, "bulk") == bulk_before, now
        found = await setup.flags()
        assert (found[bulk][0], found[evening][0]) == ("Later/Bulk", "Quiet")

        await tick(at(2, 8))  # the window ends: the deferred 19:00 and the quiet batch come
        await placed(setup, {bulk: "INBOX", evening: "INBOX"})
        assert store.last_scheduled_release(user, "bulk") == at(1, 19)
        assert store.last_scheduled_release(user, "quiet") == at(2, 8)
        releases = len(store.recent_releases(user, 50))
        await tick(at(2, 8, 5))
        assert len(store.recent_releases(user, 50)) == releases  # once
        # out of the window, normal mail comes straight in again
        morning = await setup.deliver(note("notes from the morning"))
        await placed(setup, {morning: "INBOX"})
    found = await setup.flags()
    assert {"$Released"} <= found[bulk][1]
    assert {"$Released"} <= found[evening][1]
    assert "$Released" not in found[day][1]
    assert await setup.census() == Counter({day: 1, bulk: 1, evening: 1, boss: 1, morning: 1})
    everything = await asyncio.to_thread(census, setup.dovecot, user, MAILBOXES)
    digests = [mid for mid in everything if mid.startswith("<digest-")]
    assert len(digests) == 2, digests  # one for each batch released at 08:00
