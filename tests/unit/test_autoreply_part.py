"""The auto-reply part with a real state store and a fake SMTP link: once per recipient per
day, a few per step, a crash mid-try never sends twice, failures retried then given up, replies
too late for their release dropped, nothing in a dry run or when off."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.config import (
    AccountConfig,
    AccountsConfig,
    AutoreplyConfig,
    BatchConfig,
    TriageConfig,
    load_config,
)
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import NORMAL
from commsproxy.schedule import Schedule
from commsproxy.service import RunOptions, plan
from commsproxy.timespec import parse_when
from commsproxy.triage import autoreply
from commsproxy.triage.autoreply import PER_STEP, TRIES, AutoReplies, give_credentials
from commsproxy.triage.autoreply_send import PasswordLogin, SmtpRefused
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.sla import SlaLimits
from commsproxy.triage.state_store import Decision, StateStore
from tests.mailfactory import render

# Monday 7 December 2026, 09:00 UTC; the batch is released at 12:30 and 16:30 UTC.
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Creds:
    async def __call__(self) -> tuple[str, str]:
        return "jan", "secret"


class FakeSmtp:
    """Stands in for autoreply_send.smtp_link: records what was sent, fails when told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.logins: list[Any] = []
        self.connect_error: Exception | None = None
        self.refuse: dict[str, SmtpRefused] = {}
        self.crash_on: str | None = None  # a recipient whose try "kills the process"

    @asynccontextmanager
    async def link(
        self, where: object, tls: object, login: object, seconds: float
    ) -> AsyncIterator[FakeSmtp]:
        self.logins.append(login)
        if self.connect_error is not None:
            raise self.connect_error
        yield self

    async def send(self, mail_from: str, recipient: str, content: bytes) -> None:
        if recipient == self.crash_on:
            raise KeyboardInterrupt  # the process dies mid-try
        if recipient in self.refuse:
            raise self.refuse[recipient]
        self.sent.append((mail_from, recipient, content))


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> FakeSmtp:
    fake = FakeSmtp()
    monkeypatch.setattr(autoreply, "smtp_link", fake.link)
    return fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as opened:
        yield opened


def settings(clock: Clock, **changes: Any) -> EngineSettings:
    schedule = Schedule.parse(["12:30", "16:30"], "daily", "UTC")
    base = EngineSettings(
        login="jan",
        endpoint=parse_endpoint("imap://127.0.0.1:1143", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(),
        batches=(BatchConfig("later", "Later", (NORMAL,), schedule),),
        own_addresses=("jan@acme.be",),
        clock=clock,
        autoreply=AutoreplyConfig(enabled=True),
        smtp=parse_endpoint("smtp://127.0.0.1:1587", "smtp"),
    )
    return replace(base, **changes)


def part(store: StateStore, clock: Clock, **changes: Any) -> AutoReplies:
    made = AutoReplies(settings(clock, **changes), store)
    give_credentials([made], Creds())
    return made


def held(sender: str, uid: int, subject: str = "Offer") -> tuple[Mail, Decision]:
    headers = {
        "From": sender, "To": "jan@acme.be", "Subject": subject,
        "Message-ID": f"<m{uid}@client.example>",
    }  # fmt: skip
    mail = parse_mail(render(headers, "Hello"))
    decision = Decision(
        login="jan", mailbox="INBOX", uidvalidity=1, uid=uid, message_id=f"m{uid}@client.example",
        label=NORMAL, score=None, reason="", batch="later", held=True, sender=sender,
        subject=subject, decided_at=START,
    )  # fmt: skip
    return mail, decision


def words(content: bytes) -> str:
    """The reply's text, its lines joined."""
    parsed = message_from_bytes(content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body()
    assert body is not None
    return " ".join(body.get_content().split())


def decide(p: AutoReplies, *pairs: tuple[Mail, Decision]) -> None:
    p.decided([m for m, _ in pairs], [d for _, d in pairs])


async def test_once_per_recipient_per_day(store: StateStore, smtp: FakeSmtp) -> None:
    clock = Clock()
    p = part(store, clock)
    decide(p, held("pia@client.example", 1), held("pia@client.example", 2))
    assert p.next_due() == START
    await p.step(None)  # type: ignore[arg-type]  # the IMAP link is not used
    assert [r for _, r, _ in smtp.sent] == ["pia@client.example"]
    assert smtp.sent[0][0] == "jan@acme.be"
    assert "yours will be read at 12:30 today" in words(smtp.sent[0][2])
    assert smtp.logins == [PasswordLogin("jan", "secret")]
    assert "secret" not in repr(smtp.logins)
    decide(p, held("pia@client.example", 3))
    await p.step(None)  # type: ignore[arg-type]
    assert len(smtp.sent) == 1
    assert p.next_due() is None
    clock.now += timedelta(days=1)
    decide(p, held("pia@client.example", 4))
    await p.step(None)  # type: ignore[arg-type]
    assert len(smtp.sent) == 2
    assert store.autoreplies_done_since("jan", "sent", START) == 2


async def test_a_burst_is_sent_a_few_per_step(store: StateStore, smtp: FakeSmtp) -> None:
    p = part(store, Clock())
    decide(p, *(held(f"p{n}@client{n}.example", n) for n in range(500)))
    await p.step(None)  # type: ignore[arg-type]
    assert len(smtp.sent) == PER_STEP
    assert len(smtp.logins) == 1  # one connection per step
    steps = 1
    while p.next_due() is not None:
        await p.step(None)  # type: ignore[arg-type]
        steps += 1
    assert len(smtp.sent) == 500
    assert len({r for _, r, _ in smtp.sent}) == 500
    assert steps == 500 // PER_STEP


async def test_a_crash_mid_try_never_sends_twice(
    store: StateStore, smtp: FakeSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    p = part(store, clock)
    decide(p, held("pia@client.example", 1), held("bob@other.example", 2))
    smtp.crash_on = "pia@client.example"
    with pytest.raises(KeyboardInterrupt):
        await p.step(None)  # type: ignore[arg-type]
    smtp.crash_on = None
    restarted = part(store, clock)
    with caplog.at_level(logging.WARNING, "commsproxy.triage"):
        await restarted.start(None)  # type: ignore[arg-type]
    assert "may have gone out" in caplog.text
    await restarted.step(None)  # type: ignore[arg-type]
    assert [r for _, r, _ in smtp.sent] == ["bob@other.example"]
    assert [r.recipient for r in store.autoreplies("jan", "unsure")] == ["pia@client.example"]
    assert restarted.next_due() is None


async def test_failures_are_retried_then_given_up_once(
    store: StateStore, smtp: FakeSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    p = part(store, clock)
    decide(p, held("pia@client.example", 1))
    smtp.connect_error = OSError("connection refused")
    with caplog.at_level(logging.WARNING, "commsproxy.triage"):
        for _ in range(TRIES):
            due = p.next_due()
            assert due is not None
            clock.now = max(clock.now, due)
            await p.step(None)  # type: ignore[arg-type]
    assert p.next_due() is None
    assert [r.tries for r in store.autoreplies("jan", "failed")] == [TRIES]
    assert caplog.text.count("cannot send auto-replies") == 1
    assert caplog.text.count("given up") == 1
    assert smtp.sent == []


async def test_a_refused_recipient_is_given_up_at_once(store: StateStore, smtp: FakeSmtp) -> None:
    p = part(store, Clock())
    decide(p, held("pia@client.example", 1), held("bob@other.example", 2))
    smtp.refuse["pia@client.example"] = SmtpRefused("to pia", 550, "no such user")
    await p.step(None)  # type: ignore[arg-type]
    assert [r for _, r, _ in smtp.sent] == ["bob@other.example"]
    assert [r.recipient for r in store.autoreplies("jan", "failed")] == ["pia@client.example"]


async def test_a_reply_too_late_for_its_release_is_dropped(
    store: StateStore, smtp: FakeSmtp
) -> None:
    clock = Clock()
    p = part(store, clock)
    decide(p, held("pia@client.example", 1))
    clock.now = START + timedelta(hours=4)  # past 12:30: the mail is read by now
    await p.step(None)  # type: ignore[arg-type]
    assert smtp.sent == []
    assert [r.recipient for r in store.autoreplies("jan", "late")] == ["pia@client.example"]


async def test_nothing_when_off_in_a_dry_run_or_without_smtp(
    store: StateStore, smtp: FakeSmtp
) -> None:
    for changes in (
        {"autoreply": AutoreplyConfig(enabled=False)},
        {"dry_run": True},
        {"smtp": None},
    ):
        p = part(store, Clock(), **changes)
        decide(p, held("pia@client.example", 1))
        await p.step(None)  # type: ignore[arg-type]
        assert p.next_due() is None
    assert smtp.sent == []
    assert store.autoreplies("jan", "queued") == []


async def test_the_custom_message_and_urgent_text(store: StateStore, smtp: FakeSmtp) -> None:
    config = AutoreplyConfig(enabled=True, message="Read at {release}. {urgent}", urgent="call 1")
    p = part(store, Clock(), autoreply=config)
    decide(p, held("pia@client.example", 1))
    await p.step(None)  # type: ignore[arg-type]
    assert words(smtp.sent[0][2]) == "Read at 12:30 today. call 1"


async def test_a_dry_run_says_what_it_would_send(
    store: StateStore, smtp: FakeSmtp, caplog: pytest.LogCaptureFixture
) -> None:
    p = part(store, Clock(), dry_run=True)
    mail, decision = held("pia@client.example", 1)
    not_held = replace(decision, held=False)  # a dry run holds nothing
    read = replace(not_held, uid=2, reason="normal (already read: left in INBOX)")
    with caplog.at_level(logging.INFO, "commsproxy.triage"):
        decide(p, (mail, not_held), (mail, read))
    assert caplog.text.count("dry run: would auto-reply to pia@client.example") == 1
    await p.step(None)  # type: ignore[arg-type]
    assert smtp.sent == []
    assert store.autoreplies("jan", "queued") == []


def test_a_fault_while_choosing_never_stops_triage(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> str | None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(autoreply, "why_not", broken)
    with caplog.at_level(logging.ERROR, "commsproxy.triage"):
        decide(part(store, Clock()), held("pia@client.example", 1))
    assert "choosing auto-replies failed" in caplog.text


def test_run_gives_each_login_its_smtp_server(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[login]]\nusername = "jan@acme.be"\nupstream_imap = "imaps://imap.acme.be"\n'
        'upstream_smtp = "smtp+starttls://smtp.acme.be"\n'
        '[[login]]\nusername = "ops@acme.be"\nupstream_imap = "imaps://imap.acme.be"\n',
        encoding="utf-8",
    )
    the_plan = plan(load_config(config, required=True), RunOptions())
    assert the_plan.triage is not None
    assert {k: str(v) for k, v in the_plan.triage.smtp.items()} == {
        "jan@acme.be": "smtp.acme.be:587"
    }


async def test_an_account_sla_that_comes_first_is_the_time_named(
    store: StateStore, smtp: FakeSmtp
) -> None:
    clock = Clock()
    account = AccountConfig(key="client", name="Client", domains=("client.example",),
                            sla=parse_when("1h"))  # fmt: skip
    s = settings(clock, accounts=AccountsConfig(accounts=(account,)))
    sla, replies = SlaLimits(s, store), AutoReplies(s, store)
    give_credentials([replies], Creds())
    mail, decision = held("pia@client.example", 1)
    for one in (sla, replies):  # in the order of parts.py: the sla hears first
        one.decided([mail], [decision])
    await replies.step(None)  # type: ignore[arg-type]
    assert "yours will be read at 10:00 today" in words(smtp.sent[0][2])  # START + 1h


async def test_start_says_once_what_keeps_replies_from_going(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "commsproxy.triage"):
        await part(store, Clock(), own_addresses=()).start(None)  # type: ignore[arg-type]
        await part(store, Clock(), smtp=None).start(None)  # type: ignore[arg-type]
        await part(store, Clock()).start(None)  # type: ignore[arg-type]
    assert caplog.text.count("address is not known") == 1
    assert caplog.text.count("has no upstream_smtp") == 1
