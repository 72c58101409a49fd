"""The store's record of every hold mailbox a login's engine used (migration 7), which the
engine reads at each start to release mail held in a mailbox the config no longer names."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.triage.left_behind import left_behind_batch
from commsproxy.triage.state_store import StateStore
from tests.unit.older_state_files import migration_creating, undo_migrations_from

T0 = datetime(2024, 5, 6, 8, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as opened:
        yield opened


def test_recorded_once_per_login_in_the_order_first_used(store: StateStore) -> None:
    assert store.hold_mailboxes("alice") == []
    store.note_hold_mailboxes("alice", ["Later", "Later/Bulk"], T0)
    store.note_hold_mailboxes("alice", ["Newsletters", "Later"], T0 + timedelta(hours=1))
    store.note_hold_mailboxes("bob", ["Later.Bulk"], T0)
    store.note_hold_mailboxes("bob", [], T0)
    assert store.hold_mailboxes("alice") == ["Later", "Later/Bulk", "Newsletters"]
    assert store.hold_mailboxes("bob") == ["Later.Bulk"]
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT login, first_used FROM hold_mailboxes WHERE mailbox = 'Later'")
        assert rows.fetchall() == [("alice", T0.isoformat(timespec="microseconds"))]
    db.close()


def test_forgotten_only_for_that_login_and_mailbox(store: StateStore) -> None:
    store.note_hold_mailboxes("alice", ["Later", "Later/Bulk"], T0)
    store.note_hold_mailboxes("bob", ["Later/Bulk"], T0)
    store.forget_hold_mailbox("alice", "Later/Bulk")
    store.forget_hold_mailbox("alice", "never there")  # nothing to forget: no error
    assert store.hold_mailboxes("alice") == ["Later"]
    assert store.hold_mailboxes("bob") == ["Later/Bulk"]
    store.note_hold_mailboxes("alice", ["Later/Bulk"], T0 + timedelta(days=1))  # used again
    assert store.hold_mailboxes("alice") == ["Later", "Later/Bulk"]


def test_a_file_from_before_the_table_gets_it(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.set_cursor("alice", "INBOX", 1, 2)
        path = store.path
    undo_migrations_from(path, migration_creating("hold_mailboxes"))
    with StateStore(path) as store:
        assert store.cursor("alice", "INBOX") == (1, 2)  # the rest is kept
        store.note_hold_mailboxes("alice", ["Later"], T0)
        assert store.hold_mailboxes("alice") == ["Later"]


def test_the_batch_for_a_mailbox_left_behind_says_where_the_mail_was() -> None:
    batch = left_behind_batch("Later/Bulk")
    assert batch.name == "mail held in Later/Bulk before the config changed"
    assert batch.mailbox == "Later/Bulk"
    assert not batch.reappend  # moved: a redo after a cut makes no copy
    assert batch.labels == ()
    assert not batch.schedule.times  # never due on a schedule
    assert not batch.schedule.days
