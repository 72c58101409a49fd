"""A refused step waits its minute, the earliest due time counts the wait, and a record that
is no longer pending is forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commsproxy.triage.refusal_waits import RefusalWaits

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_refused_record_waits_and_the_next_try_says_when() -> None:
    clock = [100.0]
    waits = RefusalWaits(60.0, lambda: clock[0])
    due = [(1, NOW - timedelta(minutes=5)), (2, NOW + timedelta(minutes=10))]
    assert waits.next_try(due, NOW) == NOW - timedelta(minutes=5)
    waits.refused(1)
    assert waits.waiting(1)
    assert not waits.waiting(2)
    assert waits.next_try(due, NOW) == NOW + timedelta(seconds=60)
    clock[0] += 61
    assert not waits.waiting(1)
    waits.refused(1)
    waits.done(1)
    assert not waits.waiting(1)


def test_waits_of_records_no_longer_pending_are_forgotten() -> None:
    waits = RefusalWaits(60.0, lambda: 0.0)
    waits.refused(7)
    assert waits.next_try([], NOW) is None
    assert not waits.waiting(7)
    waits.refused(8)
    waits.clear()
    assert not waits.waiting(8)
