"""The snooze part's steps against a fake server: noticing cheaply, returning once, every redo.

The fake keeps mailboxes as UID -> (flags, bytes) and answers only what the part asks, so each
state a cut can leave behind (a record "returning" with or without its copy in INBOX, the
original gone, marked deleted) is set up directly and the next step is checked.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.config import SnoozeConfig, TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.responses import Fetched, MailboxInfo
from commsproxy.timespec import parse_when
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.snooze import Snoozes
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.upstream import CommandRefused, status_each

NOW = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
BOX = "Snoozed/Soon"


def message(n: int) -> bytes:
    return f"From: a@x\r\nMessage-ID: <m{n}@x>\r\nSubject: s{n}\r\n\r\nText {n}.\r\n".encode()


@dataclass
class Box:
    validity: int = 7
    next_uid: int = 1
    mail: dict[int, tuple[set[str], bytes]] = field(default_factory=dict)

    def add(self, flags: Iterable[str], text: bytes) -> int:
        uid, self.next_uid = self.next_uid, self.next_uid + 1
        self.mail[uid] = (set(flags), text)
        return uid


class FakeServer:
    """What Snoozes asks of the worker, on mailboxes in memory."""

    def __init__(self) -> None:
        self.boxes: dict[str, Box] = {"INBOX": Box(validity=1)}
        self.selected: str | None = "INBOX"
        self.closed = False
        self.sent: list[str] = []
        self.refuse_append = False

    async def server_name(self, path: str) -> str:
        return path

    async def ensure_mailbox(self, name: str) -> bool:
        self.sent.append(f"ENSURE {name}")
        return self.boxes.setdefault(name, Box()) is None

    async def status(self, name: str, items: str) -> dict[str, int]:
        self.sent.append(f"STATUS {name}")
        if name not in self.boxes:
            raise CommandRefused(f"no mailbox {name}")
        box = self.boxes[name]
        return {"MESSAGES": len(box.mail), "UIDNEXT": box.next_uid, "UIDVALIDITY": box.validity}

    async def statuses(
        self, names: Sequence[str], items: str = "(MESSAGES UIDNEXT UIDVALIDITY)"
    ) -> dict[str, dict[str, int]]:
        """Upstream.statuses where the server has no LIST-STATUS: one STATUS each."""
        return await status_each(self.status, names, items)

    async def select(self, name: str) -> MailboxInfo:
        self.sent.append(f"SELECT {name}")
        if name not in self.boxes:
            raise CommandRefused(f"no mailbox {name}")
        self.selected = name
        box = self.boxes[name]
        return MailboxInfo(len(box.mail), box.validity, box.next_uid)

    def _here(self) -> Box:
        assert self.selected is not None
        return self.boxes[self.selected]

    async def search(self, criteria: str) -> list[int]:
        self.sent.append(f"SEARCH {criteria}")
        out = []
        for uid, (flags, text) in self._here().mail.items():
            if criteria == "UNDELETED" and "\\Deleted" in flags:
                continue
            keyword = re.search(r"KEYWORD (\S+)", criteria)
            if keyword and keyword.group(1) not in flags:
                continue
            larger = re.search(r"LARGER (\d+) SMALLER (\d+)", criteria)
            if larger and not int(larger.group(1)) < len(text) < int(larger.group(2)):
                continue
            mid = re.search(r'HEADER Message-ID "([^"]+)"', criteria)
            if mid and mid.group(1).encode() not in text:
                continue
            out.append(uid)
        return out

    async def fetch(self, uids: Sequence[int], items: str) -> list[Fetched]:
        out = []
        for uid in uids:
            if uid in self._here().mail:
                flags, text = self._here().mail[uid]
                header = text.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                out.append(Fetched(uid, frozenset(flags), len(text), header, text))
        return out

    async def fetch_headers(self, uids: Sequence[int], fields: Sequence[str]) -> list[Fetched]:
        return await self.fetch(uids, "")

    async def append(
        self, mailbox: str, text: bytes, flags: Iterable[str], date: datetime | None = None
    ) -> int:
        self.sent.append(f"APPEND {mailbox}")
        if self.refuse_append:
            raise CommandRefused("APPEND: NO over quota")
        return self.boxes[mailbox].add(flags, text)

    async def add_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        for uid in uids:
            self._here().mail[uid][0].update(flags)

    async def expunge_uids(self, uids: Iterable[int]) -> None:
        self.sent.append(f"EXPUNGE {sorted(uids)}")
        for uid in uids:
            self._here().mail.pop(uid, None)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def part(store: StateStore, clock: Clock) -> Snoozes:
    settings = EngineSettings(
        login="me",
        endpoint=parse_endpoint("imap://127.0.0.1:1", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(),
        batches=(),
        clock=clock,
        snooze=SnoozeConfig(boxes=(("Soon", parse_when("1h")),)),
    )
    return Snoozes(settings, store, look_every=0.0)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore.open(tmp_path)


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def snoozed(server: FakeServer, n: int, flags: Iterable[str] = ("\\Seen",)) -> int:
    return server.boxes[BOX].add(flags, message(n))


def inbox(server: FakeServer) -> list[tuple[set[str], bytes]]:
    return list(server.boxes["INBOX"].mail.values())


def test_noticed_once_cheaply_and_back_once_unread(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = part(store, clock)
    run(snoozes.start(server))  # type: ignore[arg-type]
    assert {"ENSURE Snoozed", f"ENSURE {BOX}"} <= set(server.sent)
    uid = snoozed(server, 1)
    run(snoozes.step(server))  # type: ignore[arg-type]
    (record,) = store.snoozed("me")
    assert (record.uid, record.message_id, record.due) == (uid, "m1@x", NOW + timedelta(hours=1))
    assert snoozes.next_due() is not None
    # Nothing changed: one STATUS, no SELECT of the box.
    server.sent.clear()
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert server.sent == [f"STATUS {BOX}"]
    assert server.selected == "INBOX"

    clock.now = NOW + timedelta(minutes=59)
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert inbox(server) == []
    clock.now = NOW + timedelta(hours=1)
    run(snoozes.step(server))  # type: ignore[arg-type]
    ((flags, text),) = inbox(server)
    assert text == message(1)
    assert flags == {"$Triaged", "$Released", "$Unsnoozed"}
    assert server.boxes[BOX].mail == {}
    assert store.snoozed("me") == []
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert len(inbox(server)) == 1
    assert server.selected == "INBOX"


def _returning(store: StateStore, server: FakeServer, clock: Clock, n: int) -> Snoozes:
    """A record cut short in its return: marked "returning", due."""
    snoozes = part(store, clock)
    run(snoozes.start(server))  # type: ignore[arg-type]
    snoozed(server, n)
    run(snoozes.step(server))  # type: ignore[arg-type]
    (record,) = store.snoozed("me")
    store.set_snooze_state(record.id, "returning", NOW)
    clock.now = NOW + timedelta(hours=2)
    return part(store, clock)  # a new process: nothing in memory


def test_a_redo_finds_its_copy_and_only_expunges(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = _returning(store, server, clock, 1)
    server.boxes["INBOX"].add({"$Triaged", "$Released", "$Unsnoozed"}, message(1))
    server.boxes[BOX].mail[1][0].add("\\Deleted")  # cut after the mark, before UID EXPUNGE
    run(snoozes.start(server))  # type: ignore[arg-type]
    assert len(inbox(server)) == 1
    assert server.boxes[BOX].mail == {}
    assert store.snoozed("me") == []


def test_a_redo_without_its_copy_appends_it(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = _returning(store, server, clock, 2)
    # Another message with the same Message-ID but other text is not its copy.
    server.boxes["INBOX"].add({"$Unsnoozed"}, message(2).replace(b"Text", b"Other"))
    run(snoozes.start(server))  # type: ignore[arg-type]
    assert [text for _, text in inbox(server)].count(message(2)) == 1
    assert server.boxes[BOX].mail == {}


def test_a_redo_whose_original_is_gone_is_done(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = _returning(store, server, clock, 3)
    server.boxes[BOX].mail.clear()  # cut after UID EXPUNGE
    server.boxes["INBOX"].add({"$Unsnoozed"}, message(3))
    run(snoozes.start(server))  # type: ignore[arg-type]
    assert len(inbox(server)) == 1
    assert store.snoozed("me") == []


def test_taken_out_or_deleted_before_its_time_is_forgotten(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = part(store, clock)
    run(snoozes.start(server))  # type: ignore[arg-type]
    taken, deleted = snoozed(server, 4), snoozed(server, 5)
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert len(store.snoozed("me")) == 2
    server.boxes["INBOX"].mail[9] = server.boxes[BOX].mail.pop(taken)  # the user moves it
    server.boxes[BOX].mail[deleted][0].add("\\Deleted")  # ... and deletes the other
    clock.now = NOW + timedelta(hours=3)
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert store.snoozed("me") == []
    assert not any("APPEND" in sent for sent in server.sent)


def test_a_refused_return_waits_a_minute_and_is_not_lost(store: StateStore) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = part(store, clock)
    run(snoozes.start(server))  # type: ignore[arg-type]
    snoozed(server, 6)
    run(snoozes.step(server))  # type: ignore[arg-type]
    clock.now = NOW + timedelta(hours=1)
    server.refuse_append = True
    snoozes.look_every = 3600.0  # only the return's own time counts below
    run(snoozes.step(server))  # type: ignore[arg-type]
    (record,) = store.snoozed("me")
    assert record.state == "returning"
    due = snoozes.next_due()
    assert due is not None
    assert due > clock.now + timedelta(seconds=50)  # not a busy loop
    appends = server.sent.count("APPEND INBOX")
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert server.sent.count("APPEND INBOX") == appends  # waits
    server.refuse_append = False
    snoozes._retry.clear()  # a minute later
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert len(inbox(server)) == 1
    assert store.snoozed("me") == []


@pytest.mark.parametrize("how", ["disabled", "dry run"])
def test_disabled_or_a_dry_run_makes_and_watches_nothing(store: StateStore, how: str) -> None:
    server, clock = FakeServer(), Clock(NOW)
    snoozes = part(store, clock)
    if how == "disabled":
        snooze = replace(snoozes.settings.snooze, enabled=False)
        snoozes.reconfigured(replace(snoozes.settings, snooze=snooze))
    else:
        snoozes.reconfigured(replace(snoozes.settings, dry_run=True))
    run(snoozes.start(server))  # type: ignore[arg-type]
    run(snoozes.step(server))  # type: ignore[arg-type]
    assert server.sent == []
    assert snoozes.next_due() is None
