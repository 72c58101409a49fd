"""Cheap periodic looks: plain callbacks on one shared timer, not tasks that sleep and wake.

An idle proxy's periodic checks (the hub's stat of the state file, the config file's stat)
find nothing nearly every time, and what they cost is mostly the wake-up itself: a task that
sleeps between looks costs two callbacks per look (the sleep's future, then the task's step)
and ``wait_for`` one more task each time; on a machine whose caches went cold meanwhile each
is a good hundred microseconds, plus the loop's own turn. Here a look is a plain function run
from one timer per event loop, and the task waiting for news wakes only when a look finds
some. Looks share their wake-ups: when the timer fires, every look due within a quarter of
its own interval runs too, so the config's stat every 2 s rides on the hub's every 0.5 s.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["when_seen"]

_EARLY = 0.25  # of a look's interval: how early it may run to share a wake-up


@dataclass
class _Look:
    every: float
    look: Callable[[], bool]
    seen: asyncio.Future[None]
    due: float  # loop time


class _Timer:
    """One loop's timer for all its looks, armed for the earliest that is due."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._looks: list[_Look] = []
        self._handle: asyncio.TimerHandle | None = None

    def add(self, look: _Look) -> None:
        self._looks.append(look)
        self._arm()

    def _arm(self) -> None:
        self._looks = [look for look in self._looks if not look.seen.done()]
        at = min((look.due for look in self._looks), default=None)
        if self._handle is not None:
            if at is not None and self._handle.when() <= at:
                return  # armed early enough already
            self._handle.cancel()
            self._handle = None
        if at is not None:
            self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = self._loop.time()
        for look in self._looks:
            if look.seen.done() or look.due > now + _EARLY * look.every:
                continue
            try:
                found = look.look()
            except Exception as err:
                look.seen.set_exception(err)
                continue
            if found:
                look.seen.set_result(None)
            else:
                look.due = now + look.every
        self._arm()


_timers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Timer] = weakref.WeakKeyDictionary()


def when_seen(every: float, look: Callable[[], bool]) -> asyncio.Future[None]:
    """A future done at the first ``look()`` that returns True, looking about every ``every``
    seconds (up to a quarter early, to share a wake-up) on the running loop's timer;
    cancelling the future stops the looks. A look that raises ends the future with its
    exception."""
    loop = asyncio.get_running_loop()
    timer = _timers.get(loop)
    if timer is None:
        timer = _timers[loop] = _Timer(loop)
    seen: asyncio.Future[None] = loop.create_future()
    timer.add(_Look(every, look, seen, loop.time() + every))
    return seen
