"""Release times: weekdays, time zones, daylight saving, catch-up. Time is a parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from commsproxy.schedule import Schedule
from commsproxy.triage.scheduler import due_release, next_release, releases_between

AMS = ZoneInfo("Europe/Amsterdam")
WORKDAYS = Schedule.parse(["08:30", "12:30", "16:30"], "mon-fri", "Europe/Amsterdam")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


def as_local(moment: datetime) -> tuple[int, int, int, int, int]:
    t = moment.astimezone(AMS)
    return (t.year, t.month, t.day, t.hour, t.minute)


def test_next_release_same_day_and_strictly_after() -> None:
    assert as_local(next_release(WORKDAYS, local(2026, 11, 23, 7, 0))) == (2026, 11, 23, 8, 30)
    # exactly at a release time: the next one
    assert as_local(next_release(WORKDAYS, local(2026, 11, 23, 8, 30))) == (2026, 11, 23, 12, 30)


def test_weekend_is_skipped() -> None:
    friday_evening = local(2026, 11, 27, 17, 0)
    assert as_local(next_release(WORKDAYS, friday_evening)) == (2026, 11, 30, 8, 30)


def test_daylight_saving_keeps_local_time() -> None:
    # Europe/Amsterdam: summer time ends Sun 25 Oct 2026; Monday 08:30 is 07:30 UTC, not 06:30.
    before = next_release(WORKDAYS, local(2026, 10, 23, 17, 0))
    assert as_local(before) == (2026, 10, 26, 8, 30)
    assert before.astimezone(UTC).hour == 7
    # Summer time starts Sun 29 Mar 2026: Monday 08:30 is 06:30 UTC.
    after = next_release(WORKDAYS, local(2026, 3, 27, 17, 0))
    assert as_local(after) == (2026, 3, 30, 8, 30)
    assert after.astimezone(UTC).hour == 6


def test_nonexistent_local_time_fires_after_the_gap() -> None:
    night = Schedule.parse(["02:30"], "daily", "Europe/Amsterdam")
    moment = next_release(night, local(2026, 3, 29, 0, 0))
    assert moment == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 summer time


def test_repeated_local_time_fires_once() -> None:
    night = Schedule.parse(["02:30"], "daily", "Europe/Amsterdam")
    fired = releases_between(night, local(2026, 10, 24, 12, 0), local(2026, 10, 26, 0, 0))
    assert fired == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # the first 02:30 (summer)


def test_releases_between_counts_each_once() -> None:
    fired = releases_between(WORKDAYS, local(2026, 11, 23, 8, 30), local(2026, 11, 24, 8, 30))
    assert [as_local(m)[3:] for m in fired] == [(12, 30), (16, 30), (8, 30)]


def test_catch_up_after_sleeping_through_releases() -> None:
    last = local(2026, 11, 23, 8, 30)
    now = local(2026, 11, 23, 17, 5)  # slept through 12:30 and 16:30
    assert as_local(due_release(WORKDAYS, last, now)) == (2026, 11, 23, 16, 30)  # type: ignore[arg-type]
    # released at 16:30: nothing more due until Tuesday 08:30
    assert due_release(WORKDAYS, local(2026, 11, 23, 16, 30), now) is None


def test_catch_up_without_a_record_releases_the_latest() -> None:
    now = local(2026, 11, 28, 10, 0)  # Saturday
    assert as_local(due_release(WORKDAYS, None, now)) == (2026, 11, 27, 16, 30)  # type: ignore[arg-type]
