"""Reading the user's history with senders from the server: headers only, newest first, bounded.

At a login's first start (history_keeper.py) this reads Sent, INBOX and the login's other folders
-- not Trash, Junk, Drafts or Gmail's "All Mail" (the same rule as ``commsproxy train``), not the
hold mailboxes (their mail is counted when triaged), not other users' or shared folders. Every
folder is opened with EXAMINE and only a few header fields are fetched, with BODY.PEEK: nothing
is marked read and a 100 MB attachment costs nothing.

Newest first across folders: the last two weeks of every folder, then the three months before,
the year before, then everything older; in each period Sent first (replies need their originals
and the user's addresses), INBOX, the rest, each newest first. Time and message count are looked
at between chunks, so a read that runs out stops with the newest part of the history, replies
matched with what they answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..classifier.dataset import is_sent_folder

# The folders `commsproxy train` leaves out by default, by attribute and by name: one rule.
from ..classifier.imap_source import _SKIP_ATTRIBUTES, _SKIP_NAMES
from ..classifier.mail import Mail, MailParseError, parse_mail
from ..imap.names import INBOX
from ..imap.responses import Fetched, ListedMailbox
from .upstream import CommandRefused, Upstream

__all__ = [
    "HEADER_FIELDS",
    "Folders",
    "ReadProgress",
    "choose_folders",
    "read_history",
    "read_new",
]

log = logging.getLogger("commsproxy.triage")

HEADER_FIELDS = (
    "FROM", "TO", "CC", "DATE", "MESSAGE-ID", "IN-REPLY-TO", "REFERENCES", "SUBJECT",
)  # fmt: skip
# Periods read one after the other, newest first; None: everything older.
PERIODS: tuple[timedelta | None, ...] = (
    timedelta(days=14),
    timedelta(days=91),
    timedelta(days=365),
    None,
)
CHUNK = 100  # headers per FETCH: between chunks the limits are looked at
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Folders:
    sent: str | None  # the user's sent mail: \Sent, else by name
    others: tuple[str, ...]  # INBOX first


@dataclass(slots=True)
class ReadProgress:
    messages: int = 0  # headers read
    folders: int = 0  # folders looked into
    stopped: str | None = None  # "time" or "count" when the read stopped before the end


def _wanted(box: ListedMailbox) -> bool:
    if box.attributes & _SKIP_ATTRIBUTES:
        return False
    last = box.name.rsplit(box.delimiter, 1)[-1] if box.delimiter else box.name
    return last.lower() not in _SKIP_NAMES


def _under(name: str, roots: Sequence[str], delimiter: str | None) -> bool:
    return any(name == root or (delimiter and name.startswith(root + delimiter)) for root in roots)


async def choose_folders(up: Upstream, leave_out: Sequence[str] = ()) -> Folders:
    """The login's own folders with mail to learn from; ``leave_out`` with their subfolders."""
    foreign = await up.foreign_namespaces()
    sent: str | None = None
    others: list[str] = []
    for box in await up.list_mailboxes("*", special_use=True):
        if not _wanted(box) or _under(box.name, leave_out, box.delimiter):
            continue
        if foreign and box.name.startswith(foreign):
            continue
        if sent is None and "\\sent" in box.attributes:
            sent = box.name
        else:
            others.append(box.name)
    if sent is None:
        sent = next((name for name in others if is_sent_folder(name)), None)
    rest = [name for name in others if name != sent and not is_sent_folder(name)]
    rest.sort(key=lambda name: (name.upper() != INBOX, name))
    return Folders(sent, tuple(rest))


def _imap_date(moment: datetime) -> str:
    return f"{moment.day}-{_MONTHS[moment.month - 1]}-{moment.year}"


def _criteria(now: datetime, newer: timedelta | None, older: timedelta | None) -> str:
    """UID SEARCH criteria for messages that arrived between ``now - older`` and ``now - newer``."""
    parts = []
    if older is not None:
        parts.append(f"SINCE {_imap_date(now - older)}")
    if newer is not None:
        parts.append(f"BEFORE {_imap_date(now - newer)}")
    return " ".join(parts) or "ALL"


def parse_headers(fetched: Sequence[Fetched], folder: str) -> list[Mail]:
    mails = []
    for item in fetched:
        try:
            mails.append(parse_mail(item.header, folder=folder))
        except MailParseError:
            continue  # no header at all: nothing to learn
    return mails


async def read_history(
    up: Upstream,
    folders: Folders,
    *,
    now: datetime,
    seconds: float,
    messages: int,
    monotonic: Callable[[], float],
    report: Callable[[ReadProgress], None] = lambda _: None,
) -> tuple[list[Mail], ReadProgress]:
    """Headers of the newest mail, until the folders, ``seconds`` or ``messages`` run out.

    ``Mail.folder`` is the folder each came from (is it Sent?). Leaves INBOX selected.
    """
    deadline = monotonic() + seconds
    progress = ReadProgress()
    mails: list[Mail] = []
    names = ([folders.sent] if folders.sent else []) + list(folders.others)
    empty: set[str] = set()  # folders without any mail: not opened again
    looked: set[str] = set()
    newer: timedelta | None = None
    try:
        for older in PERIODS:
            criteria = _criteria(now, newer, older)
            newer = older
            for name in names:
                if name in empty:
                    continue
                if monotonic() >= deadline:
                    progress.stopped = "time"
                    return mails, progress
                uids = await _search(up, name, criteria, empty)
                looked.add(name)
                progress.folders = len(looked)
                for end in range(len(uids), 0, -CHUNK):  # newest (highest UID) first
                    if progress.messages >= messages:
                        progress.stopped = "count"
                        return mails, progress
                    if monotonic() >= deadline:
                        progress.stopped = "time"
                        return mails, progress
                    chunk = uids[max(0, end - CHUNK) : end][-(messages - progress.messages) :]
                    fetched = await up.fetch_headers(chunk, HEADER_FIELDS)
                    mails.extend(parse_headers(fetched, name))
                    progress.messages += len(chunk)
                    report(progress)
        return mails, progress
    finally:
        await up.select(INBOX)


async def _search(up: Upstream, name: str, criteria: str, empty: set[str]) -> list[int]:
    """UIDs matching ``criteria`` in folder ``name``, ascending; [] when it cannot be opened."""
    try:
        info = await up.examine(name)
        if info.exists == 0:
            empty.add(name)
            return []
        return sorted(await up.search(criteria))
    except CommandRefused as err:
        # One folder the server will not open must not stop the rest (or triage).
        log.info("history: folder %s left out: %s", name, err)
        empty.add(name)
        return []


async def read_new(up: Upstream, mailbox: str, after: int, limit: int) -> tuple[list[Mail], int]:
    """Headers of the newest ``limit`` messages above UID ``after`` in ``mailbox``.

    Returns them and the highest UID seen (``after`` when there was none). Leaves INBOX selected.
    """
    try:
        await up.examine(mailbox)
        uids = sorted(uid for uid in await up.search(f"UID {after + 1}:*") if uid > after)
        newest = uids[-limit:]
        mails: list[Mail] = []
        for start in range(0, len(newest), CHUNK):
            fetched = await up.fetch_headers(newest[start : start + CHUNK], HEADER_FIELDS)
            mails.extend(parse_headers(fetched, mailbox))
        return mails, (uids[-1] if uids else after)
    finally:
        await up.select(INBOX)
