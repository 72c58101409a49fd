"""The first read of the history from the server: which folders, newest first, within bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commsproxy.triage import history_reader
from commsproxy.triage.history_reader import Folders, choose_folders, read_history, read_new
from tests.mailfactory import render

from .fake_imap import Clock, FakeUpstream

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def header(i: int, folder: str) -> bytes:
    return render(
        {"From": f"p{i}@{folder.lower()}.example", "To": "me@corp.example",
         "Message-ID": f"<{folder}{i}@x>", "Subject": f"s{i}"},
        "",
    )  # fmt: skip


def folder(name: str, days_ago: list[float]) -> list[tuple[datetime, bytes]]:
    return [(NOW - timedelta(days=d), header(i, name)) for i, d in enumerate(days_ago)]


async def test_the_users_own_folders_sent_first_by_attribute_or_name() -> None:
    attributes = {
        "INBOX": set(),
        "Sent": {"\\Sent"},
        "Trash": {"\\Trash"},
        "Junk": {"\\Junk"},
        "Spam": set(),
        "Drafts": {"\\Drafts"},
        "Later": set(),
        "Later/Bulk": set(),
        "Archive": {"\\Archive"},
        "Archive/2024": set(),
        "Laterals": set(),
        "Public/Acme": set(),
        "Shared/bob/Proj": set(),
        "Old": {"\\Noselect"},
    }
    up = FakeUpstream({}, attributes, foreign=("Public/", "Shared/"))
    chosen = await choose_folders(up.as_upstream(), ["Later"])
    assert chosen == Folders("Sent", ("INBOX", "Archive", "Archive/2024", "Laterals"))
    by_name = FakeUpstream({}, {"INBOX": set(), "Sent Items": set(), "Notes": set()})
    assert await choose_folders(by_name.as_upstream()) == Folders("Sent Items", ("INBOX", "Notes"))


async def test_newest_first_across_folders_until_the_count() -> None:
    up = FakeUpstream(
        {
            "Sent": folder("Sent", [1, 500]),
            "INBOX": folder("INBOX", [30, 2, 1]),
            "Archive": folder("Archive", [3, 400]),
        }
    )
    folders = Folders("Sent", ("INBOX", "Archive"))
    mails, progress = await read_history(
        up.as_upstream(), folders, now=NOW, seconds=60, messages=4, monotonic=Clock()
    )
    # The last two weeks of every folder before anything older.
    assert [m.message_id for m in mails] == [
        "<Sent0@x>",
        "<INBOX1@x>",
        "<INBOX2@x>",
        "<Archive0@x>",
    ]
    assert {m.folder for m in mails} == {"Sent", "INBOX", "Archive"}
    assert (progress.messages, progress.stopped) == (4, "count")
    assert up.selected == "INBOX"
    everything, progress = await read_history(
        up.as_upstream(), folders, now=NOW, seconds=60, messages=100, monotonic=Clock()
    )
    assert len(everything) == 7
    assert (progress.messages, progress.folders, progress.stopped) == (7, 3, None)
    # The oldest period comes last, Sent first in it as in every period.
    assert [m.message_id for m in everything[-2:]] == ["<Sent1@x>", "<Archive1@x>"]


async def test_the_time_limit_stops_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_reader, "CHUNK", 2)
    clock = Clock()
    up = FakeUpstream({"INBOX": folder("INBOX", [1] * 10)}, clock=clock, fetch_seconds=10)
    reports: list[int] = []
    mails, progress = await read_history(
        up.as_upstream(),
        Folders(None, ("INBOX",)),
        now=NOW,
        seconds=25,
        messages=100,
        monotonic=clock,
        report=lambda p: reports.append(p.messages),
    )
    assert (progress.messages, progress.stopped) == (6, "time")
    assert reports == [2, 4, 6]
    assert [m.message_id for m in mails] == [f"<INBOX{i}@x>" for i in (8, 9, 6, 7, 4, 5)]


async def test_a_folder_the_server_refuses_is_left_out() -> None:
    up = FakeUpstream(
        {"INBOX": folder("INBOX", [1]), "Gone": [], "Notes": folder("Notes", [1])},
        refuse=frozenset({"Gone"}),
    )
    mails, _ = await read_history(
        up.as_upstream(), Folders(None, ("INBOX", "Gone", "Notes")), now=NOW, seconds=60,
        messages=100, monotonic=Clock(),
    )  # fmt: skip
    assert [m.folder for m in mails] == ["INBOX", "Notes"]
    assert sum(c == "EXAMINE Gone" for c in up.commands) == 1  # not asked again each period


async def test_read_new_reads_above_the_cursor_only() -> None:
    up = FakeUpstream({"Sent": folder("Sent", [3, 2, 1]), "INBOX": []})
    mails, highest = await read_new(up.as_upstream(), "Sent", 1, 10)
    assert ([m.message_id for m in mails], highest) == (["<Sent1@x>", "<Sent2@x>"], 3)
    assert await read_new(up.as_upstream(), "Sent", 3, 10) == ([], 3)
    assert up.selected == "INBOX"
    newest, _ = await read_new(up.as_upstream(), "Sent", 0, 1)
    assert [m.message_id for m in newest] == ["<Sent2@x>"]
