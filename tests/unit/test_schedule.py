"""Reading a schedule from the config's values: times, weekdays, time zone."""

from __future__ import annotations

import pytest

from commsproxy.schedule import Schedule, ScheduleError, parse_days, parse_times


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Mon,Wed,Fri", {0, 2, 4}),
        ("sat-sun", {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("daily", set(range(7))),
        ("monday", {0}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("bad", ["weekdays", "mon-xyz", ""])
def test_parse_days_errors(bad: str) -> None:
    with pytest.raises(ScheduleError, match="mon-fri"):
        parse_days(bad)


def test_parse_times() -> None:
    assert [t.isoformat() for t in parse_times(["16:30", "8:30", "08:30"])] == [
        "08:30:00",
        "16:30:00",
    ]
    with pytest.raises(ScheduleError, match="HH:MM"):
        parse_times(["24:00"])
    with pytest.raises(ScheduleError, match="at least one"):
        parse_times([])


def test_bad_zone_is_named() -> None:
    with pytest.raises(ScheduleError, match="Mars/Olympus"):
        Schedule.parse(["08:30"], "daily", "Mars/Olympus")
