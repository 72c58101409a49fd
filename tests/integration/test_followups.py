"""Follow-ups on a real Dovecot, with the engine in process and its clock set by hand.

One engine, one week of a fake clock: messages "sent" on a Friday (through ``engine.sent``, as
the SMTP side hands them on, or appended to Sent as another device would) come back to the top
of INBOX when their working days are up -- the weekend skipped -- exactly once, unread, marked
``$FollowUp``; answers (by In-Reply-To, or by subject from the recipient, one of them held in a
batch) cancel theirs; mail to a colleague is not watched; an account's ``followup_days`` and
the message's own ``2d``/``never`` follow-up address are kept.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import re
import ssl
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.config import (
    AccountConfig,
    AccountsConfig,
    BatchConfig,
    FollowupConfig,
    TriageConfig,
)
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import FOLLOW_UP, NORMAL, NOT_HELD, TRIAGED
from commsproxy.schedule import Schedule
from commsproxy.triage.decide import Decision
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.followup_return import reminder_id
from commsproxy.triage.followups import FollowUps
from commsproxy.triage.history import LiveHistory
from commsproxy.triage.history_keeper import HistoryKeeper
from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage_faults import Clock, eventually, running, settle
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password

BERLIN = ZoneInfo("Europe/Berlin")
ME = "me@team.example"


def past_friday() -> datetime:
    """A Friday 10:00 in Berlin, two to three weeks ago: Dovecot dates an APPEND in the future
    at its arrival, so the fake week must lie in the past for INTERNALDATE to be the clock."""
    day = datetime.now(BERLIN).date() - timedelta(days=14)
    day -= timedelta(days=(day.weekday() - 4) % 7)
    return datetime.combine(day, time(10, 0), tzinfo=BERLIN)


FRIDAY = past_friday()


class HoldAll:
    """Everything is normal mail, held in the batch: a held answer must still count."""

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        return [Decision(NORMAL, None, "held in the test") for _ in mails]


def message(
    subject: str, to: str, *, sender: str = ME, date: datetime = FRIDAY, **headers: str
) -> tuple[str, bytes]:
    mid = f"<fu-{uuid.uuid4().hex[:12]}@team.example>"
    fields = {
        "From": sender, "To": to, "Subject": subject, "Message-ID": mid,
        "Date": format_datetime(date.astimezone(UTC)), **headers,
    }  # fmt: skip
    return mid, render(fields, "Some text.")


class Mailbox:
    """The test user's mailboxes, read and written with imaplib (in a thread)."""

    def __init__(self, dovecot: Dovecot, user: str, password: str) -> None:
        self.dovecot, self.user, self.password = dovecot, user, password

    def _conn(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port, timeout=30)
        conn.login(self.user, self.password)
        return conn

    async def append_sent(self, content: bytes) -> None:
        def run() -> None:
            conn = self._conn()
            typ, data = conn.append("Sent", "(\\Seen)", None, content)
            assert typ == "OK", data
            conn.logout()

        await asyncio.to_thread(run)

    async def arrive(self, content: bytes, at: datetime, flags: str = "") -> None:
        """New mail in INBOX, arrived at ``at`` (the fake clock)."""

        def run() -> None:
            conn = self._conn()
            typ, data = conn.append("INBOX", flags, imaplib.Time2Internaldate(at), content)
            assert typ == "OK", data
            conn.logout()

        await asyncio.to_thread(run)

    async def digest_text(self) -> str:
        def run() -> str:
            conn = self._conn()
            conn.select("INBOX", readonly=True)
            uids = conn.uid("SEARCH", "KEYWORD", "$Digest")[1][0].split()
            data = conn.uid("FETCH", uids[-1], "(BODY.PEEK[])")[1]
            conn.logout()
            message = email.message_from_bytes(data[0][1], policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            return str(body.get_content())

        return await asyncio.to_thread(run)

    async def followups(self) -> list[tuple[str, str, frozenset[str], datetime]]:
        """INBOX's $FollowUp messages: (Message-ID, Subject, flags, INTERNALDATE)."""
        return [row for row in await self.inbox() if FOLLOW_UP in row[2]]

    async def inbox(self) -> list[tuple[str, str, frozenset[str], datetime]]:
        def run() -> list[tuple[str, str, frozenset[str], datetime]]:
            conn = self._conn()
            conn.select("INBOX", readonly=True)
            typ, data = conn.fetch(
                "1:*", "(FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])"
            )
            conn.logout()
            out = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                meta, header = item[0].decode(), item[1].decode()
                flags = re.search(r"FLAGS \(([^)]*)\)", meta)
                date = re.search(r'INTERNALDATE "([^"]+)"', meta)
                mid = re.search(r"(?im)^message-id:\s*(<[^>]+>)", header)
                subject = re.search(r"(?im)^subject:\s*(.*)$", header)
                assert flags
                assert date
                assert mid
                out.append((
                    mid.group(1), subject.group(1).strip() if subject else "",
                    frozenset(flags.group(1).split()),
                    datetime.strptime(date.group(1), "%d-%b-%Y %H:%M:%S %z"),
                ))  # fmt: skip
            return out if typ == "OK" else []

        return await asyncio.to_thread(run)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore.open(tmp_path)


def make_engine(
    dovecot: Dovecot, user: str, password: str, store: StateStore, clock: Clock
) -> Engine:
    # Released on Thursdays only: no release moves mail while the week of the test runs on.
    schedule = Schedule.parse(["23:00"], "thu", "Europe/Berlin")
    triage = TriageConfig(retry_max=1, history_sent_check=0.2)
    settings = EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=triage,
        batches=(BatchConfig("later", "Later", (NORMAL,), schedule),),
        own_addresses=(ME,),
        clock=clock,
        connect_timeout=10,
        look_elsewhere=3600,
        followup=FollowupConfig(days=3),
        accounts=AccountsConfig(
            internal_domains=("team.example",),
            accounts=(AccountConfig("acme", "Acme", domains=("acme.example",), followup_days=1),),
        ),
    )
    history = HistoryKeeper(LiveHistory([ME]), store, user, triage, address=None)
    part = FollowUps(settings, store, zone=BERLIN)
    return Engine(settings, HoldAll(), store, Password(user, password), history, parts=[part])


async def test_a_week_of_follow_ups(dovecot: Dovecot, store: StateStore) -> None:
    user, password = dovecot.new_user()
    box = Mailbox(dovecot, user, password)
    clock = Clock(FRIDAY)
    engine = make_engine(dovecot, user, password, store, clock)
    async with running(engine):
        assert await engine.catch_up(30) is not None, "the engine did not start"

        def send(subject: str, to: str, followup: str | None = None) -> tuple[str, bytes]:
            mid, content = message(subject, to)
            engine.sent(parse_mail(content), followup)
            return mid, content

        plain, plain_bytes = send("Offer", "bob@customer.example")
        by_header, _ = send("Question", "carl@customer.example")
        by_subject, _ = send("Meeting", "dora@customer.example")
        colleague, _ = send("Lunch", "pal@team.example")
        acme, _ = send("Contract", "ceo@acme.example")  # followup_days = 1: Monday
        two_days, _ = send("Invoice", "fred@customer.example", "2d")  # Tuesday
        never, _ = send("Thanks", "gina@customer.example", "never")
        # Sent from another device: only in Sent. And the copy of one sent through SMTP.
        elsewhere, elsewhere_bytes = message("Proposal", "eve@customer.example")
        await box.append_sent(elsewhere_bytes)
        await box.append_sent(plain_bytes)

        async def found_in_sent() -> bool:
            return store.followup(user, elsewhere) is not None

        await eventually(found_in_sent, 15, "the message in Sent is watched")
        assert store.followup(user, colleague) is None
        never_row = store.followup(user, never)
        assert never_row is not None
        assert never_row.state == "cancelled"
        waiting = {f.message_id for f in store.followups(user)}
        assert len(waiting) == 6

        # Answers on Saturday: one by In-Reply-To, one by its subject only (and held).
        clock.now = FRIDAY + timedelta(days=1)
        _, reply_1 = message("Re: Question", ME, sender="carl@customer.example",
                             date=clock.now, **{"In-Reply-To": by_header})  # fmt: skip
        _, reply_2 = message("Re: Meeting", ME, sender="dora@customer.example", date=clock.now)
        await box.arrive(reply_1, clock.now)
        await box.arrive(reply_2, clock.now)

        async def answered() -> bool:
            states = {mid: store.followup(user, mid) for mid in (by_header, by_subject)}
            return all(f is not None and f.state == "answered" for f in states.values())

        await eventually(answered, 15, "both answers matched")
        held = store.latest_decision_by_message_id(user, parse_mail(reply_2).message_id or "")
        assert held is not None
        assert held.held, "the subject-matched answer was held, and still counted"

        async def back() -> set[str]:
            await settle(engine)
            return {mid for mid, *_ in await box.followups()}

        # Mail already in INBOX on Sunday: what came back later must sort above it.
        _, sunday_mail = message("Weekend", ME, sender="x@customer.example")
        await box.arrive(sunday_mail, FRIDAY + timedelta(days=2), f"({TRIAGED} {NOT_HELD})")
        # Not in Sent: they come back as commsproxy's reminder (its own Message-ID).
        acme_back, two_days_back = (f"<{reminder_id(m.strip('<>'))}>" for m in (acme, two_days))
        clock.now = FRIDAY + timedelta(days=3)  # Monday 10:00
        assert await back() == {acme_back}
        clock.now = FRIDAY + timedelta(days=4, hours=-1)  # Tuesday 09:00
        assert await back() == {acme_back}
        clock.now = FRIDAY + timedelta(days=4)  # Tuesday 10:00
        assert await back() == {acme_back, two_days_back}
        wednesday = FRIDAY + timedelta(days=5)
        clock.now = wednesday - timedelta(minutes=1)
        assert await back() == {acme_back, two_days_back}
        clock.now = wednesday
        assert await back() == {acme_back, two_days_back, plain, elsewhere}
        clock.now = wednesday + timedelta(hours=1)
        await back()
        # The release's digest lists what came back since the batch's previous release.
        assert (await engine.release("later"))["later"] == 2  # both answers
        digest = await box.digest_text()
        waiting = digest.split("Waiting for an answer", 1)[1]
        assert "* Offer: sent to bob@customer.example on " in waiting
        assert "* Proposal: sent to eve@customer.example on " in waiting
        assert "came back to INBOX" in waiting
        # Since the batch's previous release (the one the first start recorded on Friday).
        assert "* Contract: sent to ceo@acme.example on " in waiting
        assert "* Invoice: sent to fred@customer.example on " in waiting

    rows = await box.followups()
    assert len(rows) == 4, "each came back exactly once"
    newest_other = max(
        r[3] for r in await box.inbox() if FOLLOW_UP not in r[2] and "$Digest" not in r[2]
    )
    came_back = {acme_back: FRIDAY + timedelta(days=3), two_days_back: FRIDAY + timedelta(days=4)}
    for mid, subject, flags, date in rows:
        assert {TRIAGED, NOT_HELD} <= flags
        assert "\\Seen" not in flags, "unread"
        assert date > newest_other, "on top of INBOX"
        assert date == came_back.get(mid, wednesday), "dated when it came back"
        if mid == plain:
            assert subject == "Offer", "the copy kept in Sent"
        if mid == two_days_back:
            assert subject == "No answer yet: Invoice", "no copy in Sent: a reminder"
    states = {f.message_id: f.state for f in store.followups(user, ("returned",))}
    assert set(states) == {m.strip("<>") for m in (acme, two_days, plain, elsewhere)}
