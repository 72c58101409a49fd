"""When something comes back: "2h", "3d", "tomorrow", "mon 14:00", "next week", "In 2 hours".

One small language for every "later" the user writes: a snooze mailbox's name or rule, a
follow-up address (``2d@followup.invalid``), an account's ``sla``. ``parse_when`` reads it and
``When.after`` turns it into a moment, from a start, in the user's zone. Days given as a count
("3d") are working days ("1w" is five of them); a named day ("tomorrow", "friday") is a calendar
day. Pure: no clock, no I/O; it sits at the bottom of the house with the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["TimeSpecError", "When", "add_workdays", "parse_when"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DELAY = re.compile(r"^(?:in\s+|\+)?(\d{1,4})\s*(m|min|minutes?|h|hours?|d|days?|w|weeks?)$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3])[:.h]?([0-5]\d)$")
_EXAMPLES = '"2h", "3d", "tomorrow", "monday", "next week", "fri 14:00" or "in 2 hours"'


class TimeSpecError(ValueError):
    """Text that names no time; the message says what was expected."""


@dataclass(frozen=True)
class When:
    """A delay (``minutes`` or ``workdays``) or a day (``day``) at a time (``at``)."""

    minutes: int = 0
    workdays: int = 0
    #: None (today, or tomorrow once ``at`` has passed), "tomorrow", "next week", or "0".."6"
    #: for a weekday (Monday is 0).
    day: str | None = None
    at: time | None = None  # None: the morning time the caller gives

    @property
    def is_delay(self) -> bool:
        return self.day is None and self.at is None

    def after(
        self,
        start: datetime,
        zone: ZoneInfo,
        morning: time = time(8, 0),
        workdays: frozenset[int] = frozenset(range(5)),
    ) -> datetime:
        """The moment this names, counted from ``start`` (aware), as an aware UTC datetime."""
        if self.is_delay:
            if self.minutes:
                return (start + timedelta(minutes=self.minutes)).astimezone(UTC)
            return add_workdays(start, self.workdays, zone, workdays)
        local = start.astimezone(zone)
        at = self.at or morning
        today = local.date()
        if self.day is None:
            day = today if local.time() < at else today + timedelta(days=1)
        elif self.day == "tomorrow":
            day = today + timedelta(days=1)
        elif self.day == "next week":
            day = today + timedelta(days=7 - today.weekday())  # next Monday
            for _ in range(7):  # ... or the week's first working day
                if day.weekday() in workdays or not workdays:
                    break
                day += timedelta(days=1)
        else:
            ahead = (int(self.day) - today.weekday()) % 7
            if ahead == 0 and local.time() >= at:  # that day today, its time gone: next week
                ahead = 7
            day = today + timedelta(days=ahead)
        return _at(day, at, zone)


def add_workdays(
    start: datetime, count: int, zone: ZoneInfo, workdays: frozenset[int] = frozenset(range(5))
) -> datetime:
    """``start`` moved ``count`` working days on, at the same local time (weekends skipped)."""
    local = start.astimezone(zone)
    day = local.date()
    left = count
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() in workdays or not workdays:
            left -= 1
    return _at(day, local.time().replace(tzinfo=None), zone)


def _at(day: date, when: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, when, tzinfo=zone).astimezone(UTC)


def parse_when(text: str) -> When:
    """``"2h"``, ``"+30m"``, ``"in 2 hours"``, ``"3d"``, ``"1w"``, ``"tomorrow"``,
    ``"tomorrow 13:00"``, ``"monday"``, ``"fri 14:00"``, ``"next week"``, ``"18:00"``."""
    words = " ".join(re.sub(r"(?<=[a-z])[-_](?=[a-z])", " ", text.strip().lower()).split())
    delay = _DELAY.match(words)
    if delay is not None:
        count, unit = int(delay.group(1)), delay.group(2)
        if count == 0:
            raise TimeSpecError(f"{text!r}: expected a time above zero, such as {_EXAMPLES}")
        if unit.startswith("w"):
            return When(workdays=5 * count)
        if unit.startswith("d"):
            return When(workdays=count)
        return When(minutes=count * (60 if unit.startswith("h") else 1))
    head, _, tail = words.partition(" ")
    if head == "next" and tail.startswith("week"):
        head, tail = "next week", tail[4:].strip()
    at = _clock(tail) if tail else None
    if tail and at is None:
        raise TimeSpecError(f"{text!r}: expected a time as HH:MM after the day, e.g. 'fri 14:00'")
    if head in ("tomorrow", "next week"):
        return When(day=head, at=at)
    if head[:3] in _DAYS and _is_day_name(head):
        return When(day=str(_DAYS.index(head[:3])), at=at)
    if not tail and (clock := _clock(head)) is not None:
        return When(at=clock)
    raise TimeSpecError(f"{text!r}: expected a time such as {_EXAMPLES}")


def _is_day_name(word: str) -> bool:
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return any(name.startswith(word) for name in full) and len(word) >= 3


def _clock(text: str) -> time | None:
    match = _CLOCK.match(text.strip())
    return time(int(match.group(1)), int(match.group(2))) if match else None
