"""A decision's reason is worded while the server holds the mail, and lands in full.

The engine writes each decision to the store with the head of its reason (label and score, and
what the engine adds), tags and moves the mail, and meanwhile words the model's reasons in a
thread; then the store gets them in full, with what was added to the row since (a message gone
before it was held) kept after them. Past a budget of body characters a step's reasons are
worded at once, as they always were.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.names import NORMAL, URGENT
from commsproxy.imap.responses import Fetched
from commsproxy.schedule import Schedule
from commsproxy.triage import new_mail
from commsproxy.triage.decide import Decision, reason_words
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.new_mail import NewMail, _Later
from commsproxy.triage.state_store import StateStore

NOW = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)


class Wordy:
    """Decides by subject ("urgent ..." urgent, the rest normal); the reasons are worded when
    first asked for, counting how often that happens."""

    def __init__(self) -> None:
        self.worded = 0

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        def full(i: int) -> str:
            self.worded += 1
            return reason_words(labels[i], "0.50", [f"held: words of {mails[i].subject}"])

        labels = [URGENT if m.subject.startswith("urgent") else NORMAL for m in mails]
        return [
            Decision(label, 0.5, reason_words(label, "0.50", []), later=lambda i=i: full(i))
            for i, label in enumerate(labels)
        ]


def _mail(uid: int, subject: str, body: str = "hello") -> tuple[Fetched, Mail]:
    raw = f"From: a{uid}@example.com\r\nSubject: {subject}\r\n\r\n{body}".encode()
    return Fetched(uid, frozenset()), parse_mail(raw)


def _engine(tmp_path: Path, decider: Wordy) -> NewMail:
    later = BatchConfig("later", "Later", (NORMAL,), Schedule.parse(["12:00"], "daily", "UTC"))
    settings = EngineSettings(
        login="me",
        endpoint=parse_endpoint("imap://127.0.0.1:1", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(),
        batches=(later,),
        clock=lambda: NOW,
    )
    store = StateStore.open(tmp_path)
    unused: Any = None
    return NewMail(
        settings, store, unused, {"later": "Later"}, deque(), None, None,
        lambda when, what: None, "triage[me]",
    )  # fmt: skip


def test_the_store_has_the_head_first_and_the_full_reason_after(tmp_path: Path) -> None:
    decider = Wordy()
    engine = _engine(tmp_path, decider)
    engine.decider = decider  # type: ignore[assignment]
    fetched, mails = zip(
        _mail(1, "urgent: call me"), _mail(2, "lunch"), _mail(3, "notes"), strict=False
    )
    later = _Later()
    holds, labels = engine._decide(fetched, mails, 7, later)
    assert holds == {"Later": [2, 3]}
    assert labels == {1: URGENT, 2: NORMAL, 3: NORMAL}
    stored = engine.store.decision_for_uid("me", "INBOX", 7, 2)
    assert stored is not None
    assert stored.reason == "normal (0.50)"
    assert decider.worded == 0
    engine.store.mark_gone("me", "INBOX", 7, [3], "gone before it was held")

    async def word() -> None:
        await engine._worded(7, later, asyncio.ensure_future(asyncio.to_thread(later.word)))

    asyncio.run(word())
    assert decider.worded == 3
    reasons = {
        uid: engine.store.decision_for_uid("me", "INBOX", 7, uid).reason  # type: ignore[union-attr]
        for uid in (1, 2, 3)
    }
    assert reasons == {
        1: "urgent (0.50): held: words of urgent: call me",
        2: "normal (0.50): held: words of lunch",
        3: "normal (0.50): held: words of notes (gone before it was held)",
    }


def test_past_the_budget_a_step_is_worded_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(new_mail, "_LATER_CHARS", 10)
    decider = Wordy()
    engine = _engine(tmp_path, decider)
    engine.decider = decider  # type: ignore[assignment]
    fetched, mails = zip(_mail(1, "lunch", "x" * 20), _mail(2, "notes"), strict=False)
    later = _Later()
    engine._decide(fetched, mails, 7, later)
    assert later.items == []
    assert decider.worded == 2
    stored = engine.store.decision_for_uid("me", "INBOX", 7, 1)
    assert stored is not None
    assert stored.reason == "normal (0.50): held: words of lunch"


def test_a_failure_to_word_keeps_the_head(tmp_path: Path) -> None:
    decider = Wordy()
    engine = _engine(tmp_path, decider)
    engine.decider = decider  # type: ignore[assignment]
    fetched, mails = zip(_mail(1, "lunch"))
    later = _Later()
    engine._decide(fetched, mails, 7, later)

    async def broken() -> list[str]:
        raise RuntimeError("a bug in wording")

    async def word() -> None:
        await engine._worded(7, later, asyncio.ensure_future(broken()))

    asyncio.run(word())
    stored = engine.store.decision_for_uid("me", "INBOX", 7, 1)
    assert stored is not None
    assert stored.reason == "normal (0.50)"


def test_the_model_s_reasons_worded_later_are_those_worded_at_once() -> None:
    from commsproxy.classifier.features import Context, Sample
    from commsproxy.classifier.live_model import resolve_live
    from commsproxy.classifier.predict import Classifier, LoadedModel
    from commsproxy.triage.decide import ModelDecider

    model, info = resolve_live("bundled", "urgency")
    classifier = Classifier(LoadedModel.from_info(model, info))
    mails = [
        parse_mail(f"From: {who}\r\nSubject: {subject}\r\n\r\n{body}".encode())
        for who, subject, body in (
            ("boss@corp.example", "server down", "Please call me today, it is urgent."),
            ("news@lists.example", "Weekly digest", "Unsubscribe here. Articles and events."),
            ("colleague@corp.example", "lunch", "Shall we have lunch next week?"),
            ("x@y.example", "RE: contract", "Yes.\n\n-----Original Message-----\nFrom: me\n"),
        )
    ]
    me = frozenset({"me@corp.example"})
    later = ModelDecider(classifier, me).label(mails)
    context = Context(user_addresses=me, history_known=False)
    at_once = classifier.classify([Sample(m, context) for m in mails], explain=True,
                                  reasons_kept=3)  # fmt: skip
    assert [d.in_full() for d in later] == [
        reason_words(v.label or NORMAL, v.score_words(), v.reasons or []) for v in at_once
    ]
    assert [(d.label, d.score) for d in later] == [(v.label, v.p_urgent) for v in at_once]


def test_a_stop_while_wording_keeps_the_words_and_stops(tmp_path: Path) -> None:
    decider = Wordy()
    engine = _engine(tmp_path, decider)
    engine.decider = decider  # type: ignore[assignment]
    fetched, mails = zip(_mail(1, "lunch"), strict=False)
    later = _Later()
    engine._decide(fetched, mails, 7, later)

    async def stop_while_wording() -> None:
        release = asyncio.Event()

        async def slow_words() -> list[str]:
            await release.wait()
            return later.word()

        words = asyncio.ensure_future(slow_words())
        keeping = asyncio.ensure_future(engine._worded(7, later, words))
        await asyncio.sleep(0)
        keeping.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await keeping

    asyncio.run(stop_while_wording())
    stored = engine.store.decision_for_uid("me", "INBOX", 7, 1)
    assert stored is not None
    assert stored.reason == "normal (0.50): held: words of lunch"
