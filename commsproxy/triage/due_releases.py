"""Scheduled releases: which batch is next, and releasing those that are due."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from ..config import BatchConfig
from .release import Releaser
from .scheduler import due_release, next_release
from .state_store import StateStore

__all__ = ["release_due", "upcoming_release"]


def upcoming_release(
    batches: Sequence[BatchConfig], store: StateStore, login: str, now: datetime
) -> tuple[str, datetime] | None:
    """The next release of any batch: after its last one on record, so a release missed
    while triage failed shows as overdue (it happens once triage works)."""
    times = []
    for batch in batches:
        if batch.schedule.days:
            last = store.last_scheduled_release(login, batch.name)
            times.append((next_release(batch.schedule, last or now), batch.name))
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
    ``lock`` (the engine's between-steps lock)."""
    for batch in batches:
        last = store.last_scheduled_release(login, batch.name)
        due = due_release(batch.schedule, last, now)
        if due is not None:
            async with lock:
                await releaser.release(batch, scheduled=due)
