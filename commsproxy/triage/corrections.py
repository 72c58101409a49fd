"""Learning from what the user does with triaged mail, seen on the server (a phone counts too).

Two actions besides a rescue (which the triage pass notices in INBOX):

- **demote**: mail triage delivered as urgent that the user moved into a hold mailbox. It
  carries ``$Urgent`` and no hold keyword there (triage's own holds carry ``$Later``/``$Bulk``).
  Recorded with the batch's label, and tagged with the hold keyword so that it is recorded once
  and a later drag back to INBOX reads as a rescue.
- **flag**: ``\\Flagged`` on fresh mail triage did not call urgent (in INBOX or held), within a
  week of arrival. Recorded as urgent, once per Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from ..classifier.mail import MailParseError, parse_mail
from ..config import BatchConfig
from ..imap.names import (
    BULK,
    BULK_KEYWORD,
    HOLD_KEYWORD,
    INBOX,
    LATER,
    NORMAL,
    TRIAGED,
    URGENT_KEYWORD,
)
from ..imap.responses import Fetched
from .state_store import Correction, StateStore
from .upstream import Upstream

__all__ = ["CorrectionWatch"]

log = logging.getLogger("commsproxy.triage")

_FRESH = timedelta(days=7)
_INTERVAL = 10.0  # seconds between looks


class CorrectionWatch:
    def __init__(
        self,
        upstream: Upstream,
        store: StateStore,
        login: str,
        holds: Mapping[str, str],  # batch name -> hold mailbox on the server
        batches: Sequence[BatchConfig],
        clock: Callable[[], datetime],
    ) -> None:
        self.up, self.store, self.login, self.clock = upstream, store, login, clock
        self.holds = [(batch, holds[batch.name]) for batch in batches if batch.name in holds]
        self._next = 0.0

    async def maybe_scan(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next:
            return
        self._next = now + _INTERVAL
        try:
            for batch, mailbox in self.holds:
                await self._demoted(batch, mailbox)
            for mailbox in (INBOX, *(m for _, m in self.holds)):
                await self._flagged(mailbox)
        finally:
            if self.up.selected != INBOX:
                await self.up.select(INBOX)

    async def _demoted(self, batch: BatchConfig, mailbox: str) -> None:
        await self.up.select(mailbox)
        uids = await self.up.search(
            f"KEYWORD {TRIAGED} KEYWORD {URGENT_KEYWORD} UNKEYWORD {LATER} UNKEYWORD {BULK_KEYWORD}"
        )
        if not uids:
            return
        label = batch.labels[0]
        for fetched in await self.up.fetch(uids, "(UID BODY.PEEK[HEADER])"):
            self._record(fetched, "demote", label, "urgent")
        await self.up.add_flags(uids, (HOLD_KEYWORD[label],))

    async def _flagged(self, mailbox: str) -> None:
        await self.up.select(mailbox)
        since = (self.clock() - _FRESH).strftime("%d-%b-%Y")
        # Only mail triage decided on: what a first start left in place carries no label.
        uids = await self.up.search(
            f"FLAGGED KEYWORD {TRIAGED} OR KEYWORD {LATER} KEYWORD {BULK_KEYWORD} "
            f"UNKEYWORD {URGENT_KEYWORD} SINCE {since}"
        )
        if not uids:
            return
        for fetched in await self.up.fetch(uids, "(UID FLAGS BODY.PEEK[HEADER])"):
            previous = BULK if BULK_KEYWORD in fetched.flags else NORMAL
            self._record(fetched, "flag", "urgent", previous, once=True)

    def _record(
        self, fetched: Fetched, kind: str, label: str, previous: str, *, once: bool = False
    ) -> None:
        try:
            mail = parse_mail(fetched.header)
        except MailParseError:
            return
        if once and (
            not mail.message_id or self.store.has_correction(self.login, mail.message_id, kind)
        ):
            return
        log.info("triage[%s]: %s by you: %r recorded as %s", self.login, kind, mail.subject, label)
        self.store.record_correction(
            Correction(
                login=self.login, message_id=mail.message_id, kind=kind, label=label,
                previous=previous, sender=mail.sender, subject=mail.subject, at=self.clock(),
            )
        )  # fmt: skip
