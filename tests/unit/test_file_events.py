"""file_events.FileEvents: the kernel's word (inotify) that a watched file was written."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from commsproxy.triage.file_events import FileEvents

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


def _events(folder: Path) -> FileEvents:
    events = FileEvents.open(folder, ["state.sqlite3", "state.sqlite3-wal"])
    assert events is not None
    events.start()
    return events


async def test_a_write_to_a_watched_file_ends_the_wait(tmp_path: Path) -> None:
    events = _events(tmp_path)
    try:
        waiting = asyncio.create_task(events.written(5))
        await asyncio.sleep(0.01)
        (tmp_path / "state.sqlite3-wal").write_bytes(b"x")
        async with asyncio.timeout(2):
            assert await waiting
    finally:
        events.close()


async def test_writes_to_other_files_do_not_and_the_wait_ends_by_its_time(tmp_path: Path) -> None:
    events = _events(tmp_path)
    try:
        (tmp_path / "commsproxy.log").write_bytes(b"a line")
        await asyncio.sleep(0.01)
        assert not await events.written(0.05)
    finally:
        events.close()


async def test_a_write_before_the_wait_is_not_lost(tmp_path: Path) -> None:
    events = _events(tmp_path)
    try:
        (tmp_path / "state.sqlite3").write_bytes(b"x")
        await asyncio.sleep(0.05)  # the loop reads the event meanwhile
        async with asyncio.timeout(1):
            assert await events.written(5)
        assert not await events.written(0.01)  # said once
    finally:
        events.close()


def test_a_folder_that_is_not_there_gives_none(tmp_path: Path) -> None:
    assert FileEvents.open(tmp_path / "missing", ["x"]) is None
