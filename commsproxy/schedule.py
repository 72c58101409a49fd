"""A batch's release schedule as the config states it: wall-clock times, weekdays, a time zone.

``Schedule.parse(["08:30", "16:30"], "mon-fri", "Europe/Amsterdam")`` reads the three values of
a ``[[batch]]`` table; ``Schedule.parse_table({"mon-thu": [...], "fri": [...]}, zone)`` reads
times that differ by weekday; ``QuietHours.parse("18:00-08:00", "daily")`` reads a quiet
batch's window. A value that cannot be read raises ``ScheduleError`` saying what was
expected. This module only describes a schedule: when its releases fall is computed in
``commsproxy.triage.scheduler``. It sits at the bottom of the house with the config, so it
imports nothing from commsproxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "QuietHours",
    "Schedule",
    "ScheduleError",
    "parse_day_times",
    "parse_days",
    "parse_times",
    "parse_zone",
]

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A schedule value that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class Schedule:
    """Release times on weekdays in a zone.

    ``times`` and ``days`` describe a schedule with the same times every day it releases; a
    per-weekday schedule has ``per_day`` (seven tuples of times, Monday first) and then
    ``times`` is every time it uses and ``days`` every weekday with a time, so that callers
    showing a schedule keep working. ``times_on`` is the one question the arithmetic asks.
    """

    times: tuple[time, ...]  # wall-clock times, sorted
    days: frozenset[int]  # 0 = Monday ... 6 = Sunday
    zone: ZoneInfo
    per_day: tuple[tuple[time, ...], ...] | None = None  # None: ``times`` on each of ``days``

    @classmethod
    def parse(cls, times: Iterable[str], days: str, zone: str) -> Schedule:
        return cls(parse_times(times), parse_days(days), parse_zone(zone))

    @classmethod
    def parse_table(cls, table: Mapping[str, Iterable[str]], zone: ZoneInfo) -> Schedule:
        """``{"mon-thu": ["08:30", "16:30"], "fri": ["08:30"]}``: times by weekday."""
        return cls.by_day(parse_day_times(table), zone)

    @classmethod
    def by_day(cls, per_day: tuple[tuple[time, ...], ...], zone: ZoneInfo) -> Schedule:
        every = tuple(sorted({when for times in per_day for when in times}))
        days = frozenset(day for day, times in enumerate(per_day) if times)
        return cls(every, days, zone, per_day)

    def times_on(self, weekday: int) -> tuple[time, ...]:
        """The release times on ``weekday`` (0 = Monday), sorted."""
        if self.per_day is not None:
            return self.per_day[weekday]
        return self.times if weekday in self.days else ()


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{name!r}: expected a time zone such as Europe/Amsterdam") from None


def parse_day_times(table: Mapping[str, Iterable[str]]) -> tuple[tuple[time, ...], ...]:
    """Day specs to times → seven tuples of times, Monday first; a day named twice is an
    error (which times would count is anybody's guess)."""
    per_day: list[tuple[time, ...] | None] = [None] * 7
    named: dict[int, str] = {}
    if not table:
        raise ScheduleError('expected at least one day, e.g. { "mon-fri" = ["08:30"] }')
    for spec, values in table.items():
        days = parse_days(spec)
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
            raise ScheduleError(f'{spec!r}: expected a list of times such as ["08:30", "16:30"]')
        times = parse_times(values)
        for day in sorted(days):
            if day in named:
                raise ScheduleError(
                    f"{spec!r} and {named[day]!r} both name {_DAY_NAMES[day]}; "
                    "give each day its times once"
                )
            named[day] = spec
            per_day[day] = times
    return tuple(times or () for times in per_day)


@dataclass(frozen=True)
class QuietHours:
    """A quiet batch's window: from ``start`` to ``end`` local time, beginning on ``days``.

    A window whose end is not after its start (``18:00-08:00``) ends the next day; ``days``
    are the days its evening starts on.
    """

    start: time
    end: time
    days: frozenset[int]

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    @property
    def end_days(self) -> frozenset[int]:
        """The weekdays a window ends on."""
        if not self.overnight:
            return self.days
        return frozenset((day + 1) % 7 for day in self.days)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def releases(self, zone: ZoneInfo) -> Schedule:
        """A quiet batch's release schedule: the end of each window."""
        return Schedule((self.end,), self.end_days, zone)

    @classmethod
    def parse(cls, window: str, days: str) -> QuietHours:
        first, dash, last = window.partition("-")
        start = _TIME.match(first.strip())
        end = _TIME.match(last.strip())
        if not dash or start is None or end is None:
            raise ScheduleError(f'{window!r}: expected a window as HH:MM-HH:MM, e.g. "18:00-08:00"')
        begins = time(int(start.group(1)), int(start.group(2)))
        ends = time(int(end.group(1)), int(end.group(2)))
        if begins == ends:
            raise ScheduleError(f"{window!r}: the window starts and ends at the same time")
        return cls(begins, ends, parse_days(days))


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
