"""Scheduled releases: which batch is next, and releasing those that are due.

A quiet batch's window (``quiet = "18:00-08:00"``) defers every other batch: a release due
inside it happens when the window ends, together with the quiet batch's own, and once however
many release times the window covered (the catch-up rule of ``scheduler.due_release``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from ..config import BatchConfig
from .release import Releaser
from .scheduler import due_release, next_release, quiet_until, release_time
from .state_store import StateStore

__all__ = ["release_due", "upcoming_release"]


def upcoming_release(
    batches: Sequence[BatchConfig], store: StateStore, login: str, now: datetime
) -> tuple[str, datetime] | None:
    """The next release of any batch: after its last one on record, so a release missed
    while triage failed shows as overdue (it happens once triage works); a release inside a
    quiet window shows at the window's end."""
    times = []
    for batch in batches:
        if batch.schedule.days:
            last = store.last_scheduled_release(login, batch.name)
            moment = next_release(batch.schedule, last or now)
            times.append((release_time(batch, batches, moment, now), batch.name))
    return (min(times)[1], min(times)[0]) if times else None


async def release_due(
    releaser: Releaser,
    batches: Sequence[BatchConfig],
    store: StateStore,
    login: str,
    now: datetime,
    lock: asyncio.Lock,
) -> None:
    """Release every batch whose time has come since its last release on record, each under
    ``lock`` (the engine's between-steps lock). Inside a quiet window nothing is released:
    not the other batches, nor a release of the quiet batch itself that is overdue (triage
    was down at the last window's end); they all come when this window ends."""
    if quiet_until(batches, now) is not None:
        return
    for batch in batches:
        last = store.last_scheduled_release(login, batch.name)
        due = due_release(batch.schedule, last, now)
        if due is not None:
            async with lock:
                await releaser.release(batch, scheduled=due)
