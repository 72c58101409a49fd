"""A group's hold goes out as one UID MOVE: on maildir each MOVE costs about the same whatever
its size (250 to 600 ms at 100,000 messages), so pieces would multiply the cost. More than a
group's worth, or a UID set too long for one command line, goes in pieces."""

from __future__ import annotations

from commsproxy.imap.commands import uid_set

from .test_triage_upstream import _upstream


async def test_a_groups_hold_moves_in_one_command_and_more_in_steps_of_2000() -> None:
    seen: list[bytes] = []
    scattered = list(range(2, 2402, 2))  # 1,200 UIDs, none adjacent: a 6,000-character set
    runs = list(range(10_001, 12_501))  # 2,500 UIDs in one run
    async with _upstream("MOVE UIDPLUS", {}, seen) as upstream:
        await upstream.move(scattered, "Later")
        await upstream.move(runs, "Later/Bulk")
    assert seen == [
        f't1 UID MOVE {uid_set(scattered)} "Later"\r\n'.encode(),
        b't2 UID MOVE 10001:12000 "Later/Bulk"\r\n',
        b't3 UID MOVE 12001:12500 "Later/Bulk"\r\n',
    ]
