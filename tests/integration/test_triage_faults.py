"""Faults at exact protocol points, and a daylight-saving day, with the engine in process.

The engine runs in this event loop against the real Dovecot, with the production decider (VIP
rules, then the bundled model). A fault hop between them cuts the engine's connection at a
``UID MOVE``: before the server sees it (nothing moved) or after the server completed it (moved,
but the engine never heard). Either way the engine must reconnect and finish, and a Message-ID
census must find every message exactly once, where its decision says. The DST tests drive the
engine's clock by hand: set it, wake the engine, and look at the server.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.classifier.contacts import Contacts
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.predict import Classifier, LoadedModel
from commsproxy.classifier.social import SenderStats
from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import BULK, NORMAL, URGENT
from commsproxy.models.store import load_bundled
from commsproxy.schedule import Schedule
from commsproxy.triage.decide import Decider, ModelDecider, RuleDecider
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop, Mode
from tests.testbed.triage import Password, census, flags_by_id

ME = "me@example.com"
VIP = ("boss@example.com",)
MOVE = rb"^\S+ UID MOVE "
HOLD = {NORMAL: "Later", BULK: "Later/Bulk"}
KEYWORDS = {URGENT: ("$Urgent", "$label1"), NORMAL: ("$Later",), BULK: ("$Bulk",)}
NOON = Schedule.parse(["12:00"], "daily", "UTC")
BEFORE_NOON = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
AT_NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BATCHES = (
    BatchConfig("later", "Later", (NORMAL,), NOON),
    BatchConfig("bulk", "Later/Bulk", (BULK,), NOON),
)
AMSTERDAM = Schedule.parse(["02:30", "09:00"], "daily", "Europe/Amsterdam")
DST_BATCH = (BatchConfig("later", "Later", (NORMAL, BULK), AMSTERDAM),)


# --- mail -------------------------------------------------------------------------------------


def mixed_mail(n: int) -> tuple[str, bytes]:
    """Every third from the VIP (urgent), a newsletter (bulk) or a colleague's note (normal)."""
    mid = f"<fault-{n}-{uuid.uuid4().hex[:8]}@test.example>"
    headers = {"To": ME, "Message-ID": mid, "Date": "Mon, 1 Jun 2026 07:00:00 +0000"}
    if n % 3 == 0:
        headers |= {"From": "Boss <boss@example.com>", "Subject": f"contract {n}"}
        return mid, render(headers, "Please call me about the contract today.")
    if n % 3 == 1:
        headers |= {
            "From": "News <noreply@news.example.org>", "Subject": f"Weekly digest {n}",
            "List-Id": "<weekly.news.example.org>",
            "List-Unsubscribe": "<mailto:leave@news.example.org>", "Precedence": "bulk",
        }  # fmt: skip
        return mid, render(headers, "This week: articles and events. Unsubscribe at any time.")
    # A status note to a few colleagues, you in cc: what the bundled model holds with a margin
    # (a reply to you in a thread scores close to its urgent cut).
    headers |= {
        "From": "Anna Smith <anna@example.org>", "Subject": f"Weekly status report {n}",
        "To": "a@example.org, b@example.org, c@example.org", "Cc": ME,
    }  # fmt: skip
    return mid, render(
        headers,
        "Status this week: the migration is on schedule, testing continues, next review in "
        "two weeks.",
    )


def newsletter() -> tuple[str, bytes]:
    return mixed_mail(1)


# --- the engine in process ----------------------------------------------------------------------


class Clock:
    """The engine's clock, set by hand: schedules are tested without waiting for them."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def decider() -> Decider:
    """The production decider: VIP rules, then the bundled model (not the user's own).

    With a history in which the user never answered the status notes' sender: without any
    history, the bundled model delivers most mail from people at once (it fails safe).
    """
    pipeline, info = load_bundled("urgency")
    never = SenderStats(30, 0, None, None)
    history = Contacts(
        None, datetime.now(UTC), frozenset({ME}), {"anna@example.org": never},
        {"example.org": never}, frozenset(),
    )  # fmt: skip
    classifier = Classifier(LoadedModel.from_info(pipeline, info))
    model = ModelDecider(classifier, frozenset({ME}), history)
    made = RuleDecider(VIP, model)
    # The tests below need both hold mailboxes to take mail; say so plainly if a rebuilt
    # bundled model stops holding this test's mail as expected.
    decided = made.decide([parse_mail(mixed_mail(n)[1]) for n in range(3)])
    assert [d.label for d in decided] == [URGENT, BULK, NORMAL], decided
    return made


class Setup:
    """A fresh user, its state store and the engine's settings."""

    def __init__(self, dovecot: Dovecot, tmp_path: Path, decider: Decider) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.store = StateStore.open(tmp_path)
        self.decider = decider
        self.delivered: list[str] = []

    async def deliver(self, message: tuple[str, bytes]) -> None:
        # In a thread: the engine shares this event loop and must not stall behind LMTP.
        await asyncio.to_thread(self.dovecot.deliver, self.user, message[1])
        self.delivered.append(message[0])

    def engine(self, port: int, batches: Sequence[BatchConfig], clock: Clock) -> Engine:
        settings = EngineSettings(
            login=self.user,
            endpoint=parse_endpoint(f"imap://{self.dovecot.host}:{port}", "imap"),
            tls=ssl.create_default_context(),
            triage=TriageConfig(vip=VIP),
            batches=tuple(batches),
            clock=clock,
            connect_timeout=10,
        )
        return Engine(settings, self.decider, self.store, Password(self.user, self.password))

    async def flags(self) -> dict[str, tuple[str, frozenset[str]]]:
        return await asyncio.to_thread(flags_by_id, self.dovecot, self.user)

    async def census(self) -> Counter[str]:
        return await asyncio.to_thread(census, self.dovecot, self.user)

    def label(self, mid: str) -> str | None:
        decision = self.store.latest_decision_by_message_id(self.user, mid)
        return decision.label if decision else None

    async def all_in_place(self) -> bool:
        """Every delivered message is decided and where its decision says."""
        found = await self.flags()
        return all(
            mailbox_of(found, mid) == expected_mailbox(self.label(mid)) for mid in self.delivered
        )


@pytest.fixture
def setup(dovecot: Dovecot, tmp_path: Path, decider: Decider) -> Iterator[Setup]:
    made = Setup(dovecot, tmp_path, decider)
    yield made
    made.store.close()


@asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Engine]:
    """The engine's run loop as a task, stopped (and its errors raised) on the way out."""
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll the server (through ``check``) until it shows the effect, or fail saying what."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.1)


async def settle(engine: Engine) -> None:
    """Wait until the engine has looked for due releases with the clock as it stands now.

    A triage pass and then the release check run in each round of its work loop; a pass that
    ends after one started after this call means the round before it checked releases.
    """
    for _ in range(2):
        assert await engine.catch_up(15) is not None, "the engine did not finish a pass"


def reconnects(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]


def assert_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


def completed_ok(answer: bytes) -> bool:
    """The withheld answer ends in a tagged OK (untagged ``* OK [COPYUID ...]`` is not enough)."""
    return re.search(rb"(?m)^[^*\s]\S* OK ", answer) is not None


def without_digests(counts: Counter[str]) -> Counter[str]:
    return Counter({mid: n for mid, n in counts.items() if not mid.startswith("<digest-")})


# --- a connection cut at the MOVE -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_connection_cut_at_triage_move(
    setup: Setup, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    for n in range(21):
        await setup.deliver(mixed_mail(n))
    async with FaultHop(setup.dovecot.host, setup.dovecot.imap_port) as hop:
        # One cut per hold mailbox's MOVE: the second lands on the retry of the first session.
        hop.arm(MOVE, mode, times=2)
        engine = setup.engine(hop.port, BATCHES, Clock(BEFORE_NOON))
        async with running(engine):

            async def cut_once() -> bool:
                return hop.cuts >= 1

            await eventually(cut_once, 15, "the first cut")
            for n in range(21, 33):  # arriving while the engine is cut off
                await setup.deliver(mixed_mail(n))

            await eventually(setup.all_in_place, 30, "every message triaged and in place")

    assert hop.cuts == 2
    assert hop.connections >= 6  # worker and watcher, three sessions
    if mode == "after":
        # The server completed each MOVE whose answer the engine never got.
        assert len(hop.swallowed) == 2
        assert all(map(completed_ok, hop.swallowed)), hop.swallowed
    assert len(reconnects(caplog)) == 2, reconnects(caplog)
    assert_no_errors(caplog)

    assert await setup.census() == Counter(dict.fromkeys(setup.delivered, 1))
    found = await setup.flags()
    labels = {mid: setup.label(mid) for mid in setup.delivered}
    for mid, label in labels.items():
        assert label is not None, mid
        mailbox, flags = found[mid]
        assert mailbox == expected_mailbox(label), (mid, label, mailbox)
        assert {"$Triaged", *KEYWORDS[label]} <= flags, (mid, label, flags)
        others = {k for other, keys in KEYWORDS.items() if other != label for k in keys}
        assert not flags & (others | {"\\Seen", "$Released"}), (mid, label, flags)
    assert {labels[mid] for mid in setup.delivered[::3]} == {URGENT}  # the VIP rule
    assert {BULK, NORMAL} <= set(labels.values())  # both hold mailboxes took mail: two MOVEs
    for mid in setup.delivered:
        assert len(setup.store.decisions_for_message_id(mid)) == 1, mid


def expected_mailbox(label: str | None) -> str:
    if label is None:
        return "(not decided yet)"
    return "INBOX" if label == URGENT else HOLD[label]


def mailbox_of(found: dict[str, tuple[str, frozenset[str]]], mid: str) -> str | None:
    return found[mid][0] if mid in found else None


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_connection_cut_at_release_move(
    setup: Setup, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    for n in range(1, 25):
        if n % 3:  # no VIP mail: everything here is held, then released
            await setup.deliver(mixed_mail(n))
    clock = Clock(BEFORE_NOON)
    async with FaultHop(setup.dovecot.host, setup.dovecot.imap_port) as hop:
        engine = setup.engine(hop.port, BATCHES, clock)
        async with running(engine):

            async def all_held() -> bool:
                found = await setup.flags()
                return all(
                    mailbox_of(found, mid) in ("Later", "Later/Bulk") for mid in setup.delivered
                )

            await eventually(all_held, 20, "every message held")
            # Only now: the cut must hit the release's MOVE back to INBOX, not a hold.
            hop.arm(MOVE, mode, times=1)
            clock.now = AT_NOON
            engine.wake()

            async def all_released() -> bool:
                found = await setup.flags()
                return all(
                    mailbox_of(found, mid) == "INBOX" and "$Released" in found[mid][1]
                    for mid in setup.delivered
                ) and not setup.store.unfinished_releases(setup.user)

            await eventually(all_released, 30, "every message released")
            await settle(engine)  # a round after the release: nothing is held again

    assert hop.cuts == 1
    if mode == "after":
        assert len(hop.swallowed) == 1
        assert completed_ok(hop.swallowed[0]), hop.swallowed
    assert len(reconnects(caplog)) == 1, reconnects(caplog)
    assert_no_errors(caplog)

    counts = await setup.census()
    assert without_digests(counts) == Counter(dict.fromkeys(setup.delivered, 1))
    digests = [mid for mid in counts if mid.startswith("<digest-")]
    assert all(counts[mid] == 1 for mid in digests)
    # One per batch, whichever side of the MOVE the cut fell: the digest goes in first, and
    # the redo finds it by its Message-ID instead of writing a second.
    assert len(digests) == len(BATCHES), digests
    found = await setup.flags()
    for mid in setup.delivered:
        assert found[mid][0] == "INBOX"
        assert {"$Triaged", "$Released"} <= found[mid][1], (mid, found[mid])
        assert len(setup.store.decisions_for_message_id(mid)) == 1, mid
    for batch in BATCHES:
        assert setup.store.last_scheduled_release(setup.user, batch.name) == AT_NOON
    assert await asyncio.to_thread(setup.dovecot.message_count, setup.user, "Later") == 0
    assert await asyncio.to_thread(setup.dovecot.message_count, setup.user, "Later/Bulk") == 0


# --- a daylight-saving day ----------------------------------------------------------------------


async def where_is(setup: Setup, mid: str) -> str | None:
    return mailbox_of(await setup.flags(), mid)


async def hold_one(setup: Setup) -> str:
    message = newsletter()
    await setup.deliver(message)

    async def held() -> bool:
        return await where_is(setup, message[0]) == "Later"

    await eventually(held, 15, f"{message[0]} held in Later")
    return message[0]


async def assert_held_at(
    setup: Setup, engine: Engine, clock: Clock, now: datetime, mid: str
) -> None:
    last = setup.store.last_scheduled_release(setup.user, "later")
    clock.now = now
    engine.wake()
    await settle(engine)
    assert await where_is(setup, mid) == "Later", f"released at {now}"
    assert setup.store.last_scheduled_release(setup.user, "later") == last


async def assert_released_at(
    setup: Setup, engine: Engine, clock: Clock, now: datetime, mid: str
) -> None:
    clock.now = now
    engine.wake()

    async def released() -> bool:
        found = (await setup.flags()).get(mid)
        return found is not None and found[0] == "INBOX" and "$Released" in found[1]

    await eventually(released, 15, f"{mid} released at {now}")
    assert setup.store.last_scheduled_release(setup.user, "later") == now


def utc(month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


async def test_spring_forward_releases_the_missing_0230_after_the_gap(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    clock = Clock(utc(3, 28, 20, 0))
    engine = setup.engine(setup.dovecot.imap_port, DST_BATCH, clock)
    async with running(engine):
        await settle(engine)
        # The first start released what a schedule with no record had "missed": 09:00 CET.
        assert setup.store.last_scheduled_release(setup.user, "later") == utc(3, 28, 8, 0)
        first = await hold_one(setup)
        await assert_held_at(setup, engine, clock, utc(3, 29, 1, 29), first)
        # The first moment after the gap: 02:30 at the old offset, 03:30 CEST.
        await assert_released_at(setup, engine, clock, utc(3, 29, 1, 30), first)

        second = await hold_one(setup)
        await assert_held_at(setup, engine, clock, utc(3, 29, 6, 59), second)
        await assert_released_at(setup, engine, clock, utc(3, 29, 7, 0), second)  # 09:00 CEST
    assert await setup.census() == Counter({first: 1, second: 1}) + await digest_counts(setup)
    assert_no_errors(caplog)


async def test_fall_back_releases_the_doubled_0230_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at 00:30 and at 01:30 UTC.
    clock = Clock(utc(10, 24, 20, 0))
    engine = setup.engine(setup.dovecot.imap_port, DST_BATCH, clock)
    async with running(engine):
        await settle(engine)
        assert setup.store.last_scheduled_release(setup.user, "later") == utc(10, 24, 7, 0)
        first = await hold_one(setup)
        await assert_held_at(setup, engine, clock, utc(10, 25, 0, 29), first)
        await assert_released_at(setup, engine, clock, utc(10, 25, 0, 30), first)  # 02:30 CEST

        second = await hold_one(setup)
        await assert_held_at(setup, engine, clock, utc(10, 25, 1, 30), second)  # 02:30 CET
        await assert_held_at(setup, engine, clock, utc(10, 25, 7, 59), second)
        await assert_released_at(setup, engine, clock, utc(10, 25, 8, 0), second)  # 09:00 CET
    assert setup.store.last_scheduled_release(setup.user, "later") == utc(10, 25, 8, 0)
    assert await setup.census() == Counter({first: 1, second: 1}) + await digest_counts(setup)
    assert_no_errors(caplog)


async def digest_counts(setup: Setup) -> Counter[str]:
    """The digests in the census, each expected once: one per release that moved mail."""
    digests = Counter({m: n for m, n in (await setup.census()).items() if m.startswith("<digest")})
    assert sorted(digests.values()) == [1, 1], digests
    return digests
