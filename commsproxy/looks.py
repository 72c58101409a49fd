"""A cheap periodic look: a plain timer callback, not a task that sleeps and wakes.

An idle proxy's periodic checks (the hub's stat of the state file, the config file's stat)
find nothing nearly every time. A task that sleeps between looks costs two callbacks per look
(the sleep's future, then the task's step) and ``wait_for`` one more task each time; on a
machine whose caches went cold meanwhile each of those is a good hundred microseconds. Here a
look is one callback of the loop's timer, and the task waiting for news wakes only when a
look finds some.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["when_seen"]


def when_seen(every: float, look: Callable[[], bool]) -> asyncio.Future[None]:
    """A future done at the first ``look()`` that returns True, looking every ``every``
    seconds on the running loop's timer; cancelling the future stops the looks. A look that
    raises ends the future with its exception."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[None] = loop.create_future()

    def tick() -> None:
        if seen.done():
            return  # cancelled (its waiter went away), or finished by someone else
        try:
            found = look()
        except Exception as err:
            seen.set_exception(err)
            return
        if found:
            seen.set_result(None)
        else:
            loop.call_later(every, tick)

    loop.call_later(every, tick)
    return seen
