"""Snooze without a server: when a box brings mail back, the copy's flags, the store's records."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.config import SnoozeConfig
from commsproxy.timespec import parse_when
from commsproxy.triage.snooze import due_back, returned_flags
from commsproxy.triage.state_store import StateStore

ZONE = ZoneInfo("Europe/Brussels")
WORKDAYS = frozenset(range(5))
BOXES = dict(SnoozeConfig().boxes)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 12, day, hour, minute, tzinfo=ZONE)  # the 1st is a Monday


@pytest.mark.parametrize(
    ("box", "noticed", "due"),
    [
        ("Tomorrow", local(1, 15), local(2, 8)),
        ("Tomorrow", local(5, 23, 59), local(6, 8)),  # a calendar day, even a Saturday
        ("Monday", local(1, 15), local(8, 8)),  # Monday afternoon: next Monday
        ("Monday", local(1, 7), local(1, 8)),  # Monday before the morning: today
        ("Next week", local(3, 10), local(8, 8)),
        ("In 2 hours", local(1, 15, 10), local(1, 17, 10)),
    ],
)
def test_built_in_boxes(box: str, noticed: datetime, due: datetime) -> None:
    assert due_back(BOXES[box], noticed, ZONE, time(8, 0), WORKDAYS) == due


def test_a_box_of_the_users_own_and_the_morning_setting() -> None:
    lunch = parse_when("13:30")
    assert due_back(lunch, local(1, 10), ZONE, time(8, 0), WORKDAYS) == local(1, 13, 30)
    assert due_back(lunch, local(1, 15), ZONE, time(8, 0), WORKDAYS) == local(2, 13, 30)
    tomorrow = BOXES["Tomorrow"]
    assert due_back(tomorrow, local(1, 15), ZONE, time(9, 15), WORKDAYS) == local(2, 9, 15)


def test_due_is_utc_across_a_dst_change() -> None:
    # Saturday 28 March 2026, 12:00 CET; Sunday is CEST: 08:00 local is 06:00 UTC.
    noticed = datetime(2026, 3, 28, 12, 0, tzinfo=ZONE)
    due = due_back(BOXES["Tomorrow"], noticed, ZONE, time(8, 0), WORKDAYS)
    assert due == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert due.tzinfo == UTC


def test_the_copy_is_unread_and_marked_so_triage_leaves_it() -> None:
    flags = frozenset({"\\Seen", "\\Recent", "\\Deleted", "\\Flagged", "$Triaged", "$Urgent"})
    out = returned_flags(flags)
    assert not {"\\Seen", "\\Recent", "\\Deleted"} & set(out)
    assert {"\\Flagged", "$Urgent", "$Triaged", "$Released", "$Unsnoozed"} == set(out)
    assert len(out) == len(set(out))


def test_store_records_once_and_keeps_state(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        at, due = local(1, 15), local(2, 8)
        store.note_snoozed(
            "me", "Snoozed/Tomorrow", "Tomorrow", 7, [(3, "<a@x>"), (4, None)], at, due
        )
        # Noticed again (a second look, a restart): the first record stands.
        store.note_snoozed("me", "Snoozed/Tomorrow", "Tomorrow", 7, [(3, "<a@x>")], at, local(9, 8))
        store.note_snoozed("me", "Snoozed/Soon", "Soon", 9, [(1, "<b@x>")], at, local(1, 16))
        store.note_snoozed("other", "Snoozed/Soon", "Soon", 9, [(1, "<c@x>")], at, local(1, 16))
        records = store.snoozed("me")
        assert [(r.box, r.uid, r.message_id, r.state) for r in records] == [
            ("Soon", 1, "b@x", "waiting"),
            ("Tomorrow", 3, "a@x", "waiting"),
            ("Tomorrow", 4, None, "waiting"),
        ]
        assert (records[1].due, records[1].noticed) == (due, at)
        store.set_snooze_state(records[1].id, "returning", local(2, 8))
        store.set_snooze_state(records[0].id, "returned", local(1, 16))
        store.set_snooze_state(records[2].id, "forgotten", local(1, 17))
        (left,) = store.snoozed("me")
        assert (left.uid, left.state, left.done) == (3, "returning", None)
