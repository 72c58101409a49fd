"""Auto-replies to held mail, sent through the login's own SMTP server (Dovecot's submission,
relayed to the test bed's relay target, which captures what left).

The engine runs in process with a clock the test moves: two messages from one outside sender
on one day get one reply (RFC 3834 headers, the text naming the batch's next release), a third
the next day gets another; a list message and a bulk message get none; with ``[autoreply]
enabled = false`` nothing is sent at all.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from commsproxy.classifier.mail import Mail
from commsproxy.config import AutoreplyConfig, BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import BULK, NORMAL
from commsproxy.schedule import Schedule
from commsproxy.triage.autoreply import AutoReplies, give_credentials
from commsproxy.triage.autoreply_text import spoken_release
from commsproxy.triage.decide import Decision
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.scheduler import next_release
from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import Password


class SubjectDecider:
    """ "bulk ..." is bulk, anything else normal: held either way."""

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        return [
            Decision(BULK, None, "bulk by its subject")
            if m.subject.startswith("bulk")
            else Decision(NORMAL, None, "normal by its subject")
            for m in mails
        ]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def batches() -> tuple[BatchConfig, ...]:
    """Released 12 hours from now: no release falls inside a test until the clock moves."""
    at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    schedule = Schedule.parse([at], "daily", "UTC")
    return (
        BatchConfig("later", "Later", (NORMAL,), schedule),
        BatchConfig("bulk", "Later/Bulk", (BULK,), schedule),
    )


def settings(dovecot: Dovecot, user: str, clock: Clock, enabled: bool) -> EngineSettings:
    return EngineSettings(
        login=user,
        endpoint=parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(retry_max=1),
        batches=batches(),
        own_addresses=(f"{user}@localhost",),
        clock=clock,
        connect_timeout=10,
        look_elsewhere=3600,
        autoreply=AutoreplyConfig(enabled=enabled),
        smtp=parse_endpoint(f"smtp://127.0.0.1:{dovecot.submission_port}", "smtp"),
    )


def message(user: str, sender: str, subject: str, **extra: str) -> tuple[bytes, str]:
    mid = f"<ar-{uuid.uuid4().hex}@client.example>"
    headers = {
        "From": sender, "To": f"{user}@localhost", "Subject": subject, "Message-ID": mid,
        "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"), **extra,
    }  # fmt: skip
    return render(headers, "Could you have a look?"), mid


@asynccontextmanager
async def running(
    dovecot: Dovecot, store: StateStore, clock: Clock, enabled: bool
) -> AsyncIterator[Engine]:
    user, password = dovecot.new_user()
    s = settings(dovecot, user, clock, enabled)
    parts = [AutoReplies(s, store)]
    credentials = Password(user, password)
    give_credentials(parts, credentials)
    engine = Engine(s, SubjectDecider(), store, credentials, parts=parts)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        assert await engine.catch_up(30) is not None, "the engine did not start"
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def deliver(dovecot: Dovecot, engine: Engine, mail: bytes) -> None:
    await asyncio.to_thread(dovecot.deliver, engine.settings.login, mail)


async def decided(store: StateStore, engine: Engine, mids: Sequence[str]) -> None:
    """Until each message is decided (and, when held, its auto-reply queued or not)."""
    wanted = {m.strip("<>") for m in mids}
    for _ in range(300):
        await engine.catch_up(5)
        since = datetime.now(UTC) - timedelta(days=3)
        done = {
            d.message_id for d in store.decisions_since(since) if d.login == engine.settings.login
        }
        if wanted <= done:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not decided: {wanted - done}")


def replies_to(dovecot: Dovecot, address: str) -> list[EmailMessage]:
    found = []
    for captured in dovecot.relay.captured():
        if address in captured.rcpt_tos:
            parsed = message_from_bytes(captured.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            found.append(parsed)
    return found


async def replies(dovecot: Dovecot, address: str, count: int) -> list[EmailMessage]:
    for _ in range(200):
        found = await asyncio.to_thread(replies_to, dovecot, address)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{address} got {len(found)} auto-replies, expected {count}")


async def test_one_reply_per_sender_per_day_none_to_lists_or_bulk(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    clock = Clock()
    tag = uuid.uuid4().hex[:8]
    pia, lister, shop = (f"{n}-{tag}@client.example" for n in ("pia", "lister", "shop"))
    with StateStore.open(tmp_path / "state") as store:
        async with running(dovecot, store, clock, enabled=True) as engine:
            user = engine.settings.login
            first, first_id = message(user, f"Pia <{pia}>", "Offer for Q1")
            second, second_id = message(user, pia, "Re: Offer for Q1")
            listed, listed_id = message(user, lister, "Minutes", **{"List-Id": "<team.example>"})
            bulk, bulk_id = message(user, shop, "bulk deals")
            for mail in (first, second, listed, bulk):
                await deliver(dovecot, engine, mail)
            await decided(store, engine, [first_id, second_id, listed_id, bulk_id])

            (reply,) = await replies(dovecot, pia, 1)
            assert reply["Auto-Submitted"] == "auto-replied"
            assert reply["X-Auto-Response-Suppress"] == "All"
            assert reply["In-Reply-To"] == first_id
            assert first_id in reply["References"]
            assert reply["Subject"] == "Auto: Offer for Q1"
            assert reply["From"] == f"{user}@localhost"
            assert reply["To"] == pia
            later = engine.settings.batches[0].schedule
            when = spoken_release(next_release(later, clock.now), clock.now, later.zone)
            body = reply.get_body()
            assert body is not None
            text = " ".join(body.get_content().split())
            assert f"yours will be read at {when}" in text
            assert f"write to {user}+urgent@localhost" in text

            # The second message's reply would be the same day's: none; nothing else queued.
            await engine.catch_up(5)
            assert store.autoreplies(user, "queued") == []
            assert len(replies_to(dovecot, pia)) == 1
            assert replies_to(dovecot, lister) == []
            assert replies_to(dovecot, shop) == []

            # The next day by the clock: another one.
            clock.now += timedelta(days=1)
            third, third_id = message(user, pia, "One more question")
            await deliver(dovecot, engine, third)
            await decided(store, engine, [third_id])
            assert len(await replies(dovecot, pia, 2)) == 2
            assert store.autoreplies_done_since(user, "sent", clock.now - timedelta(days=2)) == 2


async def test_nothing_is_sent_when_off(dovecot: Dovecot, tmp_path: Path) -> None:
    clock = Clock()
    anna = f"anna-{uuid.uuid4().hex[:8]}@client.example"
    with StateStore.open(tmp_path / "state") as store:
        async with running(dovecot, store, clock, enabled=False) as engine:
            mail, mid = message(engine.settings.login, anna, "A question")
            await deliver(dovecot, engine, mail)
            await decided(store, engine, [mid])
            await engine.catch_up(5)
            assert store.autoreplies(engine.settings.login, "queued") == []
            assert store.autoreplies(engine.settings.login, "sent") == []
    assert replies_to(dovecot, anna) == []
