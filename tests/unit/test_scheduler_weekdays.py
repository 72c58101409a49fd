"""Release times that differ by weekday, and quiet windows: pure arithmetic, time a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from commsproxy.schedule import QuietHours, Schedule, ScheduleError
from commsproxy.triage.scheduler import (
    deferred,
    due_release,
    next_release,
    quiet_window,
    releases_between,
)

AMS = ZoneInfo("Europe/Amsterdam")
WEEK = Schedule.parse_table(
    {"mon-thu": ["08:30", "12:30", "16:30"], "fri": ["08:30", "12:30"], "sat": ["10:00"]}, AMS
)
EVENINGS = QuietHours.parse("18:00-08:00", "daily")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def as_local(moment: datetime) -> tuple[int, int, int, int, int]:
    t = moment.astimezone(AMS)
    return (t.year, t.month, t.day, t.hour, t.minute)


def test_table_keeps_the_plain_fields_for_callers() -> None:
    assert WEEK.days == {0, 1, 2, 3, 4, 5}
    assert [t.isoformat("minutes") for t in WEEK.times] == ["08:30", "10:00", "12:30", "16:30"]
    assert WEEK.times_on(4) == (time(8, 30), time(12, 30))
    assert WEEK.times_on(6) == ()
    plain = Schedule.parse(["08:30"], "mon-fri", "Europe/Amsterdam")
    assert (plain.times_on(0), plain.times_on(5)) == ((time(8, 30),), ())


def test_each_day_has_its_own_times() -> None:
    # Thu 26 Nov 2026 noon → Sat 28 Nov 10:00: every release in order, Sunday has none.
    fired = releases_between(WEEK, local(2026, 11, 26, 12, 0), local(2026, 11, 30, 9, 0))
    assert [as_local(m)[2:] for m in fired] == [
        (26, 12, 30),
        (26, 16, 30),
        (27, 8, 30),
        (27, 12, 30),  # Friday: no 16:30
        (28, 10, 0),  # Saturday
        (30, 8, 30),  # Monday
    ]
    assert as_local(next_release(WEEK, local(2026, 11, 27, 13, 0))) == (2026, 11, 28, 10, 0)


def test_per_day_times_keep_local_time_across_daylight_saving() -> None:
    # Summer time ends Sun 25 Oct 2026: Saturday 10:00 is 08:00 UTC, Monday 08:30 is 07:30 UTC.
    saturday = next_release(WEEK, local(2026, 10, 23, 13, 0))
    assert saturday == datetime(2026, 10, 24, 8, 0, tzinfo=UTC)
    monday = next_release(WEEK, saturday)
    assert monday == datetime(2026, 10, 26, 7, 30, tzinfo=UTC)


def test_catch_up_over_a_weekend_releases_once() -> None:
    last = local(2026, 11, 27, 12, 30)  # Friday's last release
    assert as_local(due_release(WEEK, last, local(2026, 11, 30, 9, 0)) or last) == (
        2026,
        11,
        30,
        8,
        30,
    )


def test_day_named_twice_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="'fri' and 'mon-fri' both name fri"):
        Schedule.parse_table({"mon-fri": ["08:30"], "fri": ["12:00"]}, AMS)
    with pytest.raises(ScheduleError, match="HH:MM"):
        Schedule.parse_table({"mon": ["8.30"]}, AMS)
    with pytest.raises(ScheduleError, match="at least one day"):
        Schedule.parse_table({}, AMS)


def test_quiet_window_across_midnight() -> None:
    start, end = quiet_window(EVENINGS, AMS, local(2026, 11, 23, 18, 30)) or (None, None)
    assert (as_local(start), as_local(end)) == ((2026, 11, 23, 18, 0), (2026, 11, 24, 8, 0))  # type: ignore[arg-type]
    # after midnight it is still the window that began yesterday
    assert quiet_window(EVENINGS, AMS, local(2026, 11, 24, 7, 59)) == (start, end)
    assert quiet_window(EVENINGS, AMS, local(2026, 11, 24, 8, 0)) is None  # the end is outside
    assert quiet_window(EVENINGS, AMS, local(2026, 11, 24, 17, 59)) is None
    assert quiet_window(EVENINGS, AMS, local(2026, 11, 24, 18, 0)) is not None


def test_quiet_window_on_some_days_and_over_a_weekend() -> None:
    weekdays = QuietHours.parse("18:00-08:00", "mon-fri")
    # Friday's evening runs to Saturday 08:00; no window starts on Saturday or Sunday.
    friday = quiet_window(weekdays, AMS, local(2026, 11, 27, 23, 0))
    assert friday is not None
    assert as_local(friday[1]) == (2026, 11, 28, 8, 0)
    assert quiet_window(weekdays, AMS, local(2026, 11, 28, 20, 0)) is None
    assert quiet_window(weekdays, AMS, local(2026, 11, 30, 7, 0)) is None  # Sunday's evening
    assert weekdays.end_days == {1, 2, 3, 4, 5}
    assert weekdays.releases(AMS).times_on(5) == (time(8, 0),)
    assert weekdays.releases(AMS).times_on(0) == ()


def test_quiet_window_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-13:30", "daily")
    assert not lunch.overnight
    window = quiet_window(lunch, AMS, local(2026, 11, 23, 12, 15))
    assert window is not None
    assert as_local(window[1]) == (2026, 11, 23, 13, 30)
    assert quiet_window(lunch, AMS, local(2026, 11, 23, 0, 15)) is None


def test_quiet_window_across_daylight_saving() -> None:
    # The night summer time ends (Sat 24 → Sun 25 Oct 2026) is an hour longer: 15 h, not 14.
    start, end = quiet_window(EVENINGS, AMS, local(2026, 10, 25, 1, 0)) or (None, None)
    assert start == datetime(2026, 10, 24, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    # The night it starts (Sat 28 → Sun 29 Mar 2026) is an hour shorter.
    start, end = quiet_window(EVENINGS, AMS, local(2026, 3, 29, 5, 0)) or (None, None)
    assert (start, end) == (
        datetime(2026, 3, 28, 17, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 6, 0, tzinfo=UTC),
    )


def test_a_release_inside_the_window_is_deferred_to_its_end() -> None:
    evening = Schedule.parse(["19:00", "08:30"], "daily", "Europe/Amsterdam")
    at_seven = next_release(evening, local(2026, 11, 23, 18, 30))
    assert as_local(deferred(at_seven, EVENINGS, AMS)) == (2026, 11, 24, 8, 0)
    outside = local(2026, 11, 24, 8, 30)
    assert deferred(outside, EVENINGS, AMS) == outside
    # at the window's end, the missed 19:00 (and nothing else) is due: once
    last = local(2026, 11, 23, 16, 30)
    assert due_release(evening, last, local(2026, 11, 24, 8, 0)) == at_seven


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("18:00", "HH:MM-HH:MM"),
        ("18:00-25:00", "HH:MM-HH:MM"),
        ("evening", "HH:MM-HH:MM"),
        ("08:00-08:00", "starts and ends at the same time"),
    ],
)
def test_quiet_hours_errors(window: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        QuietHours.parse(window, "daily")
