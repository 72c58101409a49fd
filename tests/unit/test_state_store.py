"""The triage state store: round trips, ordering, sharing between processes, bad files."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from commsproxy.triage.state_store import (
    Correction,
    Decision,
    Release,
    ReleaseRequest,
    StateStore,
    StoreError,
)
from tests.unit.older_state_files import migration_creating, undo_migrations_from

T0 = datetime(2024, 5, 6, 8, 30, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def decision(uid: int = 1, minutes: int = 0, **changes: object) -> Decision:
    base = Decision(
        login="alice",
        mailbox="INBOX",
        uidvalidity=7,
        uid=uid,
        message_id=f"m{uid}@example.com",
        label="normal",
        score=0.12,
        reason="low urgency 0.12",
        batch="work",
        held=True,
        sender="bob@example.com",
        subject=f"Subject {uid}",
        decided_at=at(minutes),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def correction(
    message_id: str | None, label: str, minutes: int, login: str = "alice"
) -> Correction:
    return Correction(
        login=login,
        message_id=message_id,
        kind="rescue" if label == "urgent" else "demote",
        label=label,
        previous="normal",
        sender="bob@example.com",
        subject="Hello",
        at=at(minutes),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as opened:
        yield opened


def test_open_creates_private_directory_and_file(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    with StateStore.open(state_dir) as store:
        assert store.path == state_dir / "state.sqlite3"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) & 0o077 == 0


def test_wal_mode_and_pragmas(store: StateStore) -> None:
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("PRAGMA user_version").fetchone()[0] >= 1
    other.close()
    assert store._read("PRAGMA busy_timeout")[0][0] == 5000
    assert store._read("PRAGMA synchronous")[0][0] == 1  # NORMAL


def test_reopen_keeps_data(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.set_cursor("alice", "INBOX", 7, 42)
    with StateStore.open(tmp_path) as store:
        assert store.cursor("alice", "INBOX") == (7, 42)


def test_cursor_round_trip_and_update(store: StateStore) -> None:
    assert store.cursor("alice", "INBOX") is None
    store.set_cursor("alice", "INBOX", 7, 10)
    store.set_cursor("alice", "INBOX", 8, 3)
    store.set_cursor("alice", "Junk", 1, 99)
    store.set_cursor("carol", "INBOX", 5, 1)
    assert store.cursor("alice", "INBOX") == (8, 3)
    assert store.cursor("alice", "Junk") == (1, 99)
    assert store.cursor("carol", "INBOX") == (5, 1)


def test_first_start_sets_the_cursor_and_its_record_together(store: StateStore) -> None:
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert store.first_start_record("alice") is None
    store.first_start("alice", 7, 4999, 4990, 86400.0, at)
    assert store.cursor("alice", "INBOX") == (7, 4999)
    assert store.first_start_record("alice") == (at, 4990, 86400.0)
    assert store.first_start_record("carol") is None
    assert store.cursor("carol", "INBOX") is None


def test_a_file_from_before_the_first_starts_table_gets_it(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as made:
        made.set_cursor("alice", "INBOX", 7, 42)
        path = made.path
    # The file as the commsproxy before first_starts left it: that migration and later ones undone.
    undo_migrations_from(path, migration_creating("first_starts"))
    with StateStore(path) as store:
        assert store.cursor("alice", "INBOX") == (7, 42)  # not a first start: it has a cursor
        assert store.first_start_record("alice") is None


def test_decision_round_trip(store: StateStore) -> None:
    urgent = decision(2, label="urgent", score=None, batch=None, held=False, reason="VIP")
    store.record_decisions([decision(1), urgent])
    assert store.decision_for_uid("alice", "INBOX", 7, 1) == decision(1)
    got = store.decision_for_uid("alice", "INBOX", 7, 2)
    assert got == urgent
    assert got is not None
    assert got.held is False
    assert got.decided_at.tzinfo is not None
    assert store.decision_for_uid("alice", "INBOX", 8, 1) is None
    assert store.decision_for_uid("alice", "Other", 7, 1) is None


def test_decisions_accept_a_generator_and_nothing(store: StateStore) -> None:
    store.record_decisions([])
    store.record_decisions(decision(uid) for uid in range(1, 4))
    assert len(store.recent_decisions()) == 3


def test_same_uid_key_replaces_the_row(store: StateStore) -> None:
    store.record_decisions([decision(1)])
    store.record_decisions([decision(1, minutes=5, label="bulk", batch="bulk")])
    assert store.recent_decisions() == [decision(1, minutes=5, label="bulk", batch="bulk")]
    store.record_decisions([decision(1, uidvalidity=8)])
    assert len(store.recent_decisions()) == 2


def test_times_in_other_zones_come_back_as_utc(store: StateStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.record_decisions([decision(1, decided_at=datetime(2024, 5, 6, 10, 30, tzinfo=plus_two))])
    got = store.decision_for_uid("alice", "INBOX", 7, 1)
    assert got is not None
    assert got.decided_at == T0
    assert got.decided_at.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.record_decisions([decision(1, decided_at=datetime(2024, 5, 6, 8, 30))])


@pytest.mark.parametrize(
    "stored", ["abc@example.com", "<abc@example.com>", "  <abc@example.com>\n"]
)
@pytest.mark.parametrize("lookup", ["abc@example.com", "<abc@example.com>", " <abc@example.com> "])
def test_message_id_normalisation(store: StateStore, stored: str, lookup: str) -> None:
    store.record_decisions([decision(1, message_id=stored)])
    [found] = store.decisions_for_message_id(lookup)
    assert found.message_id == "abc@example.com"
    assert store.latest_decision_by_message_id("alice", lookup) == found
    assert store.decisions_for_message_id("ABC@example.com") == []


def test_message_id_may_be_missing(store: StateStore) -> None:
    store.record_decisions([decision(1, message_id=None), decision(2, message_id="<>")])
    assert [d.message_id for d in store.recent_decisions()] == [None, None]
    assert store.decisions_for_message_id("") == []


def test_decisions_for_message_id_newest_first_across_logins(store: StateStore) -> None:
    store.record_decisions(
        [
            decision(1, minutes=0, message_id="same@x"),
            decision(2, minutes=20, message_id="same@x", mailbox="Hold/work"),
            decision(3, minutes=10, message_id="same@x", login="carol"),
            decision(4, minutes=30, message_id="other@x"),
        ]
    )
    assert [d.uid for d in store.decisions_for_message_id("<same@x>")] == [2, 3, 1]
    latest = store.latest_decision_by_message_id("alice", "same@x")
    assert latest is not None
    assert latest.uid == 2
    latest_carol = store.latest_decision_by_message_id("carol", "same@x")
    assert latest_carol is not None
    assert latest_carol.uid == 3
    assert store.latest_decision_by_message_id("dave", "same@x") is None


def test_recent_decisions_newest_first_with_limit_and_login(store: StateStore) -> None:
    store.record_decisions(
        [
            decision(1, minutes=5),
            decision(2, minutes=1),
            decision(3, minutes=9, login="carol"),
            decision(4, minutes=7),
        ]
    )
    assert [d.uid for d in store.recent_decisions()] == [3, 4, 1, 2]
    assert [d.uid for d in store.recent_decisions(limit=2)] == [3, 4]
    assert [d.uid for d in store.recent_decisions("alice")] == [4, 1, 2]
    assert [d.uid for d in store.recent_decisions("alice", limit=1)] == [4]
    assert store.recent_decisions("nobody") == []


def test_equal_times_keep_recording_order(store: StateStore) -> None:
    store.record_decisions([decision(1), decision(2)])
    store.record_decisions([decision(3)])
    assert [d.uid for d in store.recent_decisions()] == [3, 2, 1]


def test_decision_counts(store: StateStore) -> None:
    store.record_decisions(
        [
            decision(1, minutes=-10, label="urgent"),
            decision(2, minutes=0, label="urgent"),
            decision(3, minutes=1, label="normal"),
            decision(4, minutes=2, label="bulk"),
            decision(5, minutes=3, label="bulk"),
            decision(6, minutes=3, label="bulk", login="carol"),
        ]
    )
    assert store.decision_counts("alice", T0) == {"urgent": 1, "normal": 1, "bulk": 2}
    assert store.decision_counts("alice", at(60)) == {}


def test_release_round_trip(store: StateStore) -> None:
    release_id = store.start_release("alice", "work", at(0), at(1))
    assert store.last_release("alice", "work") == Release(
        release_id, "alice", "work", at(0), at(1), None, 0
    )
    store.finish_release(release_id, 12, at(2))
    assert store.last_release("alice", "work") == Release(
        release_id, "alice", "work", at(0), at(1), at(2), 12
    )
    assert store.last_release("alice", "bulk") is None
    assert store.last_release("carol", "work") is None


def test_finishing_an_unknown_release_fails(store: StateStore) -> None:
    with pytest.raises(StoreError, match="release 99"):
        store.finish_release(99, 0, at(0))


def test_unfinished_releases(store: StateStore) -> None:
    done = store.start_release("alice", "work", at(0), at(0))
    store.finish_release(done, 3, at(1))
    cut_short = store.start_release("alice", "work", at(60), at(60))
    manual = store.start_release("alice", "bulk", None, at(70))
    store.start_release("carol", "work", at(60), at(60))
    unfinished = store.unfinished_releases("alice")
    assert [r.id for r in unfinished] == [cut_short, manual]
    assert unfinished[1].scheduled is None
    store.finish_release(cut_short, 0, at(80))
    assert [r.id for r in store.unfinished_releases("alice")] == [manual]


def test_last_release_and_last_scheduled_release(store: StateStore) -> None:
    assert store.last_scheduled_release("alice", "work") is None
    first = store.start_release("alice", "work", at(0), at(0))
    store.finish_release(first, 1, at(1))
    assert store.last_scheduled_release("alice", "work") == at(0)
    store.start_release("alice", "work", at(240), at(241))
    assert store.last_scheduled_release("alice", "work") == at(240)
    manual = store.start_release("alice", "work", None, at(300))
    last = store.last_release("alice", "work")
    assert last is not None
    assert last.id == manual
    assert store.last_scheduled_release("alice", "work") == at(240)
    store.start_release("alice", "bulk", at(500), at(500))
    store.start_release("carol", "work", at(600), at(600))
    assert store.last_scheduled_release("alice", "work") == at(240)


def test_recent_releases(store: StateStore) -> None:
    ids = [
        store.start_release("alice", "work", at(0), at(0)),
        store.start_release("carol", "work", at(10), at(10)),
        store.start_release("alice", "bulk", None, at(20)),
    ]
    assert [r.id for r in store.recent_releases()] == ids[::-1]
    assert [r.id for r in store.recent_releases("alice")] == [ids[2], ids[0]]
    assert [r.id for r in store.recent_releases(limit=1)] == [ids[2]]


def test_corrections_round_trip_oldest_first(store: StateStore) -> None:
    later = correction("<b@x>", "urgent", 10)
    earlier = correction("a@x", "bulk", 0)
    other = correction("c@x", "normal", 5, login="carol")
    no_id = correction(None, "urgent", 20)
    for item in (later, earlier, other, no_id):
        store.record_correction(item)
    assert store.corrections() == [earlier, other, replace(later, message_id="b@x"), no_id]
    assert store.corrections("carol") == [other]
    assert store.corrections("nobody") == []


def test_correction_labels_pick_the_newest(store: StateStore) -> None:
    store.record_correction(correction("a@x", "urgent", 10))
    store.record_correction(correction("<a@x>", "bulk", 5))
    store.record_correction(correction("a@x", "normal", 20, login="carol"))
    store.record_correction(correction("b@x", "bulk", 0))
    store.record_correction(correction("b@x", "urgent", 1))
    store.record_correction(correction(None, "urgent", 30))
    assert store.correction_labels() == {"a@x": "normal", "b@x": "urgent"}
    assert store.correction_labels("alice") == {"a@x": "urgent", "b@x": "urgent"}
    assert store.correction_labels("nobody") == {}


def test_release_request_lifecycle(store: StateStore) -> None:
    assert store.pending_release_requests() == []
    everything = store.request_release(None, None, at(5))
    one_batch = store.request_release("alice", "work", at(1))
    assert store.pending_release_requests() == [
        ReleaseRequest(one_batch, "alice", "work", at(1)),
        ReleaseRequest(everything, None, None, at(5)),
    ]
    store.complete_release_request(one_batch, at(6))
    assert store.pending_release_requests() == [ReleaseRequest(everything, None, None, at(5))]
    store.complete_release_request(one_batch, at(7))
    store.complete_release_request(everything, at(8))
    assert store.pending_release_requests() == []
    with pytest.raises(StoreError, match="release request 99"):
        store.complete_release_request(99, at(9))


def test_two_stores_on_one_file(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as run, StateStore.open(tmp_path) as status:
        run.record_decisions([decision(1)])
        release_id = run.start_release("alice", "work", at(0), at(0))
        assert status.recent_decisions() == [decision(1)]
        assert [r.id for r in status.unfinished_releases("alice")] == [release_id]

        request = status.request_release("alice", None, at(1))
        assert [r.id for r in run.pending_release_requests()] == [request]
        run.complete_release_request(request, at(2))
        run.finish_release(release_id, 4, at(3))
        assert status.pending_release_requests() == []
        assert status.unfinished_releases("alice") == []


def test_reads_are_not_blocked_by_another_writer(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO cursors VALUES ('alice', 'INBOX', 9, 9)")
        assert store.cursor("alice", "INBOX") is None
        other.execute("ROLLBACK")
        other.close()
        store.set_cursor("alice", "INBOX", 1, 1)
        assert store.cursor("alice", "INBOX") == (1, 1)


def test_failed_write_rolls_back(store: StateStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.record_decisions([decision(1), decision(2, decided_at=datetime(2024, 1, 1))])
    assert store.recent_decisions() == []

    def half_a_write() -> None:
        with store._write() as db:
            db.execute("INSERT INTO cursors VALUES ('alice', 'INBOX', 1, 1)")
            db.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreError, match="no_such_table"):
        half_a_write()
    assert store.cursor("alice", "INBOX") is None
    store.set_cursor("alice", "INBOX", 2, 2)
    assert store.cursor("alice", "INBOX") == (2, 2)


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 200)
    with pytest.raises(StoreError, match="delete it") as caught:
        StateStore(path)
    assert str(path) in str(caught.value)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        path = store.path
    newer = sqlite3.connect(path)
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(StoreError, match="schema version 99") as caught:
        StateStore(path)
    assert str(path) in str(caught.value)


def test_old_empty_file_gets_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    sqlite3.connect(path).close()
    with StateStore(path) as store:
        store.set_cursor("alice", "INBOX", 1, 2)
        assert store.cursor("alice", "INBOX") == (1, 2)


def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.cursor("alice", "INBOX")
