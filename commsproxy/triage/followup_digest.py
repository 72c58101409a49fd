"""The digest's "Waiting for an answer": follow-ups back since the last release, and due soon.

A release's digest (release.py) lists the sent messages that came back to INBOX without an
answer since this batch's previous release, then those still waiting that come back before its
next one, so the user sees in one place what they are waiting for. Read from the state store.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..config import BatchConfig, local_zone
from ..schedule import ScheduleError
from .digest import Digest, WaitingItem
from .followup_report import WAITING, recipients_words, when_words
from .scheduler import next_release
from .state_store import FollowUp, StateStore

__all__ = ["waiting_items", "with_followups"]

log = logging.getLogger("commsproxy.triage")

_LOOK_BACK = timedelta(days=1)  # without an earlier release of the batch
_AT_MOST = 50  # listed in one digest


def waiting_items(
    store: StateStore,
    login: str,
    since: datetime,
    until: datetime,
    now: datetime,
    zone: ZoneInfo,
) -> tuple[WaitingItem, ...]:
    """Back in INBOX from ``since`` on (first), then waiting and due by ``until``."""
    came = [f for f in store.followups_returned_since(login, since) if f.returned_at]
    soon = [f for f in store.followups(login, WAITING) if f.due_at <= until]

    def item(f: FollowUp, moment: datetime, back: bool) -> WaitingItem:
        to = recipients_words(f.recipients)
        sent = when_words(f.sent_at, zone, now)
        return WaitingItem(f.subject, to, sent, when_words(moment, zone, now), back)

    items = [item(f, f.returned_at, True) for f in came if f.returned_at is not None]
    items += [item(f, f.due_at, False) for f in soon]
    return tuple(items[:_AT_MOST])


def with_followups(
    digest: Digest,
    store: StateStore,
    login: str,
    batch: BatchConfig,
    now: datetime,
    zone: ZoneInfo | None = None,
) -> Digest:
    """``digest`` with its "Waiting for an answer" section for this release of ``batch``; as it
    was when that cannot be read (a failure here must not cost the release its digest)."""
    try:
        return _with_followups(digest, store, login, batch, now, zone or local_zone())
    except Exception:
        log.exception("triage[%s]: the digest's follow-ups failed; the digest goes without", login)
        return digest


def _with_followups(
    digest: Digest, store: StateStore, login: str, batch: BatchConfig, now: datetime, zone: ZoneInfo
) -> Digest:
    earlier = [
        r.started
        for r in store.recent_releases(login, 50)
        if r.batch == batch.name and r.finished is not None and r.started < now
    ]
    since = max(earlier, default=now - _LOOK_BACK)
    try:
        until = next_release(batch.schedule, now)
    except ScheduleError:  # a batch without a schedule (released on request only)
        until = now
    waiting = waiting_items(store, login, since, until, now, zone)
    return replace(digest, waiting=waiting) if waiting else digest
