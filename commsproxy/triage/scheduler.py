"""When a batch is released: pure functions of a schedule and a moment, no clock, no I/O.

A schedule is wall-clock times on some weekdays in a time zone ("08:30, 12:30 and 16:30,
Monday to Friday, Europe/Amsterdam"). Releases are computed in that zone and returned as aware
UTC datetimes, so a schedule keeps meaning 08:30 local across daylight-saving changes. A time
that does not exist on a spring-forward day (02:30 in a 02:00→03:00 jump) fires at the first
moment after the gap; a time that happens twice on a fall-back day fires the first time.

``due_release`` is the catch-up rule: after the laptop slept through 12:30, the 12:30 batch is
due at once when it wakes — once, however many release times passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "Schedule",
    "ScheduleError",
    "due_release",
    "next_release",
    "parse_days",
    "parse_times",
    "releases_between",
]

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A schedule value that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class Schedule:
    times: tuple[time, ...]  # wall-clock times, sorted
    days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    zone: ZoneInfo

    @classmethod
    def parse(cls, times: Iterable[str], days: str, zone: str) -> Schedule:
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"{zone!r}: expected a time zone such as Europe/Amsterdam"
            ) from None
        return cls(parse_times(times), parse_days(days), tz)


def parse_times(values: Iterable[str]) -> tuple[time, ...]:
    """``["08:30", "12:30"]`` → sorted, distinct times."""
    parsed = set()
    for value in values:
        match = _TIME.match(value.strip())
        if match is None:
            raise ScheduleError(f'{value!r}: expected a time as HH:MM, e.g. "08:30"')
        parsed.add(time(int(match.group(1)), int(match.group(2))))
    if not parsed:
        raise ScheduleError('expected at least one release time, e.g. ["08:30", "16:30"]')
    return tuple(sorted(parsed))


def parse_days(value: str) -> frozenset[int]:
    """``"mon-fri"``, ``"mon,wed,fri"``, ``"sat-sun"``, ``"daily"`` → weekday numbers."""
    text = value.strip().lower()
    if text in ("daily", "every day", "*", "mon-sun"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            start = _DAY_NAMES.index(first.strip()[:3])
            end = _DAY_NAMES.index(last.strip()[:3]) if last else start
        except ValueError:
            raise ScheduleError(
                f'{value!r}: expected days such as "mon-fri", "mon,wed,fri" or "daily"'
            ) from None
        day = start
        while True:  # ranges may wrap: "fri-mon"
            days.add(day)
            if day == end:
                break
            day = (day + 1) % 7
    return frozenset(days)


def _at(day: date, when: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of ``when`` on ``day`` in ``zone`` (gap: the first moment after it)."""
    # fold=0 picks the first of a repeated hour; for a time inside a spring-forward gap it
    # applies the offset from before the jump, which lands just after the gap (PEP 495).
    return datetime.combine(day, when, tzinfo=zone).astimezone(UTC)


def _releases_from(schedule: Schedule, day: date) -> Iterator[datetime]:
    """Release moments in order, starting with ``day`` (local calendar date)."""
    while True:
        if day.weekday() in schedule.days:
            for when in schedule.times:
                yield _at(day, when, schedule.zone)
        day += timedelta(days=1)


def next_release(schedule: Schedule, after: datetime) -> datetime:
    """The first release strictly after ``after`` (aware), in UTC."""
    if not schedule.days:
        raise ScheduleError("the schedule has no days")
    start = after.astimezone(schedule.zone).date() - timedelta(days=1)
    for moment in _releases_from(schedule, start):
        if moment > after:
            return moment
    raise AssertionError("unreachable: releases repeat every week")


def releases_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Every release in ``(start, end]``, in order."""
    out = []
    moment = next_release(schedule, start)
    while moment <= end:
        out.append(moment)
        moment = next_release(schedule, moment)
    return out


def due_release(schedule: Schedule, last: datetime | None, now: datetime) -> datetime | None:
    """The release to carry out now, if any: the latest one in ``(last, now]``.

    ``last`` is when this batch was last released. Several missed release times make one
    release, not several. Without a ``last`` (the record is gone) the latest past release
    time counts as missed: releasing held mail a little early is better than holding it past
    a release the user was promised.
    """
    if last is None:
        return _previous_release(schedule, now)
    missed = releases_between(schedule, last, now)
    return missed[-1] if missed else None


def _previous_release(schedule: Schedule, now: datetime) -> datetime | None:
    start = now.astimezone(schedule.zone).date() - timedelta(days=8)
    latest = None
    for moment in _releases_from(schedule, start):
        if moment > now:
            return latest
        latest = moment
    return latest
