"""The first start's pure parts: the UID ranges it tags, and what counts as recent."""

from __future__ import annotations

from datetime import UTC, datetime

from commsproxy.imap.commands import expand_uid_set
from commsproxy.imap.responses import Fetched
from commsproxy.triage.first_start import arrived_since as _since
from commsproxy.triage.first_start import uid_ranges as _uid_ranges


def test_ranges_skip_exactly_the_given_uids() -> None:
    assert _uid_ranges(10, []) == ["1:10"]
    assert _uid_ranges(10, [1, 5, 6, 10]) == ["2:4,7:9"]
    assert _uid_ranges(1, []) == ["1"]
    assert _uid_ranges(0, []) == []
    assert _uid_ranges(3, [1, 2, 3]) == []


def test_ranges_are_split_into_bounded_command_lines() -> None:
    skip = list(range(2, 100_000, 2))
    ranges = _uid_ranges(100_000, skip, longest=4000)
    assert len(ranges) > 1
    assert max(map(len, ranges)) < 4000
    tagged = [uid for text in ranges for uid in expand_uid_set(text)]
    assert tagged == [uid for uid in range(1, 100_001) if uid % 2 or uid == 100_000]


SINCE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _fetched(internaldate: str | None, date: str | None) -> Fetched:
    header = f"Date: {date}\r\n\r\n".encode() if date else b"Subject: x\r\n\r\n"
    return Fetched(1, frozenset(), header=header, internaldate=internaldate)


def test_recent_by_arrival_or_by_its_date() -> None:
    assert _since(_fetched("06-Dec-2026 13:00:00 +0000", None), SINCE)
    assert _since(_fetched(" 6-Dec-2026 14:00:00 +0100", None), SINCE)  # 13:00 UTC
    assert not _since(_fetched("06-Dec-2026 12:30:00 +0100", None), SINCE)  # 11:30 UTC
    old_arrival = "01-Nov-2026 09:00:00 +0000"
    assert _since(_fetched(old_arrival, "Sun, 06 Dec 2026 18:00:00 +0000"), SINCE)
    assert not _since(_fetched(old_arrival, "Sat, 05 Dec 2026 18:00:00 +0000"), SINCE)
    assert not _since(_fetched("not a date", "nor this"), SINCE)
