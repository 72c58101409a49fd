"""The collision hint: a colleague has answered this already.

When a colleague's reply is filed in an account folder, the message it answers is marked
``$Answered-By-Team`` in this user's INBOX and hold mailboxes (Thunderbird shows keywords as
tags), so two people do not answer the same customer question. Each account folder is read
from where the last look stopped (a cursor per folder in the store), every ``team_scan`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..classifier.mail import MailParseError, parse_mail
from ..imap.names import INBOX, SENT
from .filer import Filer, search_message_ids

__all__ = ["ANSWERED", "TeamWatch"]

log = logging.getLogger("commsproxy.filing")

ANSWERED = "$Answered-By-Team"


class TeamWatch:
    """Runs on the filer's connection, with its store and rules."""

    def __init__(
        self, filer: Filer, own_addresses: Sequence[str], hold_mailboxes: Sequence[str]
    ) -> None:
        self.filer = filer
        self.up, self.store, self.login, self.setup = (
            filer.up,
            filer.store,
            filer.login,
            filer.setup,
        )
        self.own = frozenset(a.lower() for a in own_addresses)
        self.mailboxes = (INBOX, *hold_mailboxes)
        self._next = 0.0

    async def maybe_scan(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next:
            return
        self._next = now + self.setup.config.team_scan
        try:
            answered = await self._replies()
            if answered:
                await self._mark(answered)
        finally:
            if self.up.selected != INBOX:
                await self.up.select(INBOX)

    async def _replies(self) -> set[str]:
        """Message-IDs that colleagues' replies, new in the account folders, answer."""
        answered: set[str] = set()
        pattern = f"{self.filer.folder('')}*"
        for listed in await self.up.list_mailboxes(pattern):
            if "\\noselect" in listed.attributes or "\\nonexistent" in listed.attributes:
                continue
            folder = listed.name
            status = await self.up.status(folder, "(UIDNEXT UIDVALIDITY)")
            validity, uidnext = status.get("UIDVALIDITY", 0), status.get("UIDNEXT", 0)
            cursor = self.store.cursor(self.login, folder)
            last = cursor[1] if cursor and cursor[0] == validity else 0
            if uidnext and uidnext <= last + 1:
                continue
            await self.up.examine(folder)
            uids = [uid for uid in await self.up.search(f"UID {last + 1}:*") if uid > last]
            for fetched in await self.up.fetch(uids, "(UID FLAGS BODY.PEEK[HEADER])"):
                try:
                    mail = parse_mail(fetched.header)
                except MailParseError:
                    continue
                sender = mail.sender.lower()
                by_colleague = SENT in fetched.flags or self.setup.rules.is_internal(sender)
                if sender and sender not in self.own and by_colleague:
                    answered.update(mail.in_reply_to)
            if uids:
                self.store.set_cursor(self.login, folder, validity, max(uids))
        return answered

    async def _mark(self, answered: set[str]) -> None:
        for mailbox in self.mailboxes:
            await self.up.select(mailbox)
            uids = await search_message_ids(self.up, answered)
            if uids:
                await self.up.add_flags(uids, (ANSWERED,))
                log.info("%s: %d message(s) in %s answered by a colleague", self.filer,
                         len(uids), mailbox)  # fmt: skip
