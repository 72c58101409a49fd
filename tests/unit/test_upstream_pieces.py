"""Long UID sets go in pieces: a command line stays under about 8 KB whatever the UIDs.

A backlog split between two hold mailboxes leaves each one's UIDs every other number, which no
range can shorten; a STORE or MOVE of 2,000 such UIDs would be a 14 KB line, which some
servers refuse (RFC 7162 asks clients to keep to 8,192 octets).
"""

from __future__ import annotations

from commsproxy.imap.commands import uid_set
from commsproxy.triage.upstream import _pieces

from .test_triage_upstream import _upstream


def test_pieces_keep_order_count_and_line_length() -> None:
    every_other = list(range(100_001, 104_001, 2))  # 2,000 six-digit UIDs, no runs
    pieces = _pieces(every_other, 2000)
    assert [len(p) for p in pieces] == [1000, 1000]
    assert [uid for piece in pieces for uid in piece] == every_other
    assert all(len(uid_set(p)) <= 7000 for p in pieces)
    assert _pieces(list(range(1, 5001)), 2000) == [
        list(range(1, 2001)),
        list(range(2001, 4001)),
        list(range(4001, 5001)),
    ]  # runs: the count is the limit
    long_uids = list(range(4_000_000_001, 4_000_006_001, 2))
    assert all(len(uid_set(p)) <= 7000 for p in _pieces(long_uids, 500))
    assert _pieces([], 10) == []


async def test_a_store_of_a_long_uid_set_goes_in_two_commands() -> None:
    seen: list[bytes] = []
    every_other = list(range(100_001, 104_001, 2))
    async with _upstream("MOVE UIDPLUS", {}, seen) as upstream:
        await upstream.add_flags(every_other, ["$Triaged", "$Later"])
        await upstream.add_flags([7, 8, 9], ["$Filed"])
    stores = [line for line in seen if b"UID STORE" in line]
    assert len(stores) == 3
    assert all(len(line) < 8192 for line in stores)
    assert stores[2] == b"t3 UID STORE 7:9 +FLAGS.SILENT ($Filed)\r\n"
