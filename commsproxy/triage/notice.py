"""The one notice a login's INBOX holds while its triage does not work, and its removal.

One mechanism for every cause: an OAuth2 sign-in to renew (at once, see signin.py), a password
the server refuses, a step the server keeps refusing (after ``[triage] notice_after``). The
store records the notice's Message-ID before the APPEND and marks it after, so a crash between
the two is settled by looking for that Message-ID, and a retry or a restart never appends a
second one. The notice carries ``$Triaged``, so triage leaves it where it is.

While triage still fails but for another reason (the password fixed, then a step refused), the
notice is replaced: the new one is appended first, then the old one removed as below, so INBOX
never lacks one. The store names the old one until it is gone, so a crash in between is
finished by the next ``leave`` or ``remove``.

Removal, once triage works again: the notice is commsproxy's own message, so it is marked
``\\Seen \\Deleted`` and ``UID EXPUNGE`` removes exactly its UID, found again by its
Message-ID (never a remembered UID: the user may have moved it, or INBOX been rebuilt). That
is the rule triage/upstream.py keeps for moves: only messages commsproxy chose are expunged,
never with a plain ``EXPUNGE``, which would also remove the user's other deleted mail. A server
without UIDPLUS cannot expunge one message safely, so there the notice stays marked deleted
and read, for the user's own next expunge to remove.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ..imap.commands import quote_string
from ..imap.names import INBOX, TRIAGED
from .state_store import Notice, StateStore
from .upstream import Upstream

__all__ = ["NoticeBox", "notice_message"]

log = logging.getLogger("commsproxy.triage")

_SIGN_IN_SUBJECT = "commsproxy: sign in again to keep triaging your mail"
_SUBJECT = "commsproxy cannot triage your mail"


def notice_message(
    login: str, reason: str, todo: str, when: datetime, message_id: str, *, sign_in: bool
) -> bytes:
    """The notice: what is wrong, what to do, and that nothing is lost meanwhile."""
    message = EmailMessage()
    message["From"] = "commsproxy <commsproxy@localhost>"
    message["To"] = login
    message["Subject"] = _SIGN_IN_SUBJECT if sign_in else _SUBJECT
    message["Date"] = format_datetime(when)
    message["Message-ID"] = f"<{message_id}>"
    message.set_content(
        f"commsproxy cannot triage your mail: {reason.rstrip('.')}. What to do: "
        f"{todo.rstrip('.')}.\n\n"
        "Until then, new mail stays in INBOX untriaged and held mail waits in its hold\n"
        "mailbox. Nothing is lost: once triage works again it resumes by itself, releases\n"
        "every batch whose time has passed, and removes this message.\n"
    )
    return message.as_bytes().replace(b"\n", b"\r\n")


class NoticeBox:
    """A login's notice: left at most once per reason, removed once triage works."""

    def __init__(self, store: StateStore, login: str, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.login = login
        self.clock = clock

    def __str__(self) -> str:
        return f"triage[{self.login}]"

    @property
    def left(self) -> Notice | None:
        return self.store.notice(self.login)

    async def leave(self, up: Upstream, reason: str, todo: str, *, sign_in: bool = False) -> None:
        """Append the notice unless it is there already (or a crash left it half-recorded);
        replace it when the reason changed: the new one first, then the old one removed."""
        notice = self.store.notice(self.login)
        if notice is not None and notice.appended is None:
            if await self._find(up, notice.message_id):
                self.store.notice_appended(self.login, self.clock())  # appended before a crash
                notice = self.store.notice(self.login)
            elif notice.reason != reason:
                # Never appended: it may take the new reason (and keeps what it replaces).
                notice = self.store.plan_replacement(self.login, _new_id(), reason, self.clock())
        if notice is None:
            notice = self.store.plan_notice(self.login, _new_id(), reason, self.clock())
        elif notice.appended is not None:
            if notice.reason == reason:
                await self._drop_replaced(up, notice)  # a replacement a crash cut short
                return
            notice = self.store.plan_replacement(self.login, _new_id(), reason, self.clock())
        now = self.clock()
        text = notice_message(self.login, reason, todo, now, notice.message_id, sign_in=sign_in)
        await up.append(INBOX, text, [TRIAGED], now)
        self.store.notice_appended(self.login, now)
        if notice.replaces is None:
            log.info("%s: a notice is in INBOX: %s", self, reason)
        else:
            log.info("%s: the notice in INBOX is replaced: %s", self, reason)
            await self._drop_replaced(up, notice)

    async def remove(self, up: Upstream) -> None:
        """Triage works again: take the notice out of INBOX (see the module's docstring)."""
        notice = self.store.notice(self.login)
        if notice is None:
            return
        removed = False
        for message_id in (notice.replaces, notice.message_id):
            if message_id is not None:
                removed = await self._expunge(up, message_id) or removed
        self.store.notice_removed(self.login)
        if removed:
            log.info("%s: triage works again; the notice left in INBOX is removed", self)

    async def _drop_replaced(self, up: Upstream, notice: Notice) -> None:
        if notice.replaces is not None:
            await self._expunge(up, notice.replaces)
            self.store.notice_replaced(self.login)

    async def _expunge(self, up: Upstream, message_id: str) -> bool:
        """Exactly this notice out of INBOX: \\Deleted, then UID EXPUNGE of its UID alone."""
        uids = await self._find(up, message_id)
        if uids:
            await up.add_flags(uids, ("\\Seen", "\\Deleted"))
            if up.has("UIDPLUS"):
                await up.expunge_uids(uids)
        return bool(uids)

    async def _find(self, up: Upstream, message_id: str) -> list[int]:
        await up.select(INBOX)
        return await up.search(f"HEADER Message-ID {quote_string(f'<{message_id}>')}")


def _new_id() -> str:
    return make_msgid("notice", "commsproxy.localhost").strip("<>")
