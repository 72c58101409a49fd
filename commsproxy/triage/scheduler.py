"""When a batch is released: pure functions of a schedule and a moment, no clock, no I/O.

A schedule (``commsproxy.schedule``) is wall-clock times on some weekdays in a time zone
("08:30, 12:30 and 16:30, Monday to Friday, Europe/Amsterdam"). Releases are computed in that
zone and returned as aware UTC datetimes, so a schedule keeps meaning 08:30 local across
daylight-saving changes. A time that does not exist on a spring-forward day (02:30 in a
02:00→03:00 jump) fires at the first moment after the gap; a time that happens twice on a
fall-back day fires the first time.

``due_release`` is the catch-up rule: after the laptop slept through 12:30, the 12:30 batch is
due at once when it wakes — once, however many release times passed.

A quiet batch's window (``QuietHours``, "18:00-08:00") defers every other batch's release:
``quiet_window`` says whether a moment is inside one, and ``deferred`` moves a release that
falls inside to the window's end, where the catch-up rule makes it one release.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..schedule import QuietHours, Schedule, ScheduleError

if TYPE_CHECKING:
    from ..config import BatchConfig

__all__ = [
    "deferred",
    "due_release",
    "next_release",
    "quiet_until",
    "quiet_window",
    "release_time",
    "releases_between",
]


def _at(day: date, when: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of ``when`` on ``day`` in ``zone`` (gap: the first moment after it)."""
    # fold=0 picks the first of a repeated hour; for a time inside a spring-forward gap it
    # applies the offset from before the jump, which lands just after the gap (PEP 495).
    return datetime.combine(day, when, tzinfo=zone).astimezone(UTC)


def _releases_from(schedule: Schedule, day: date) -> Iterator[datetime]:
    """Release moments in order, starting with ``day`` (local calendar date)."""
    while True:
        for when in schedule.times_on(day.weekday()):
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


def quiet_window(
    quiet: QuietHours, zone: ZoneInfo, now: datetime
) -> tuple[datetime, datetime] | None:
    """The window ``[start, end)`` that ``now`` is in, in UTC, or None."""
    today = now.astimezone(zone).date()
    # A window that began yesterday evening may still be running this morning.
    for day in (today - timedelta(days=1), today):
        if day.weekday() not in quiet.days:
            continue
        start = _at(day, quiet.start, zone)
        end = _at(day + timedelta(days=1) if quiet.overnight else day, quiet.end, zone)
        if start <= now < end:
            return start, end
    return None


def deferred(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """When a release due at ``moment`` happens: at the end of a quiet window it falls in."""
    window = quiet_window(quiet, zone, moment)
    return moment if window is None else window[1]


def quiet_until(batches: Sequence[BatchConfig], now: datetime) -> datetime | None:
    """The end of the quiet window ``now`` is in, or None when no quiet batch is quiet."""
    for batch in batches:
        if batch.quiet is not None:
            window = quiet_window(batch.quiet, batch.schedule.zone, now)
            if window is not None:
                return window[1]
    return None


def release_time(
    batch: BatchConfig, batches: Sequence[BatchConfig], moment: datetime, now: datetime
) -> datetime:
    """When a release of ``batch`` scheduled at ``moment`` happens: at the end of a quiet
    window that it, or ``now`` for an overdue one, falls in; otherwise at ``moment``. (A quiet
    batch's own release is the end of a window, outside it: only an overdue one moves.)"""
    probe = max(moment, now)
    for other in batches:
        if other.quiet is not None:
            later = deferred(probe, other.quiet, other.schedule.zone)
            if later != probe:
                return later
    return moment
