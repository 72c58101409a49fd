"""What the day's picture shows, as plain data: mail per hour delivered at once, held and
released today, and the interruptions holding saved today and this week.

"Interruptions avoided" counts arrivals the user did not have: each held message would have
arrived on its own, one interruption each; a release brings a whole batch at once, one
interruption however many messages it moves; a held message brought back early (with
"Deliver now", or dragged out of its hold mailbox) interrupted the user anyway, one each. So:
messages held in the period, minus those brought back early, minus the releases in the
period that moved any (never below zero). A message delivered at once is an interruption
either way and does not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..triage.state_store import Correction, Release, StateStore

__all__ = ["Day", "Interruptions", "day_facts", "interruptions"]


@dataclass(frozen=True)
class Interruptions:
    held: int  # messages held in the period
    releases: int  # releases that brought held mail back, each one arrival
    avoided: int
    early: int = 0  # held messages brought back early, each one arrival


#: The corrections that bring a held message to INBOX before its batch: a drag out of the
#: hold mailbox, and "Deliver now" (recorded as the same rescue, or as "deliver").
_BROUGHT_BACK = ("rescue", "deliver")


def brought_back(corrections: list[Correction]) -> int:
    """How many messages the user brought back early: each counted once, however often."""
    return len({(c.login, c.message_id) for c in corrections if c.kind in _BROUGHT_BACK})


@dataclass(frozen=True)
class Day:
    now: datetime
    at_once: tuple[int, ...]  # per local hour 0..23 of today
    held: tuple[int, ...]
    released: tuple[int, ...]
    today: Interruptions
    week: Interruptions
    week_start: datetime


def interruptions(held: int, releases: list[Release], early: int = 0) -> Interruptions:
    arrivals = sum(1 for r in releases if r.moved > 0 and r.finished is not None)
    return Interruptions(held, arrivals, max(0, held - early - arrivals), early)


def day_facts(store: StateStore, now: datetime) -> Day:
    """The picture of today (local time) at ``now``. Blocking: call it from a thread."""
    local = now.astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    monday = midnight - timedelta(days=local.weekday())
    decisions = store.decisions_since(midnight)  # a day's worth; the week only counted
    releases = store.releases_since(monday - timedelta(days=1))
    at_once, held, released = [0] * 24, [0] * 24, [0] * 24
    for d in decisions:
        at = d.decided_at.astimezone()
        (held if d.held else at_once)[at.hour] += 1
    for r in releases:
        if r.finished is not None and r.finished.astimezone() >= midnight:
            released[r.finished.astimezone().hour] += r.moved

    def finished_since(start: datetime) -> list[Release]:
        return [r for r in releases if r.finished is not None and r.finished >= start]

    week_corrections = store.corrections_since(monday, limit=100_000)
    today_corrections = [c for c in week_corrections if c.at >= midnight]
    today = interruptions(sum(held), finished_since(midnight), brought_back(today_corrections))
    week = interruptions(
        store.held_counts_since(monday)[0], finished_since(monday), brought_back(week_corrections)
    )
    return Day(local, tuple(at_once), tuple(held), tuple(released), today, week, monday)
