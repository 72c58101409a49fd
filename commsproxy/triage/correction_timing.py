"""When the worker looks for the user's corrections (corrections.py), at little cost.

A look is due when the watcher heard INBOX or its flags change, or (every ``look_elsewhere``
seconds) when the STATUS of a hold mailbox differs from the last (one LIST-STATUS for all of
them where the server offers it); never sooner than
corrections.py would look anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .upstream import Upstream

__all__ = ["CorrectionTiming"]

_CORRECTIONS_GAP = 10.0  # seconds; corrections.py looks at most this often

_Status = tuple[tuple[tuple[str, int], ...], ...]


class CorrectionTiming:
    def __init__(self, hold_names: Mapping[str, str]) -> None:
        self._hold_names = hold_names  # batch name -> mailbox name on the server
        self.flags_news = True  # the watcher heard flags change: corrections worth a look
        self._elsewhere: _Status | None = None  # their STATUS
        self._next_look = 0.0  # loop time of the next look at the hold mailboxes
        self._corrections_at = 0.0  # loop time before which corrections.py would not look

    def heard(self) -> None:
        """The watcher heard INBOX or its flags change: a move may be a correction."""
        self.flags_news = True

    def wait(self, now: float) -> float:
        """Seconds from loop time ``now`` until a look may be due."""
        at = max(self._corrections_at, now) if self.flags_news else self._next_look
        return at - now

    async def due(self, worker: Upstream, look_elsewhere: float) -> bool:
        """Whether the user may have moved or flagged mail: the watcher heard INBOX change, or
        (every ``look_elsewhere`` seconds) a STATUS of a hold mailbox differs from the last."""
        now = asyncio.get_running_loop().time()
        if now < self._corrections_at:
            return False  # news waits: corrections.py would skip a look this soon
        if not self.flags_news and now < self._next_look:
            return False
        before, self._elsewhere = self._elsewhere, await self._hold_status(worker)
        self._next_look = now + look_elsewhere
        if not self.flags_news and before == self._elsewhere:
            return False
        self.flags_news = False
        self._corrections_at = now + _CORRECTIONS_GAP
        return True

    async def _hold_status(self, worker: Upstream) -> _Status:
        # HIGHESTMODSEQ (CONDSTORE) changes with every flag; without it, moves still show.
        items = "(MESSAGES UIDNEXT UIDVALIDITY" + (
            " HIGHESTMODSEQ)" if worker.has("CONDSTORE") else ")"
        )
        mailboxes = sorted(set(self._hold_names.values()))
        found = await worker.statuses(mailboxes, items)  # one LIST-STATUS where offered
        return tuple(tuple(sorted(found.get(m, {}).items())) for m in mailboxes)
