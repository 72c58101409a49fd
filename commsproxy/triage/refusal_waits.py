"""When an engine part tries again what the server refused: one wait per record, in memory.

Snooze returns and sla deliveries are due at a time the state store holds; a step the server
refuses (an APPEND over quota, a mailbox gone) is tried again a minute later rather than at
every wake-up. The waits live only in memory: after a restart everything due is tried at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

__all__ = ["RefusalWaits"]


class RefusalWaits:
    def __init__(self, wait: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wait = wait
        self._monotonic = monotonic
        self._until: dict[int, float] = {}  # record id -> monotonic time of its next try

    def clear(self) -> None:
        self._until = {}

    def waiting(self, key: int) -> bool:
        return self._until.get(key, 0.0) > self._monotonic()

    def refused(self, key: int) -> None:
        self._until[key] = self._monotonic() + self.wait

    def done(self, key: int) -> None:
        self._until.pop(key, None)

    def next_try(self, due: Iterable[tuple[int, datetime]], now: datetime) -> datetime | None:
        """The earliest time one of ``due`` (record id, due time) may be tried; the waits of
        records no longer pending are forgotten."""
        pending = dict(due)
        self._until = {key: at for key, at in self._until.items() if key in pending}
        clock = self._monotonic()
        times = [
            when if key not in self._until else now + timedelta(seconds=self._until[key] - clock)
            for key, when in pending.items()
        ]
        return min(times, default=None)
