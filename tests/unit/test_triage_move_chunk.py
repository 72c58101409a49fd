"""A triage step's hold goes out as one UID MOVE: on maildir each MOVE costs about the same
whatever its size (about 250 ms at 100,000 messages), so 100-UID pieces cost five times more."""

from __future__ import annotations

from commsproxy.imap.commands import uid_set

from .test_triage_upstream import _upstream


async def test_a_triage_step_moves_in_one_command_and_more_in_steps_of_500() -> None:
    seen: list[bytes] = []
    uids = list(range(2, 1202, 2))  # 600 UIDs, none adjacent: the longest UID sets
    async with _upstream("MOVE UIDPLUS", {}, seen) as upstream:
        await upstream.move(uids, "Later")
    assert seen == [
        f't1 UID MOVE {uid_set(uids[:500])} "Later"\r\n'.encode(),
        f't2 UID MOVE {uid_set(uids[500:])} "Later"\r\n'.encode(),
    ]
