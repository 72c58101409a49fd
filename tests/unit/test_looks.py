"""looks.when_seen: a periodic look on the loop's timer, done at the first look that finds
news; cancelling it stops the looks."""

from __future__ import annotations

import asyncio

import pytest

from commsproxy import looks
from commsproxy.looks import when_seen


async def test_done_at_the_first_look_that_finds_news_and_no_look_after() -> None:
    answers = iter([False, False, True])
    looks: list[int] = []

    def look() -> bool:
        looks.append(1)
        return next(answers)

    await asyncio.wait_for(when_seen(0.001, look), 5)
    await asyncio.sleep(0.02)
    assert len(looks) == 3


async def test_cancelled_it_looks_no_more() -> None:
    looks: list[int] = []
    seen = when_seen(0.001, lambda: looks.append(1) is not None)  # never news
    while len(looks) < 2:
        await asyncio.sleep(0.001)
    seen.cancel()
    await asyncio.sleep(0.005)  # a look already scheduled may run once and stop there
    count = len(looks)
    await asyncio.sleep(0.02)
    assert len(looks) == count


async def test_a_look_that_raises_ends_the_wait_with_its_error() -> None:
    def look() -> bool:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        await asyncio.wait_for(when_seen(0.001, look), 5)


async def test_no_task_is_made_while_looking() -> None:
    seen = when_seen(0.001, lambda: False)
    before = len(asyncio.all_tasks())
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks()) == before
    seen.cancel()


async def test_a_slower_look_shares_the_wake_ups_of_a_faster_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fires = [0]
    fire = looks._Timer._fire

    def counted(self: looks._Timer) -> None:
        fires[0] += 1
        fire(self)

    monkeypatch.setattr(looks._Timer, "_fire", counted)
    fast: list[int] = []
    slow: list[int] = []
    quick = when_seen(0.004, lambda: fast.append(fires[0]) is None and len(fast) >= 40)
    late = when_seen(0.016, lambda: slow.append(fires[0]) is None and len(slow) >= 5)
    await asyncio.wait_for(asyncio.gather(quick, late), 5)
    assert set(slow[1:]) <= set(fast)  # after the first, the slow look runs on the fast's
    assert fires[0] <= len(fast) + 1
