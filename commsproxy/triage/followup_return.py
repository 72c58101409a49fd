"""A follow-up that fell due: the sent message back at the top of INBOX, exactly once.

The copy the user's mail program kept in Sent (found by Message-ID) is appended to INBOX,
dated now so it sorts on top, unread, marked ``$FollowUp $Triaged $NotHeld`` so triage leaves
it where it is. Without a copy in Sent (a program that keeps none), a short reminder of
commsproxy's own goes there instead: from the user, "No answer yet: <subject>", saying to whom
and when it went, in the thread of the original (its References name it).

Crash safety: the store says "returning" before the APPEND and "returned" after. A
"returning" entry (the process died in between) first looks in INBOX for its reminder
(``$FollowUp`` and either Message-ID) and appends only when there is none. Nothing is ever
deleted or moved: the Sent copy stays where it is.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from ..imap.commands import quote_string
from ..imap.names import FOLLOW_UP, INBOX, NOT_HELD, TRIAGED
from .history_reader import choose_folders
from .state_store import FollowUp, StateStore
from .upstream import CommandRefused, Upstream

__all__ = ["FLAGS", "reminder_id", "reminder_message", "return_followup", "sent_mailbox"]

log = logging.getLogger("commsproxy.triage")

FLAGS = (FOLLOW_UP, TRIAGED, NOT_HELD)  # unread: no \Seen


def reminder_id(message_id: str) -> str:
    """The Message-ID (without <>) of commsproxy's own reminder for ``message_id``: fixed, so
    a redo finds the one an interrupted return appended."""
    digest = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()[:32]
    return f"followup-{digest}@commsproxy.localhost"


def reminder_message(followup: FollowUp, sender: str, now: datetime, zone: ZoneInfo) -> bytes:
    """The reminder when Sent has no copy: to whom and when it went, and that nothing came."""
    sent = followup.sent_at.astimezone(zone).strftime("%a %d %b %Y %H:%M")
    subject = followup.subject or "(no subject)"
    message = EmailMessage(policy=policy.SMTP)
    if "@" in sender and sender.isascii() and " " not in sender:
        message["From"] = sender
        message["To"] = sender
    else:
        message["From"] = "commsproxy <commsproxy@localhost>"
    message["Subject"] = f"No answer yet: {subject}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{reminder_id(followup.message_id)}>"
    message["In-Reply-To"] = f"<{followup.message_id}>"
    message["References"] = f"<{followup.message_id}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"No answer has come yet to the message you sent on {sent}\n"
        f"to {', '.join(followup.recipients)}:\n\n"
        f"    {subject}\n\n"
        "Your mail program kept no copy of it in Sent, so this note comes in its place.\n"
        "commsproxy watches what you send to people outside your team and brings it back\n"
        "when no answer came within the days you set ([followup] days in the config).\n",
        cte="quoted-printable",
    )
    return message.as_bytes()


async def sent_mailbox(worker: Upstream, store: StateStore, login: str) -> str | None:
    """The server's Sent mailbox: the one the history watches, else \\Sent or by its name."""
    record = store.history_status(login)
    if record is not None and record.sent_mailbox:
        return record.sent_mailbox
    return (await choose_folders(worker)).sent


async def return_followup(
    worker: Upstream,
    store: StateStore,
    followup: FollowUp,
    *,
    sent_in: str | None,
    sender: str,
    now: datetime,
    zone: ZoneInfo,
) -> str:
    """Bring one due follow-up back (see the module doc); says how, for the log."""
    login, mid = followup.login, followup.message_id
    if followup.state == "returning":
        if await _in_inbox(worker, mid):
            store.followup_state(login, mid, "returned", now)
            return "found in INBOX from before"
    else:
        store.followup_state(login, mid, "returning")
    content = await _sent_copy(worker, sent_in, mid) if sent_in else None
    how = f"the copy in {sent_in}"
    if content is None:
        content = reminder_message(followup, sender, now, zone)
        how = "a reminder (no copy in Sent)"
    await worker.append(INBOX, content, FLAGS, now)
    store.followup_state(login, mid, "returned", now)
    return how


async def _in_inbox(worker: Upstream, message_id: str) -> bool:
    if worker.selected != INBOX:
        await worker.select(INBOX)
    ids = (quote_string(f"<{message_id}>"), quote_string(f"<{reminder_id(message_id)}>"))
    criteria = f"KEYWORD {FOLLOW_UP} OR HEADER Message-ID {ids[0]} HEADER Message-ID {ids[1]}"
    return bool(await worker.search(criteria))


async def _sent_copy(worker: Upstream, mailbox: str, message_id: str) -> bytes | None:
    """The message as Sent keeps it, or None; leaves INBOX selected."""
    try:
        await worker.examine(mailbox)
        uids = await worker.search(f"HEADER Message-ID {quote_string(f'<{message_id}>')}")
        if not uids:
            return None
        fetched = await worker.fetch([max(uids)], "(UID BODY.PEEK[])")
        return fetched[0].text if fetched and fetched[0].text else None
    except CommandRefused as err:
        log.warning("follow-up: %s cannot be read (%s); sending a reminder instead", mailbox, err)
        return None
    finally:
        await worker.select(INBOX)
