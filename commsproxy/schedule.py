"""A batch's release schedule as the config states it: wall-clock times, weekdays, a time zone.

``Schedule.parse(["08:30", "16:30"], "mon-fri", "Europe/Amsterdam")`` reads the three values of
a ``[[batch]]`` table; a value that cannot be read raises ``ScheduleError`` saying what was
expected. This module only describes a schedule: when its releases fall is computed in
``commsproxy.triage.scheduler``. It sits at the bottom of the house with the config, so it
imports nothing from commsproxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Schedule", "ScheduleError", "parse_days", "parse_times"]

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
