"""Triage state: a small SQLite log and cache shared by ``commsproxy run`` and the CLI commands.

The server is the truth (IMAP keywords say what is held and why), so this file only keeps what is
cheaper to remember than to ask again: how far triage got in each mailbox, what was decided and
why, when batches were released, the user's corrections for training, and release requests from
other processes. Deleting it loses no mail. Several processes open it at once, so it runs in WAL
mode and every write is its own short ``BEGIN IMMEDIATE`` transaction. Times are stored as
ISO-8601 UTC text of fixed width, so text order is time order.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .health import Health, State

__all__ = [
    "AutoReply",
    "Correction",
    "Decision",
    "DeliverRequest",
    "Filed",
    "FollowUp",
    "HistoryRecord",
    "Notice",
    "Pause",
    "QueuedFiling",
    "Release",
    "ReleaseRequest",
    "SlaDue",
    "Snooze",
    "StateStore",
    "StoreError",
]

FILENAME = "state.sqlite3"

# One tuple of statements per schema version; ``PRAGMA user_version`` counts those applied.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE cursors (
            login TEXT NOT NULL, mailbox TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL, last_uid INTEGER NOT NULL,
            PRIMARY KEY (login, mailbox))""",
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, mailbox TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL, message_id TEXT,
            label TEXT NOT NULL, score REAL, reason TEXT NOT NULL, batch TEXT,
            held INTEGER NOT NULL, sender TEXT NOT NULL, subject TEXT NOT NULL,
            decided_at TEXT NOT NULL, UNIQUE (login, mailbox, uidvalidity, uid))""",
        "CREATE INDEX decisions_message_id ON decisions (message_id)",
        "CREATE INDEX decisions_login_time ON decisions (login, decided_at)",
        "CREATE INDEX decisions_time ON decisions (decided_at)",
        """CREATE TABLE releases (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, batch TEXT NOT NULL,
            scheduled TEXT, started TEXT NOT NULL, finished TEXT, moved INTEGER NOT NULL)""",
        "CREATE INDEX releases_batch ON releases (login, batch, started)",
        """CREATE TABLE corrections (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, message_id TEXT, kind TEXT NOT NULL,
            label TEXT NOT NULL, previous TEXT, sender TEXT NOT NULL, subject TEXT NOT NULL,
            at TEXT NOT NULL)""",
        "CREATE INDEX corrections_time ON corrections (at)",
        """CREATE TABLE release_requests (
            id INTEGER PRIMARY KEY, login TEXT, batch TEXT,
            requested TEXT NOT NULL, completed TEXT)""",
    ),
    (
        # Filings still to do (an APPEND the server refused or could not take yet), with the
        # message itself: it was sent already and must reach the account folder in the end.
        """CREATE TABLE filing_queue (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, account TEXT NOT NULL,
            message_id TEXT, content BLOB NOT NULL, flags TEXT NOT NULL,
            direction TEXT NOT NULL, reason TEXT NOT NULL, created TEXT NOT NULL,
            attempts INTEGER NOT NULL, next_try TEXT NOT NULL, last_error TEXT)""",
        """CREATE TABLE filings (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, message_id TEXT,
            account TEXT NOT NULL, direction TEXT NOT NULL, outcome TEXT NOT NULL,
            reason TEXT NOT NULL, filed_at TEXT NOT NULL)""",
        "CREATE INDEX filings_message_id ON filings (message_id)",
        """CREATE TABLE account_folders (
            login TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            PRIMARY KEY (login, key))""",
    ),
    (
        # The user's history with senders (triage/history.py) as JSON, how its first read
        # went, and how far Sent was read: saved together, so a restart catches up from there.
        """CREATE TABLE histories (
            login TEXT PRIMARY KEY, state TEXT NOT NULL, started TEXT, finished TEXT,
            messages INTEGER NOT NULL, folders INTEGER NOT NULL, stopped TEXT,
            senders INTEGER NOT NULL, sent_mailbox TEXT, sent_uidvalidity INTEGER,
            sent_uid INTEGER, updated TEXT NOT NULL, document TEXT)""",
    ),
    (
        # Triage of a login paused because its OAuth2 sign-in must be renewed: why, since
        # when, and when the one notice went to its INBOX (so a restart does not send another).
        """CREATE TABLE pauses (
            login TEXT PRIMARY KEY, reason TEXT NOT NULL, since TEXT NOT NULL,
            notice_sent TEXT)""",
    ),
    (
        # How triage of each login is doing (triage/health.py), written by `run` on each
        # change for `status`, which runs in another process.
        """CREATE TABLE health (
            login TEXT PRIMARY KEY, state TEXT NOT NULL, since TEXT NOT NULL, reason TEXT,
            todo TEXT, failing_since TEXT, history_read INTEGER, history_limit INTEGER,
            decided_at TEXT, decision TEXT, release_batch TEXT, release_at TEXT,
            pid INTEGER NOT NULL, updated TEXT NOT NULL)""",
        # The one notice a login's INBOX holds while its triage does not work (notice.py):
        # planned (its Message-ID) before the APPEND and marked after, so a crash between the
        # two is settled by looking for that Message-ID rather than by a second APPEND.
        """CREATE TABLE notices (
            login TEXT PRIMARY KEY, message_id TEXT NOT NULL, reason TEXT NOT NULL,
            planned TEXT NOT NULL, appended TEXT)""",
    ),
    (
        # A notice being replaced by one with a new reason (notice.py): the old one's
        # Message-ID, kept until it is expunged, so a crash between the new notice's APPEND
        # and the old one's removal leaves neither two notices nor a lost one.
        "ALTER TABLE notices ADD COLUMN replaces TEXT",
    ),
    (
        # Every hold mailbox a login's engine has used (its server name), kept until it is
        # empty: one the config no longer names is released at the next start (engine.py).
        """CREATE TABLE hold_mailboxes (
            login TEXT NOT NULL, mailbox TEXT NOT NULL, first_used TEXT NOT NULL,
            PRIMARY KEY (login, mailbox))""",
    ),
    (
        # A login's first start: the mail already in INBOX then was tagged and left in place
        # (engine.py); how many messages, when, and the recent window triaged as new.
        """CREATE TABLE first_starts (
            login TEXT PRIMARY KEY, at TEXT NOT NULL, left_in_place INTEGER NOT NULL,
            window REAL NOT NULL)""",
    ),
    (
        # "Deliver this now" (deliver_now.py) for one held message, asked by the CLI or the
        # local page: queued first, served by `run` (or by the asker), marked started once
        # the message was found in a hold mailbox (so a redo after a cut knows the message
        # in INBOX is the one it moved), completed with the outcome the asker waits for.
        """CREATE TABLE deliver_requests (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, message_id TEXT NOT NULL,
            requested TEXT NOT NULL, started TEXT, mailbox TEXT, completed TEXT,
            outcome TEXT, detail TEXT)""",
    ),
    (
        # What the Accounts page shows of a filed message, kept when it is filed (filer.py):
        # the sender (in) or the first recipient and how many more (out), and the subject.
        # NULL in rows filed before: the page says so rather than guess.
        "ALTER TABLE filings ADD COLUMN peer TEXT",
        "ALTER TABLE filings ADD COLUMN subject TEXT",
    ),
    (
        # Follow-ups (followups.py): sent mail watched for an answer, once per Message-ID;
        # "returning" is written before the reminder's APPEND, so a restart looks for it first.
        """CREATE TABLE followups (
            login TEXT NOT NULL, message_id TEXT NOT NULL, recipients TEXT NOT NULL,
            subject TEXT NOT NULL, sent_at TEXT NOT NULL, due_at TEXT NOT NULL,
            state TEXT NOT NULL, answered_by TEXT, answered_at TEXT, returned_at TEXT,
            sender TEXT NOT NULL DEFAULT '', PRIMARY KEY (login, message_id))""",
        "CREATE INDEX followups_state_due ON followups (login, state, due_at)",
    ),
    (
        # Auto-replies (autoreply.py): one per outside sender per day, written before it is
        # sent; "sending" is written before each try, so a crash never sends one twice.
        """CREATE TABLE autoreplies (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, recipient TEXT NOT NULL,
            day TEXT NOT NULL, message_id TEXT, refs TEXT NOT NULL, subject TEXT NOT NULL,
            batch TEXT NOT NULL, release TEXT NOT NULL, queued_at TEXT NOT NULL,
            state TEXT NOT NULL, tries INTEGER NOT NULL, next_try TEXT NOT NULL, done TEXT,
            UNIQUE (login, recipient, day))""",
        "CREATE INDEX autoreplies_due ON autoreplies (login, state, next_try)",
    ),
    (
        # Snooze (snooze.py): each message noticed in a snooze mailbox, with when it comes
        # back; "returning" is written before its copy goes to INBOX, so a redo after a cut
        # looks for that copy before appending again. Cursors of the snooze mailboxes are in
        # ``cursors``.
        """CREATE TABLE snoozes (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, mailbox TEXT NOT NULL,
            box TEXT NOT NULL, uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
            message_id TEXT, noticed TEXT NOT NULL, due TEXT NOT NULL, state TEXT NOT NULL,
            done TEXT, UNIQUE (login, mailbox, uidvalidity, uid))""",
        "CREATE INDEX snoozes_due ON snoozes (login, state, due)",
    ),
    (
        # An account's sla (sla.py): a held message of that account is delivered at ``due``
        # unless its batch came first; "delivering" is written before it is marked and moved.
        """CREATE TABLE sla_due (
            id INTEGER PRIMARY KEY, login TEXT NOT NULL, message_id TEXT NOT NULL,
            batch TEXT NOT NULL, account TEXT NOT NULL, sla TEXT NOT NULL,
            decided_at TEXT NOT NULL, due TEXT NOT NULL, state TEXT NOT NULL, done TEXT,
            UNIQUE (login, message_id, decided_at))""",
        "CREATE INDEX sla_due_state ON sla_due (login, state, due)",
    ),
    (
        # Collision holds (collision.py): a reply kept back because a colleague answered the
        # thread; the same reply sent again within the window goes through, also after a
        # restart. ``key`` digests the sender, the message answered and the recipients.
        """CREATE TABLE collision_holds (
            login TEXT NOT NULL, key TEXT NOT NULL, held_at TEXT NOT NULL,
            PRIMARY KEY (login, key))""",
    ),
    (
        # What the Today page and `status` show of a snoozed message: its sender and subject,
        # read from its header when it is noticed in the snooze mailbox.
        "ALTER TABLE snoozes ADD COLUMN sender TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE snoozes ADD COLUMN subject TEXT NOT NULL DEFAULT ''",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
_UNREADABLE = (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)
_TIMES = frozenset(
    {"decided_at", "at", "scheduled", "started", "finished", "requested", "created", "next_try"}
    | {"filed_at", "updated", "since", "notice_sent", "planned", "appended"}
    | {"completed"}
)


class StoreError(Exception):
    """The state file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What triage did with one message and why, for ``explain`` and ``status``."""

    login: str
    mailbox: str
    uidvalidity: int
    uid: int
    message_id: str | None  # without <>
    label: str  # urgent, normal or bulk
    score: float | None  # p(urgent), when the model gave one
    reason: str
    batch: str | None  # None when delivered at once
    held: bool  # False for urgent, dry-run, or mail already read
    sender: str
    subject: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Correction:
    """A user action that contradicts a decision: training data for ``commsproxy train``."""

    login: str
    message_id: str | None
    kind: str  # rescue (held -> INBOX), demote (INBOX -> hold), flag (\Flagged on fresh mail)
    label: str  # what the user's action says is right
    previous: str | None  # the label commsproxy had given, if known
    sender: str
    subject: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Pause:
    """Triage of a login waits for its OAuth2 sign-in to be renewed (`commsproxy login`)."""

    login: str
    reason: str
    since: datetime  # its notice (and the old column notice_sent): see notices, notice.py


@dataclass(frozen=True, slots=True)
class Notice:
    """The notice in a login's INBOX (``appended``), or about to be (None: look for it)."""

    login: str
    message_id: str  # without <>
    reason: str
    planned: datetime
    appended: datetime | None
    replaces: str | None = None  # the Message-ID (without <>) of the notice it replaces


@dataclass(frozen=True, slots=True)
class Release:
    """One run of moving a batch's held mail back to the inbox."""

    id: int
    login: str
    batch: str
    scheduled: datetime | None  # the schedule time carried out; None for a manual release
    started: datetime
    finished: datetime | None
    moved: int


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """``commsproxy release --now`` asking the running proxy, which may be another process."""

    id: int
    login: str | None  # None for every login
    batch: str | None  # None for every batch
    requested: datetime


@dataclass(frozen=True, slots=True)
class DeliverRequest:
    """A request to deliver one held message now (``commsproxy deliver``, the local page)."""

    id: int
    login: str  # the login's key in the store
    message_id: str  # without <>
    requested: datetime
    started: datetime | None  # found held and about to move (a redo may find it in INBOX)
    mailbox: str | None  # the hold mailbox it was found in
    completed: datetime | None
    outcome: str | None  # "delivered" or "refused" (not held: ``detail`` says why)
    detail: str | None  # what happened, in words


@dataclass(frozen=True, slots=True)
class Filed:
    """A message put into (or found already in) an account folder."""

    login: str
    message_id: str | None
    account: str
    direction: str  # incoming or outgoing
    outcome: str  # copied, appended, present (a colleague's copy was there)
    reason: str
    filed_at: datetime
    peer: str | None = None  # in: the sender; out: the first recipient (and N more)
    subject: str | None = None  # decoded, bounded; None in rows filed before it was kept


@dataclass(frozen=True, slots=True)
class QueuedFiling:
    """A filing waiting for its (next) attempt."""

    id: int
    login: str
    account: str
    message_id: str | None
    content: bytes
    flags: str  # IMAP flags for the APPEND, space-separated
    direction: str
    reason: str
    created: datetime
    attempts: int
    next_try: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """A login's history with senders: how its first read went, how far Sent was read.

    ``state`` is "reading" during the first read and "ready" once the history is known.
    ``document`` is the history itself (JSON, names the correspondents); None while reading
    and in what :meth:`StateStore.history_status` returns.
    """

    login: str
    state: str
    started: datetime | None
    finished: datetime | None
    messages: int  # headers read at the first start
    folders: int  # folders looked into
    stopped: str | None  # "time" or "count" when the first read stopped before the end
    senders: int
    sent_mailbox: str | None
    sent_uidvalidity: int | None
    sent_uid: int | None  # the highest UID in Sent the history has seen
    updated: datetime
    document: str | None = None


_R = TypeVar(
    "_R",
    Decision,
    Correction,
    Release,
    ReleaseRequest,
    DeliverRequest,
    Filed,
    QueuedFiling,
    HistoryRecord,
    Pause,
    Notice,
)
_Args = tuple[object, ...] | dict[str, object]


class StateStore:
    """One connection to the state file, shareable between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        _create_private(path)
        try:
            self._db = sqlite3.connect(
                path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._db.row_factory = sqlite3.Row
        try:
            for pragma in ("busy_timeout = 5000", "journal_mode = WAL", "synchronous = NORMAL"):
                self._read(f"PRAGMA {pragma}")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, state_dir: Path) -> StateStore:
        return cls(state_dir / FILENAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def cursor(self, login: str, mailbox: str) -> tuple[int, int] | None:
        """Where triage got to: ``(uidvalidity, last_uid)``, or None for a mailbox never seen."""
        sql = "SELECT uidvalidity, last_uid FROM cursors WHERE login = ? AND mailbox = ?"
        rows = self._read(sql, (login, mailbox))
        return (rows[0][0], rows[0][1]) if rows else None

    def set_cursor(self, login: str, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (login, mailbox) DO UPDATE"
                " SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
                (login, mailbox, uidvalidity, last_uid),
            )

    def first_start(
        self,
        login: str,
        uidvalidity: int,
        last_uid: int,
        left_in_place: int,
        window: float,
        at: datetime,
    ) -> None:
        """The first start's end: INBOX's cursor and what was left in place, in one step, so
        a crash before it repeats the whole (harmless) first start."""
        with self._write() as db:
            db.execute(
                "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (login, mailbox) DO UPDATE"
                " SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
                (login, "INBOX", uidvalidity, last_uid),
            )
            db.execute(
                "INSERT OR REPLACE INTO first_starts VALUES (?, ?, ?, ?)",
                (login, _text(at), left_in_place, window),
            )

    def first_start_record(self, login: str) -> tuple[datetime, int, float] | None:
        """When the login's first start was, how many messages it left in place, the window."""
        sql = "SELECT at, left_in_place, window FROM first_starts WHERE login = ?"
        rows = self._read(sql, (login,))
        if not rows:
            return None
        at = _moment(rows[0][0])
        assert at is not None
        return at, int(rows[0][1]), float(rows[0][2])

    def record_decisions(self, decisions: Iterable[Decision]) -> None:
        """Log decisions in one transaction; a message decided again replaces its old row."""
        times: dict[datetime, str] = {}  # a step's decisions share their moment
        rows = [
            (d.login, d.mailbox, d.uidvalidity, d.uid, _message_id(d.message_id), d.label,
             d.score, d.reason, d.batch, d.held, d.sender, d.subject,
             times.get(d.decided_at) or times.setdefault(d.decided_at, _text(d.decided_at)))
            for d in decisions
        ]  # fmt: skip
        if rows:
            with self._write() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO decisions (login, mailbox, uidvalidity, uid,"
                    " message_id, label, score, reason, batch, held, sender, subject, decided_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

    def mark_gone(
        self, login: str, mailbox: str, uidvalidity: int, uids: Iterable[int], note: str
    ) -> None:
        """Messages decided on but gone before they were held (another client deleted or
        moved them): not held, and the reason says why, for ``explain``."""
        rows = [(note, login, mailbox, uidvalidity, uid) for uid in uids]
        if rows:
            with self._write() as db:
                db.executemany(
                    "UPDATE decisions SET held = 0, reason = reason || ' (' || ? || ')'"
                    " WHERE login = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?",
                    rows,
                )

    def word_reasons(
        self, login: str, mailbox: str, uidvalidity: int, worded: Iterable[tuple[int, str, str]]
    ) -> None:
        """Decisions recorded with the head of their reason get it in full: (uid, head, full)
        each; what was added after the head since (mark_gone's note) stays after it."""
        rows = [
            {"full": full, "head": head, "login": login, "mailbox": mailbox,
             "uidvalidity": uidvalidity, "uid": uid}
            for uid, head, full in worded
        ]  # fmt: skip
        if rows:
            with self._write() as db:
                db.executemany(
                    "UPDATE decisions SET reason = :full || substr(reason, length(:head) + 1)"
                    " WHERE login = :login AND mailbox = :mailbox AND uidvalidity = :uidvalidity"
                    " AND uid = :uid AND substr(reason, 1, length(:head)) = :head",
                    rows,
                )

    def decision_for_uid(
        self, login: str, mailbox: str, uidvalidity: int, uid: int
    ) -> Decision | None:
        sql = (
            "SELECT * FROM decisions"
            " WHERE login = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?"
        )
        return _first(self._records(Decision, sql, (login, mailbox, uidvalidity, uid)))

    def decisions_for_message_id(self, message_id: str) -> list[Decision]:
        sql = "SELECT * FROM decisions WHERE message_id = ? ORDER BY decided_at DESC, id DESC"
        return self._records(Decision, sql, (_message_id(message_id),))

    def latest_decision_by_message_id(self, login: str, message_id: str) -> Decision | None:
        sql = (
            "SELECT * FROM decisions WHERE login = ? AND message_id = ?"
            " ORDER BY decided_at DESC, id DESC LIMIT 1"
        )
        return _first(self._records(Decision, sql, (login, _message_id(message_id))))

    def recent_decisions(self, login: str | None = None, limit: int = 10) -> list[Decision]:
        sql = (
            "SELECT * FROM decisions WHERE (?1 IS NULL OR login = ?1)"
            " ORDER BY decided_at DESC, id DESC LIMIT ?2"
        )
        return self._records(Decision, sql, (login, limit))

    def decision_counts(self, login: str, since: datetime) -> dict[str, int]:
        sql = (
            "SELECT label, COUNT(*) FROM decisions WHERE login = ? AND decided_at >= ?"
            " GROUP BY label"
        )
        return {row[0]: row[1] for row in self._read(sql, (login, _text(since)))}

    def start_release(
        self, login: str, batch: str, scheduled: datetime | None, started: datetime
    ) -> int:
        """Log a release before it moves mail, so one cut short shows up as unfinished."""
        return self._insert(
            "INSERT INTO releases (login, batch, scheduled, started, moved) VALUES (?, ?, ?, ?, 0)",
            (login, batch, _text(scheduled) if scheduled else None, _text(started)),
        )

    def finish_release(self, release_id: int, moved: int, finished: datetime) -> None:
        sql = "UPDATE releases SET moved = ?, finished = ? WHERE id = ?"
        self._update(sql, (moved, _text(finished), release_id), f"release {release_id}")

    def unfinished_releases(self, login: str) -> list[Release]:
        sql = "SELECT * FROM releases WHERE login = ? AND finished IS NULL ORDER BY started, id"
        return self._records(Release, sql, (login,))

    def last_release(self, login: str, batch: str) -> Release | None:
        sql = (
            "SELECT * FROM releases WHERE login = ? AND batch = ?"
            " ORDER BY started DESC, id DESC LIMIT 1"
        )
        return _first(self._records(Release, sql, (login, batch)))

    def last_scheduled_release(self, login: str, batch: str) -> datetime | None:
        sql = "SELECT MAX(scheduled) FROM releases WHERE login = ? AND batch = ?"
        return _moment(self._read(sql, (login, batch))[0][0])

    def recent_releases(self, login: str | None = None, limit: int = 10) -> list[Release]:
        sql = (
            "SELECT * FROM releases WHERE (?1 IS NULL OR login = ?1)"
            " ORDER BY started DESC, id DESC LIMIT ?2"
        )
        return self._records(Release, sql, (login, limit))

    def note_hold_mailboxes(self, login: str, mailboxes: Iterable[str], at: datetime) -> None:
        """The engine holds mail in ``mailboxes`` (server names); known ones stay as they are."""
        rows = [(login, mailbox, _text(at)) for mailbox in mailboxes]
        if rows:
            with self._write() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO hold_mailboxes (login, mailbox, first_used)"
                    " VALUES (?, ?, ?)",
                    rows,
                )

    def hold_mailboxes(self, login: str) -> list[str]:
        """Every hold mailbox of ``login`` on record, in the order first used."""
        sql = "SELECT mailbox FROM hold_mailboxes WHERE login = ? ORDER BY first_used, mailbox"
        return [str(row[0]) for row in self._read(sql, (login,))]

    def forget_hold_mailbox(self, login: str, mailbox: str) -> None:
        """A hold mailbox no batch uses any more, and empty: nothing left to release there."""
        with self._write() as db:
            db.execute(
                "DELETE FROM hold_mailboxes WHERE login = ? AND mailbox = ?", (login, mailbox)
            )

    def record_correction(self, correction: Correction) -> None:
        self._insert(
            "INSERT INTO corrections (login, message_id, kind, label, previous, sender, subject,"
            " at) VALUES (:login, :message_id, :kind, :label, :previous, :sender, :subject, :at)",
            _columns(correction),
        )

    def has_correction(self, login: str, message_id: str, kind: str) -> bool:
        sql = "SELECT 1 FROM corrections WHERE login = ? AND message_id = ? AND kind = ? LIMIT 1"
        return bool(self._read(sql, (login, _message_id(message_id), kind)))

    def corrections(self, login: str | None = None) -> list[Correction]:
        sql = "SELECT * FROM corrections WHERE (?1 IS NULL OR login = ?1) ORDER BY at, id"
        return self._records(Correction, sql, (login,))

    def correction_labels(self, login: str | None = None) -> dict[str, str]:
        """What the user said each message is; a later correction overrides an earlier one."""
        sql = (
            "SELECT message_id, label FROM corrections"
            " WHERE message_id IS NOT NULL AND (?1 IS NULL OR login = ?1) ORDER BY at, id"
        )
        return {row[0]: row[1] for row in self._read(sql, (login,))}

    def request_release(self, login: str | None, batch: str | None, at: datetime) -> int:
        """Ask the running proxy to release now; None for login or batch means all of them."""
        sql = "INSERT INTO release_requests (login, batch, requested) VALUES (?, ?, ?)"
        return self._insert(sql, (login, batch, _text(at)))

    def pending_release_requests(self) -> list[ReleaseRequest]:
        sql = "SELECT * FROM release_requests WHERE completed IS NULL ORDER BY requested, id"
        return self._records(ReleaseRequest, sql)

    def complete_release_request(self, request_id: int, at: datetime) -> None:
        sql = "UPDATE release_requests SET completed = COALESCE(completed, ?) WHERE id = ?"
        self._update(sql, (_text(at), request_id), f"release request {request_id}")

    def request_delivery(self, login: str, message_id: str, at: datetime) -> int:
        """Ask for one held message to be delivered to INBOX now (deliver_now.py)."""
        sql = "INSERT INTO deliver_requests (login, message_id, requested) VALUES (?, ?, ?)"
        return self._insert(sql, (login, _message_id(message_id), _text(at)))

    def pending_deliveries(self) -> list[DeliverRequest]:
        sql = "SELECT * FROM deliver_requests WHERE completed IS NULL ORDER BY requested, id"
        return self._records(DeliverRequest, sql)

    def delivery(self, request_id: int) -> DeliverRequest | None:
        sql = "SELECT * FROM deliver_requests WHERE id = ?"
        return _first(self._records(DeliverRequest, sql, (request_id,)))

    def start_delivery(self, request_id: int, mailbox: str, at: datetime) -> None:
        """Found held in ``mailbox``: the move is about to start (kept on a redo)."""
        sql = "UPDATE deliver_requests SET started = COALESCE(started, ?), mailbox = ? WHERE id = ?"
        self._update(sql, (_text(at), mailbox, request_id), f"deliver request {request_id}")

    def complete_delivery(self, request_id: int, outcome: str, detail: str, at: datetime) -> None:
        sql = (
            "UPDATE deliver_requests SET completed = ?, outcome = ?, detail = ?"
            " WHERE id = ? AND completed IS NULL"
        )
        with self._write() as db:
            db.execute(sql, (_text(at), outcome, detail, request_id))

    def delivered_since(self, login: str | None, since: datetime) -> list[DeliverRequest]:
        """Messages delivered on request since ``since`` (no longer held, whatever the
        decision said)."""
        sql = (
            "SELECT * FROM deliver_requests WHERE outcome = 'delivered' AND completed >= ?1"
            " AND (?2 IS NULL OR login = ?2) ORDER BY completed, id"
        )
        return self._records(DeliverRequest, sql, (_text(since), login))

    # -- filing ---------------------------------------------------------------------------------

    def record_filings(self, filings: Iterable[Filed]) -> None:
        rows = [_columns(filed) for filed in filings]
        if rows:
            with self._write() as db:
                db.executemany(
                    "INSERT INTO filings (login, message_id, account, direction, outcome, reason,"
                    " filed_at, peer, subject) VALUES (:login, :message_id, :account, :direction,"
                    " :outcome, :reason, :filed_at, :peer, :subject)",
                    rows,
                )

    def filings_for_message_id(self, message_id: str) -> list[Filed]:
        sql = "SELECT * FROM filings WHERE message_id = ? ORDER BY filed_at DESC, id DESC"
        return self._records(Filed, sql, (_message_id(message_id),))

    def queue_filing(
        self,
        login: str,
        account: str,
        message_id: str | None,
        content: bytes,
        flags: str,
        direction: str,
        reason: str,
        at: datetime,
    ) -> int:
        return self._insert(
            "INSERT INTO filing_queue (login, account, message_id, content, flags, direction,"
            " reason, created, attempts, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (login, account, _message_id(message_id), content, flags, direction, reason,
             _text(at), _text(at)),
        )  # fmt: skip

    def due_filings(self, login: str, now: datetime, limit: int = 50) -> list[QueuedFiling]:
        sql = (
            "SELECT * FROM filing_queue WHERE login = ? AND next_try <= ?"
            " ORDER BY next_try, id LIMIT ?"
        )
        return self._records(QueuedFiling, sql, (login, _text(now), limit))

    def queued_filings(self, login: str | None = None) -> list[QueuedFiling]:
        sql = "SELECT * FROM filing_queue WHERE (?1 IS NULL OR login = ?1) ORDER BY id"
        return self._records(QueuedFiling, sql, (login,))

    def filing_failed(self, filing_id: int, error: str, next_try: datetime) -> None:
        sql = (
            "UPDATE filing_queue SET attempts = attempts + 1, last_error = ?, next_try = ?"
            " WHERE id = ?"
        )
        self._update(sql, (error, _text(next_try), filing_id), f"queued filing {filing_id}")

    def filing_done(self, filing_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM filing_queue WHERE id = ?", (filing_id,))

    def account_folder(self, login: str, key: str) -> str | None:
        """The folder name this login last used for account ``key`` (to notice renames)."""
        rows = self._read(
            "SELECT name FROM account_folders WHERE login = ? AND key = ?", (login, key)
        )
        return str(rows[0][0]) if rows else None

    def set_account_folder(self, login: str, key: str, name: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO account_folders VALUES (?, ?, ?) ON CONFLICT (login, key)"
                " DO UPDATE SET name = excluded.name",
                (login, key, name),
            )

    def save_history(self, record: HistoryRecord) -> None:
        """Replace the login's history record (with its document, when it has one)."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO histories (login, state, started, finished, messages,"
                " folders, stopped, senders, sent_mailbox, sent_uidvalidity, sent_uid, updated,"
                " document) VALUES (:login, :state, :started, :finished, :messages, :folders,"
                " :stopped, :senders, :sent_mailbox, :sent_uidvalidity, :sent_uid, :updated,"
                " :document)",
                _columns(record),
            )

    def history(self, login: str) -> HistoryRecord | None:
        """The login's history record, document included."""
        sql = "SELECT * FROM histories WHERE login = ?"
        return _first(self._records(HistoryRecord, sql, (login,)))

    def history_status(self, login: str) -> HistoryRecord | None:
        """The same without the document: for ``status``, which never shows its contents."""
        sql = (
            "SELECT login, state, started, finished, messages, folders, stopped, senders,"
            " sent_mailbox, sent_uidvalidity, sent_uid, updated, NULL AS document"
            " FROM histories WHERE login = ?"
        )
        return _first(self._records(HistoryRecord, sql, (login,)))

    def pause(self, login: str, reason: str, since: datetime) -> Pause:
        """Triage of ``login`` waits for a new sign-in; the first reason and time are kept."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO pauses (login, reason, since) VALUES (?, ?, ?)",
                (login, reason, _text(since)),
            )
        paused = self.paused(login)
        assert paused is not None
        return paused

    def paused(self, login: str) -> Pause | None:
        return _first(self._records(Pause, "SELECT * FROM pauses WHERE login = ?", (login,)))

    def resume(self, login: str) -> Pause | None:
        """The pause is over (a sign-in works again); returns what it was, if any."""
        paused = self.paused(login)
        if paused is not None:
            with self._write() as db:
                db.execute("DELETE FROM pauses WHERE login = ?", (login,))
        return paused

    # -- health and notices ------------------------------------------------------------------

    def save_health(self, health: Health, pid: int, at: datetime) -> None:
        decided, release = health.last_decision, health.next_release
        read, limit = health.history or (None, None)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO health VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (health.login, health.state.value, _text(health.since), health.reason,
                 health.todo, _text(health.failing_since) if health.failing_since else None,
                 read, limit, _text(decided[0]) if decided else None,
                 decided[1] if decided else None, release[0] if release else None,
                 _text(release[1]) if release else None, pid, _text(at)),
            )  # fmt: skip

    def health(self, login: str) -> tuple[Health, int, datetime] | None:
        """The login's health as ``run`` (process ``pid``) last wrote it, and when."""
        rows = self._read("SELECT * FROM health WHERE login = ?", (login,))
        if not rows:
            return None
        row = rows[0]

        def moment(name: str) -> datetime | None:
            return _moment(row[name])

        decided_at, release_at = moment("decided_at"), moment("release_at")
        health = Health(
            login=row["login"],
            state=State(row["state"]),
            since=_moment(row["since"]) or datetime.now(UTC),
            reason=row["reason"],
            todo=row["todo"],
            failing_since=moment("failing_since"),
            history=None
            if row["history_read"] is None
            else (row["history_read"], row["history_limit"]),
            last_decision=None if decided_at is None else (decided_at, row["decision"]),
            next_release=None if release_at is None else (row["release_batch"], release_at),
        )
        return health, row["pid"], _moment(row["updated"]) or health.since

    def notice(self, login: str) -> Notice | None:
        return _first(self._records(Notice, "SELECT * FROM notices WHERE login = ?", (login,)))

    def plan_notice(self, login: str, message_id: str, reason: str, at: datetime) -> Notice:
        """Record the notice about to be appended; an existing one is kept as it is."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO notices (login, message_id, reason, planned)"
                " VALUES (?, ?, ?, ?)",
                (login, _message_id(message_id), reason, _text(at)),
            )
        notice = self.notice(login)
        assert notice is not None
        return notice

    def notice_appended(self, login: str, at: datetime) -> None:
        sql = "UPDATE notices SET appended = COALESCE(appended, ?) WHERE login = ?"
        self._update(sql, (_text(at), login), "notice")

    def plan_replacement(self, login: str, message_id: str, reason: str, at: datetime) -> Notice:
        """Record a notice about to replace the appended one, which it names until removed.

        A replacement planned but not appended yet keeps the notice it replaces."""
        with self._write() as db:
            db.execute(
                "UPDATE notices SET replaces = CASE WHEN appended IS NULL THEN replaces"
                " ELSE message_id END, message_id = ?, reason = ?, planned = ?, appended = NULL"
                " WHERE login = ?",
                (_message_id(message_id), reason, _text(at), login),
            )
        notice = self.notice(login)
        assert notice is not None
        return notice

    def notice_replaced(self, login: str) -> None:
        """The notice it replaced is out of INBOX."""
        self._update("UPDATE notices SET replaces = NULL WHERE login = ?", (login,), "notice")

    def notice_removed(self, login: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM notices WHERE login = ?", (login,))

    def _migrate(self) -> None:
        """Bring an older file up to date; refuse a file from a newer commsproxy."""
        if self._read("PRAGMA user_version")[0][0] == SCHEMA_VERSION:
            return
        with self._write() as db:
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, but this commsproxy knows only"
                    f" up to {SCHEMA_VERSION}; upgrade commsproxy or delete the file"
                    " (it is only a cache)"
                )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Take the write lock up front, so a concurrent writer waits rather than fails mid-way."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise

    def _read(self, sql: str, args: _Args = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _records(self, cls: type[_R], sql: str, args: _Args = ()) -> list[_R]:
        names = [field.name for field in fields(cls)]
        return [
            cls(**{name: _field(name, row[name]) for name in names})
            for row in self._read(sql, args)
        ]

    def _insert(self, sql: str, args: _Args) -> int:
        with self._write() as db:
            row_id = db.execute(sql, args).lastrowid
        if row_id is None:
            raise StoreError(f"{self.path}: SQLite returned no row id for an insert")
        return row_id

    def _update(self, sql: str, args: _Args, what: str) -> None:
        with self._write() as db:
            if db.execute(sql, args).rowcount == 0:
                raise StoreError(f"{self.path} has no {what}")

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _UNREADABLE:
            return StoreError(
                f"{self.path} is not a usable SQLite database ({exc}); it is only a cache,"
                " so delete it and commsproxy will start a new one"
            )
        return StoreError(f"state store {self.path}: {exc}")

    # -- the local page (web/): read-only views ----------------------------------------------

    def held_now(self, login: str, batches: Iterable[str]) -> list[Decision]:
        """Messages held for ``login`` that nothing has brought back yet, by batch and time.

        A held decision counts until a finished release of its batch that started after it,
        or a correction of the same message after it (the user dragged or flagged it, or had
        it delivered), or its account's sla delivering it (sla.py). Only decisions since the
        oldest latest release of ``batches`` (the configured ones) are read, so the answer
        costs the same after a year of mail; a batch no longer configured was released at the
        start that dropped it (left_behind.py).
        """
        cuts = {
            str(row[0]): str(row[1])
            for row in self._read(
                "SELECT batch, MAX(started) FROM releases WHERE login = ? AND finished IS NOT NULL"
                " GROUP BY batch",
                (login,),
            )
        }
        since = min((cuts.get(batch, "") for batch in batches), default="")
        sql = (
            "SELECT * FROM decisions d WHERE d.login = ? AND d.decided_at >= ? AND d.held = 1"
            " AND d.batch IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM releases r WHERE r.login = d.login"
            " AND r.batch = d.batch AND r.finished IS NOT NULL AND r.started >= d.decided_at)"
            " AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.login = d.login"
            " AND c.message_id = d.message_id AND c.at >= d.decided_at)"
            " AND NOT EXISTS (SELECT 1 FROM sla_due s WHERE s.login = d.login"
            " AND s.message_id = d.message_id AND s.decided_at = d.decided_at"
            " AND s.state = 'delivered')"
            " ORDER BY d.batch, d.decided_at, d.id"
        )
        return self._records(Decision, sql, (login, since))

    def decisions_since(self, since: datetime) -> list[Decision]:
        """Every decision from ``since`` on, oldest first (the page's charts and counts)."""
        sql = "SELECT * FROM decisions WHERE decided_at >= ? ORDER BY decided_at, id"
        return self._records(Decision, sql, (_text(since),))

    def held_counts_since(self, since: datetime) -> tuple[int, int]:
        """How many decisions from ``since`` on held their message, and how many did not."""
        sql = "SELECT held, COUNT(*) FROM decisions WHERE decided_at >= ? GROUP BY held"
        counts = {bool(row[0]): int(row[1]) for row in self._read(sql, (_text(since),))}
        return counts.get(True, 0), counts.get(False, 0)

    def releases_since(self, since: datetime) -> list[Release]:
        sql = "SELECT * FROM releases WHERE started >= ? ORDER BY started, id"
        return self._records(Release, sql, (_text(since),))

    def corrections_since(self, since: datetime, limit: int = 1000) -> list[Correction]:
        """The user's corrections from ``since`` on, newest first."""
        sql = "SELECT * FROM corrections WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?"
        return self._records(Correction, sql, (_text(since), limit))

    def recent_filings(self, limit: int = 500) -> list[Filed]:
        """The latest filings into account folders, newest first."""
        sql = "SELECT * FROM filings ORDER BY filed_at DESC, id DESC LIMIT ?"
        return self._records(Filed, sql, (limit,))

    # -- follow-ups (followups.py): sent mail waiting for an answer ---------------------------

    def watch_followup(self, followup: FollowUp) -> bool:
        """Watch a sent message; False when its Message-ID is watched (or was) already."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO followups (login, message_id, recipients, subject,"
                " sent_at, due_at, state, sender) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (followup.login, _message_id(followup.message_id), "\n".join(followup.recipients),
                 followup.subject, _text(followup.sent_at), _text(followup.due_at),
                 followup.state, followup.sender),
            )  # fmt: skip
            return cursor.rowcount > 0

    def followups(
        self, login: str | None = None, states: Iterable[str] = ("waiting", "returning")
    ) -> list[FollowUp]:
        """Follow-ups in these states (of one login, or all), by due time."""
        wanted = "," + ",".join(states) + ","
        sql = (
            "SELECT * FROM followups WHERE instr(?1, ',' || state || ',') > 0"
            " AND (?2 IS NULL OR login = ?2) ORDER BY due_at, sent_at, message_id"
        )
        return [_followup(row) for row in self._read(sql, (wanted, login))]

    def followup(self, login: str, message_id: str) -> FollowUp | None:
        sql = "SELECT * FROM followups WHERE login = ? AND message_id = ?"
        rows = self._read(sql, (login, _message_id(message_id)))
        return _followup(rows[0]) if rows else None

    def followup_answered(self, login: str, message_id: str, by: str, at: datetime) -> bool:
        """A reply came; False when it was answered (or cancelled) already."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE followups SET state = 'answered', answered_by = ?, answered_at = ?"
                " WHERE login = ? AND message_id = ? AND state IN ('waiting', 'returning',"
                " 'returned')",
                (by, _text(at), login, _message_id(message_id)),
            )
            return cursor.rowcount > 0

    def followup_state(
        self, login: str, message_id: str, state: str, at: datetime | None = None
    ) -> None:
        """Move a follow-up on: "returning" (before the APPEND), "returned" (``at``: after
        it), "cancelled"."""
        sql = (
            "UPDATE followups SET state = ?, returned_at = COALESCE(?, returned_at)"
            " WHERE login = ? AND message_id = ?"
        )
        args = (state, _text(at) if at else None, login, _message_id(message_id))
        self._update(sql, args, f"follow-up {message_id}")

    def followups_returned_since(self, login: str, since: datetime) -> list[FollowUp]:
        sql = (
            "SELECT * FROM followups WHERE login = ? AND returned_at >= ?"
            " ORDER BY returned_at, message_id"
        )
        return [_followup(row) for row in self._read(sql, (login, _text(since)))]

    # -- snooze (snooze.py) --------------------------------------------------------------------

    def note_snoozed(
        self,
        login: str,
        mailbox: str,
        box: str,
        uidvalidity: int,
        found: Iterable[tuple[int, str | None]],
        noticed: datetime,
        due: datetime,
    ) -> None:
        """Messages (UID, Message-ID) seen in a snooze mailbox, due back at ``due``; a UID
        known already keeps its record."""
        rows = [
            (login, mailbox, box, uidvalidity, uid, _message_id(mid), _text(noticed), _text(due))
            for uid, mid in found
        ]
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO snoozes (login, mailbox, box, uidvalidity, uid,"
                " message_id, noticed, due, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'waiting')",
                rows,
            )

    def snoozed(self, login: str) -> list[Snooze]:
        """A login's snoozed messages not back yet (waiting or returning), soonest first."""
        sql = (
            "SELECT * FROM snoozes WHERE login = ? AND state IN ('waiting', 'returning')"
            " ORDER BY due, id"
        )
        return [_snooze(row) for row in self._read(sql, (login,))]

    def set_snooze_state(self, snooze_id: int, state: str, at: datetime) -> None:
        """``returning`` (before its copy goes to INBOX), ``returned`` or ``forgotten``."""
        done = None if state == "returning" else _text(at)
        sql = "UPDATE snoozes SET state = ?, done = ? WHERE id = ?"
        self._update(sql, (state, done, snooze_id), f"snooze {snooze_id}")

    # -- sla (sla.py) --------------------------------------------------------------------------

    def note_sla(self, entries: Iterable[SlaDue]) -> None:
        """Held messages of an account with an sla, each due at its limit (once per decision)."""
        rows = [
            (e.login, e.message_id, e.batch, e.account, e.sla, _text(e.decided_at), _text(e.due))
            for e in entries
        ]
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO sla_due (login, message_id, batch, account, sla,"
                " decided_at, due, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting')",
                rows,
            )

    def sla_pending(self, login: str) -> list[SlaDue]:
        """A login's sla limits not settled yet (waiting or delivering), soonest first."""
        sql = (
            "SELECT * FROM sla_due WHERE login = ? AND state IN ('waiting', 'delivering')"
            " ORDER BY due, id"
        )
        return [_sla_due(row) for row in self._read(sql, (login,))]

    def set_sla_state(self, sla_id: int, state: str, at: datetime) -> None:
        """``delivering`` (before it is marked and moved), then ``delivered``, ``released``
        (its batch came first) or ``gone`` (not held any more)."""
        done = None if state == "delivering" else _text(at)
        sql = "UPDATE sla_due SET state = ?, done = ? WHERE id = ?"
        self._update(sql, (state, done, sla_id), f"sla limit {sla_id}")

    def sla_settled(self, login: str, state: str, since: datetime) -> list[SlaDue]:
        """Limits settled as ``state`` from ``since`` on (e.g. delivered at their sla today)."""
        sql = "SELECT * FROM sla_due WHERE login = ? AND state = ? AND done >= ? ORDER BY done"
        return [_sla_due(row) for row in self._read(sql, (login, state, _text(since)))]

    # -- auto-replies (autoreply.py) ----------------------------------------------------------

    def queue_autoreply(self, reply: AutoReply) -> bool:
        """Queue a reply; False when ``reply.recipient`` has one for ``reply.day`` already."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO autoreplies (login, recipient, day, message_id, refs,"
                " subject, batch, release, queued_at, state, tries, next_try)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (reply.login, reply.recipient, reply.day, reply.message_id,
                 " ".join(reply.references), reply.subject, reply.batch, _text(reply.release),
                 _text(reply.queued_at), reply.state, reply.tries,
                 _text(reply.next_try or reply.queued_at)),
            )  # fmt: skip
            return cursor.rowcount > 0

    def autoreplies(
        self, login: str, state: str, before: datetime | None = None, limit: int = 1000
    ) -> list[AutoReply]:
        """A login's replies in ``state`` (due by ``before``, if given), soonest first."""
        sql = (
            "SELECT * FROM autoreplies WHERE login = ? AND state = ?"
            " AND (? IS NULL OR next_try <= ?) ORDER BY next_try, id LIMIT ?"
        )
        until = _text(before) if before is not None else None
        return [_autoreply(row) for row in self._read(sql, (login, state, until, until, limit))]

    def set_autoreply(
        self, reply_id: int, state: str, at: datetime, tries: int, next_try: datetime
    ) -> None:
        """Move a reply on: "sending" (before a try), "queued" (to try again at
        ``next_try``), "sent", "failed", "late" or "unsure" (``at``: when it ended)."""
        done = None if state in ("queued", "sending") else _text(at)
        sql = "UPDATE autoreplies SET state = ?, tries = ?, next_try = ?, done = ? WHERE id = ?"
        self._update(sql, (state, tries, _text(next_try), done, reply_id), f"auto-reply {reply_id}")

    def autoreplies_done_since(self, login: str, state: str, since: datetime) -> int:
        """How many replies ended as ``state`` from ``since`` on (e.g. sent today)."""
        sql = "SELECT COUNT(*) FROM autoreplies WHERE login = ? AND state = ? AND done >= ?"
        return int(self._read(sql, (login, state, _text(since)))[0][0])

    # -- collision holds (collision.py) --------------------------------------------------------

    def hold_collision(self, login: str, key: str, at: datetime, forget_before: datetime) -> None:
        """A reply kept back at ``at``; holds older than ``forget_before`` are dropped."""
        with self._write() as db:
            db.execute("DELETE FROM collision_holds WHERE held_at < ?", (_text(forget_before),))
            db.execute(
                "INSERT OR REPLACE INTO collision_holds (login, key, held_at) VALUES (?, ?, ?)",
                (login, key, _text(at)),
            )

    def collision_held_at(self, login: str, key: str) -> datetime | None:
        """When this reply was last kept back, if it was."""
        rows = self._read(
            "SELECT held_at FROM collision_holds WHERE login = ? AND key = ?", (login, key)
        )
        return _moment(rows[0][0]) if rows else None

    # -- what the Today page and `status` show of snoozed mail ---------------------------------

    def describe_snoozed(
        self,
        login: str,
        mailbox: str,
        uidvalidity: int,
        about: Iterable[tuple[int, str, str]],
    ) -> None:
        """The sender and subject of messages (UID, sender, subject) noted in a snooze
        mailbox, for showing them; a record described already keeps what it has."""
        rows = [(who, subject, login, mailbox, uidvalidity, uid) for uid, who, subject in about]
        with self._write() as db:
            db.executemany(
                "UPDATE snoozes SET sender = ?, subject = ? WHERE login = ? AND mailbox = ?"
                " AND uidvalidity = ? AND uid = ? AND sender = '' AND subject = ''",
                rows,
            )

    def snoozes_returned_since(self, login: str, since: datetime) -> list[Snooze]:
        """Snoozed messages back in INBOX from ``since`` on, in the order they came back."""
        sql = (
            "SELECT * FROM snoozes WHERE login = ? AND state = 'returned' AND done >= ?"
            " ORDER BY done, id"
        )
        return [_snooze(row) for row in self._read(sql, (login, _text(since)))]


def _create_private(path: Path) -> None:
    """The file holds senders and subjects, so only the user may read it or its directory."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.chmod(0o700)
        # Only a file that is not there yet is opened here: closing any descriptor of the file
        # drops every POSIX lock this process holds on it, so a second StateStore in a process
        # (the local page, an action inside run) would strip run's own connection of its
        # locks; another process could then take the file as unused and checkpoint and delete
        # the WAL that run still writes to (SQLite's "how to corrupt" list, 2.2).
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create the state file {path}: {exc}") from exc


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text or None


def _text(moment: datetime) -> str:
    if moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _field(name: str, value: Any) -> Any:
    """A column back as its record field: text into aware times, 0/1 into a flag."""
    if name in _TIMES:
        return _moment(value)
    return bool(value) if name == "held" else value


def _columns(record: Decision | Correction | Filed | HistoryRecord) -> dict[str, object]:
    values = {field.name: getattr(record, field.name) for field in fields(record)}
    if not isinstance(record, HistoryRecord):
        values["message_id"] = _message_id(record.message_id)
    return {name: _text(v) if isinstance(v, datetime) else v for name, v in values.items()}


def _first(records: list[_R]) -> _R | None:
    return records[0] if records else None


# -- snooze and sla records (appended with their tables) ------------------------------------


@dataclass(frozen=True, slots=True)
class Snooze:
    """A message in a snooze mailbox (``mailbox``, the server name; ``box``, its config
    name), due back in INBOX at ``due``."""

    id: int
    login: str
    mailbox: str
    box: str
    uidvalidity: int
    uid: int
    message_id: str | None  # without <>
    noticed: datetime
    due: datetime
    state: str  # waiting, returning, returned, forgotten
    done: datetime | None = None
    sender: str = ""  # as the Today page shows it ("Anna <anna@example.org>"); "" if unknown
    subject: str = ""


@dataclass(frozen=True, slots=True)
class SlaDue:
    """A held message of an account with an sla: delivered at ``due`` unless released."""

    login: str
    message_id: str  # without <>
    batch: str
    account: str  # the account's folder name
    sla: str  # the limit in words ("1h"), for the log
    decided_at: datetime
    due: datetime
    state: str = "waiting"  # waiting, delivering, delivered, released, gone
    done: datetime | None = None
    id: int = 0  # 0 until stored


def _snooze(row: sqlite3.Row) -> Snooze:
    return Snooze(
        id=row["id"], login=row["login"], mailbox=row["mailbox"], box=row["box"],
        uidvalidity=row["uidvalidity"], uid=row["uid"], message_id=row["message_id"],
        noticed=datetime.fromisoformat(row["noticed"]), due=datetime.fromisoformat(row["due"]),
        state=row["state"], done=_moment(row["done"]), sender=row["sender"],
        subject=row["subject"],
    )  # fmt: skip


def _sla_due(row: sqlite3.Row) -> SlaDue:
    return SlaDue(
        id=row["id"], login=row["login"], message_id=row["message_id"], batch=row["batch"],
        account=row["account"], sla=row["sla"],
        decided_at=datetime.fromisoformat(row["decided_at"]),
        due=datetime.fromisoformat(row["due"]), state=row["state"], done=_moment(row["done"]),
    )  # fmt: skip


# -- follow-ups -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A sent message watched for an answer (followups.py)."""

    login: str
    message_id: str  # without <>
    recipients: tuple[str, ...]  # the outside recipients watched for
    subject: str
    sent_at: datetime
    due_at: datetime
    state: str  # waiting, answered, returning, returned, cancelled
    answered_by: str | None = None  # the reply's sender
    answered_at: datetime | None = None
    returned_at: datetime | None = None
    sender: str = ""  # the From of the sent message: the user's address


def _followup(row: sqlite3.Row) -> FollowUp:
    def moment(name: str) -> datetime | None:
        return _moment(row[name])

    sent_at, due_at = moment("sent_at"), moment("due_at")
    assert sent_at is not None
    assert due_at is not None
    return FollowUp(
        row["login"], row["message_id"], tuple(filter(None, row["recipients"].split("\n"))),
        row["subject"], sent_at, due_at, row["state"], row["answered_by"],
        moment("answered_at"), moment("returned_at"), row["sender"],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AutoReply:
    """An auto-reply to held mail (autoreply.py): to whom, about what, and how it went."""

    login: str
    recipient: str  # lower-case; one reply per recipient per day
    day: str  # the user's calendar day, ISO (2026-12-07)
    message_id: str | None  # the original's, "<...>"
    references: tuple[str, ...]  # the original's References, then its Message-ID
    subject: str  # the original's, decoded
    batch: str  # the batch that holds the original
    release: datetime  # when that batch is released next: when the mail will be read
    queued_at: datetime
    state: str = "queued"  # queued, sending, sent, failed, late, unsure
    tries: int = 0
    next_try: datetime | None = None  # None: at once (queued_at)
    id: int = 0  # the store's row id, once stored

    def __post_init__(self) -> None:
        if self.next_try is None:
            object.__setattr__(self, "next_try", self.queued_at)


def _autoreply(row: sqlite3.Row) -> AutoReply:
    release, queued_at = _moment(row["release"]), _moment(row["queued_at"])
    assert release is not None
    assert queued_at is not None
    return AutoReply(
        row["login"], row["recipient"], row["day"], row["message_id"],
        tuple(row["refs"].split()), row["subject"], row["batch"], release, queued_at,
        row["state"], row["tries"], _moment(row["next_try"]), row["id"],
    )  # fmt: skip
