"""What the Today page shows, as plain data: per login its health, the next release, what is
held now per batch, what is snoozed and when it comes back, the sent mail waiting for an answer
(and what came back today without one), a quiet batch's window while it runs, and today's count
of mail an account's sla delivered and of auto-replies sent; the user's corrections as they
happen; whether holding is paused.

"Held now" is read from the state store: the held decisions minus those a finished release of
their batch or a later correction (a drag, a flag, a "deliver now") has brought back
(``StateStore.held_now``). The store, not the engine, because the page must answer at once and
without a word to the server, from any moment of the engine's life (also while it reconnects);
the engine writes each decision, release and correction to the store before it acts on the
next one, so the view trails the server by one step at most.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Config
from ..triage.decide import vip_match
from ..triage.followup_report import WAITING, recipients_words
from ..triage.holding import Switch, holding_switch
from ..triage.scheduler import next_release, release_time
from ..triage.state_store import Correction, Snooze, StateStore
from ..triage.status_report import login_keys, login_status
from .words import plain_reason

__all__ = [
    "BatchNow",
    "HeldRow",
    "LoginToday",
    "SnoozedRow",
    "Today",
    "WaitingRow",
    "today_facts",
]

DELIVERED = 20  # mail delivered at once that Today lists
WAITING_ROWS = 50  # sent mail waiting for an answer that Today lists per login
SNOOZED_ROWS = 50  # snoozed mail that Today lists per login (the count is of all)


@dataclass(frozen=True)
class HeldRow:
    login: str
    message_id: str | None
    sender: str
    subject: str
    why: str  # in plain words
    held_at: datetime
    comes_at: datetime | None  # the batch's next release
    #: The ``[triage] vip`` pattern the sender matches now: "never urgent" would change
    #: nothing for it (vip wins), only taking the pattern out of vip would.
    vip: str | None = None


@dataclass(frozen=True)
class BatchNow:
    name: str
    mailbox: str
    next_release: datetime | None
    held: tuple[HeldRow, ...]


@dataclass(frozen=True)
class WaitingRow:
    """Sent mail waiting for an answer (followups.py): it comes back to INBOX at ``due_at``."""

    message_id: str
    to: str  # "bob@acme.example", or "bob@acme.example and 2 more"
    subject: str
    sent_at: datetime
    due_at: datetime
    returned_at: datetime | None = None  # came back to INBOX without an answer


@dataclass(frozen=True)
class SnoozedRow:
    """A message in a snooze mailbox (snooze.py): it comes back to INBOX at ``due``."""

    message_id: str | None
    box: str  # the box's name in the config ("Tomorrow")
    sender: str
    subject: str
    due: datetime
    back_at: datetime | None = None  # when it came back (today's returns)


@dataclass(frozen=True)
class LoginToday:
    login: str
    health: dict[str, Any] | None  # as `commsproxy status` reports it; None: run not seen
    paused: dict[str, Any] | None
    #: The batches due next (all those due at that same moment), and when.
    next_release: tuple[tuple[str, ...], datetime] | None
    batches: tuple[BatchNow, ...]
    waiting: tuple[WaitingRow, ...] = ()  # sent mail waiting for an answer, soonest due first
    came_back: tuple[WaitingRow, ...] = ()  # sent mail back in INBOX today without an answer
    snoozed: tuple[SnoozedRow, ...] = ()  # soonest back first (at most SNOOZED_ROWS)
    snoozed_count: int = 0  # all of them
    snoozed_back: tuple[SnoozedRow, ...] = ()  # back from a snooze box today
    quiet_until: datetime | None = None  # a quiet batch's window runs till then
    sla_delivered: int = 0  # held mail delivered at its account's sla today
    autoreplies_sent: int = 0  # today

    @property
    def held_count(self) -> int:
        return sum(len(batch.held) for batch in self.batches)


@dataclass(frozen=True)
class Today:
    now: datetime
    logins: tuple[LoginToday, ...]
    holding_paused: Switch | None  # since when, and until when (None: until switched on)
    corrections: tuple[Correction, ...]  # today's, newest first
    delivered: tuple[HeldRow, ...]  # today's mail delivered at once (not held), newest first


def today_facts(
    config: Config, store: StateStore, state_dir: Path, now: datetime, pid: int | None = None
) -> Today:
    """Everything the Today page shows at ``now`` (aware). Blocking: call it from a thread."""
    local = now.astimezone()
    switch = holding_switch(state_dir)
    if switch is not None and not switch.on(now):
        switch = None  # its time has passed: holding is on again
    stopped = switch.since if switch is not None else None
    logins = tuple(
        _login(config, store, login, now, os.getpid() if pid is None else pid, stopped)
        for login in login_keys(config)
    )
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    corrections = tuple(store.corrections_since(midnight, limit=50))
    vip = config.triage.vip
    delivered = tuple(
        HeldRow(d.login, d.message_id, d.sender, d.subject, plain_reason(d.reason),
                d.decided_at.astimezone(), None, vip_match(d.sender, vip))
        for d in reversed(store.decisions_since(midnight))
        if not d.held
    )[:DELIVERED]  # fmt: skip
    return Today(local, logins, switch, corrections, delivered)


def _login(
    config: Config,
    store: StateStore,
    login: str,
    now: datetime,
    pid: int,
    stopped: datetime | None,
) -> LoginToday:
    status = login_status(config, store, login, now, pid)
    held = store.held_now(login, [batch.name for batch in config.batches])
    batches: list[BatchNow] = []
    due: dict[str, datetime] = {}
    for batch in config.batches:
        at = release_time(batch, config.batches, next_release(batch.schedule, now), now)
        when = None if stopped is not None else at.astimezone()
        rows = tuple(
            HeldRow(
                login=login,
                message_id=d.message_id,
                sender=d.sender,
                subject=d.subject,
                why=plain_reason(d.reason),
                held_at=d.decided_at.astimezone(),
                comes_at=when,
            )
            for d in held
            if d.batch == batch.name
        )
        batches.append(BatchNow(batch.name, batch.mailbox, when, rows))
        if when is not None:
            due[batch.name] = when
    # Mail held in a batch the config no longer names: shown, released at the next start.
    known = {batch.name for batch in config.batches}
    for name in sorted({d.batch for d in held if d.batch and d.batch not in known}):
        rows = tuple(
            HeldRow(login, d.message_id, d.sender, d.subject, plain_reason(d.reason),
                    d.decided_at.astimezone(), None)
            for d in held if d.batch == name
        )  # fmt: skip
        batches.append(BatchNow(name, "", None, rows))
    soonest = min(due.values(), default=None)
    health = status["health"]
    if health is not None and health.get("next_release"):
        reported = health["next_release"]
        at = datetime.fromisoformat(reported["at"]).astimezone()
        if at > now - timedelta(minutes=1) and stopped is None:
            soonest = at  # run's own word, which knows of a release it is running late
            due[str(reported["batch"])] = at
    coming = None
    if soonest is not None:
        # Every batch due at that moment: they come together, so the page names them all.
        coming = (tuple(name for name, when in due.items() if when == soonest), soonest)
    waiting = tuple(
        WaitingRow(f.message_id, recipients_words(f.recipients), f.subject,
                   f.sent_at.astimezone(), f.due_at.astimezone())
        for f in store.followups(login, WAITING)[:WAITING_ROWS]
    )  # fmt: skip
    midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    came_back = tuple(
        WaitingRow(f.message_id, recipients_words(f.recipients), f.subject,
                   f.sent_at.astimezone(), f.due_at.astimezone(), f.returned_at.astimezone())
        for f in store.followups_returned_since(login, midnight)[-WAITING_ROWS:]
        if f.returned_at is not None and f.state == "returned"
    )  # fmt: skip
    snoozed = store.snoozed(login)
    quiet = status["quiet_until"]
    return LoginToday(
        login,
        health,
        status["paused"],
        coming,
        tuple(batches),
        waiting,
        came_back=came_back,
        snoozed=tuple(_snoozed_row(store, s) for s in snoozed[:SNOOZED_ROWS]),
        snoozed_count=len(snoozed),
        snoozed_back=tuple(
            _snoozed_row(store, s) for s in store.snoozes_returned_since(login, midnight)
        )[-SNOOZED_ROWS:],
        quiet_until=datetime.fromisoformat(quiet).astimezone() if quiet else None,
        sla_delivered=len(store.sla_settled(login, "delivered", midnight)),
        autoreplies_sent=store.autoreplies_done_since(login, "sent", midnight),
    )


def _snoozed_row(store: StateStore, snooze: Snooze) -> SnoozedRow:
    sender, subject = snooze.sender, snooze.subject
    if not (sender or subject) and snooze.message_id:
        # Noticed before the store kept what a snoozed message is: triage's decision knows.
        decided = store.latest_decision_by_message_id(snooze.login, snooze.message_id)
        if decided is not None:
            sender, subject = decided.sender, decided.subject
    back = snooze.done.astimezone() if snooze.state == "returned" and snooze.done else None
    return SnoozedRow(snooze.message_id, snooze.box, sender, subject, snooze.due.astimezone(), back)
