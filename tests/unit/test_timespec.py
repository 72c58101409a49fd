"""The one language for "later": parsing, and the moments it names across weekends and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsproxy.timespec import TimeSpecError, When, add_workdays, parse_when

BRUSSELS = ZoneInfo("Europe/Brussels")
FRIDAY_17 = datetime(2026, 12, 4, 17, 0, tzinfo=BRUSSELS)
MONDAY_7 = datetime(2026, 12, 7, 7, 0, tzinfo=BRUSSELS)


def local(text: str, start: datetime = FRIDAY_17) -> datetime:
    return parse_when(text).after(start, BRUSSELS).astimezone(BRUSSELS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", When(minutes=120)),
        ("+30m", When(minutes=30)),
        ("in 2 hours", When(minutes=120)),
        ("In 45 minutes", When(minutes=45)),
        ("3d", When(workdays=3)),
        ("1w", When(workdays=5)),
        ("tomorrow", When(day="tomorrow")),
        ("Tomorrow 13:00", When(day="tomorrow", at=time(13, 0))),
        ("monday", When(day="0")),
        ("Fri 14:00", When(day="4", at=time(14, 0))),
        ("next week", When(day="next week")),
        ("Next_Week", When(day="next week")),
        ("18:00", When(at=time(18, 0))),
    ],
)
def test_parses(text: str, expected: When) -> None:
    assert parse_when(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "0d", "fri 25:00", "mo", "tomorrow noon", "-2h"])
def test_refuses_with_what_was_expected(text: str) -> None:
    with pytest.raises(TimeSpecError, match="expected"):
        parse_when(text)


def test_moments_from_a_friday_evening() -> None:
    assert local("2h") == datetime(2026, 12, 4, 19, 0, tzinfo=BRUSSELS)
    assert local("3d") == datetime(2026, 12, 9, 17, 0, tzinfo=BRUSSELS)  # weekend skipped
    assert local("tomorrow") == datetime(2026, 12, 5, 8, 0, tzinfo=BRUSSELS)  # a calendar day
    assert local("monday") == datetime(2026, 12, 7, 8, 0, tzinfo=BRUSSELS)
    assert local("next week") == datetime(2026, 12, 7, 8, 0, tzinfo=BRUSSELS)
    assert local("fri 14:00") == datetime(2026, 12, 11, 14, 0, tzinfo=BRUSSELS)
    assert local("18:00") == datetime(2026, 12, 4, 18, 0, tzinfo=BRUSSELS)
    assert local("16:00") == datetime(2026, 12, 5, 16, 0, tzinfo=BRUSSELS)


def test_a_named_day_is_today_while_its_time_is_ahead() -> None:
    assert local("monday", MONDAY_7) == datetime(2026, 12, 7, 8, 0, tzinfo=BRUSSELS)
    assert local("mon 06:00", MONDAY_7) == datetime(2026, 12, 14, 6, 0, tzinfo=BRUSSELS)


def test_morning_and_workdays_are_the_callers() -> None:
    when = parse_when("next week")
    sunday_off = frozenset({1, 2, 3, 4, 5})  # a Tuesday-to-Saturday week
    moment = when.after(FRIDAY_17, BRUSSELS, time(7, 30), sunday_off).astimezone(BRUSSELS)
    assert moment == datetime(2026, 12, 8, 7, 30, tzinfo=BRUSSELS)


def test_workdays_keep_the_local_time_across_a_dst_change() -> None:
    before = datetime(2026, 3, 27, 9, 0, tzinfo=BRUSSELS)  # Friday; clocks go forward on Sunday
    assert add_workdays(before, 1, BRUSSELS).astimezone(BRUSSELS) == datetime(
        2026, 3, 30, 9, 0, tzinfo=BRUSSELS
    )


@given(
    st.integers(1, 30),
    st.datetimes(datetime(2025, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
)
def test_working_days_land_on_a_working_day_after_the_start(count: int, start: datetime) -> None:
    moment = add_workdays(start, count, BRUSSELS)
    assert moment > start
    assert moment.astimezone(BRUSSELS).weekday() < 5
