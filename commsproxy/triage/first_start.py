"""A login's first start leaves the past alone: what INBOX holds is tagged and stays.

The mail already in INBOX is tagged ``$Triaged`` ``$NotHeld`` in one ``UID STORE`` (crash
repair reads that as decided and not held) and stays where it is, except unread mail from the
last ``[triage] first_start_window`` seconds, which the first pass triages as new mail.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..imap.names import INBOX, NOT_HELD, RELEASED, TRIAGED
from ..imap.responses import Fetched
from .engine_settings import EngineSettings
from .fetched_mail import mail_of
from .state_store import StateStore
from .upstream import Upstream

__all__ = ["arrived_since", "leave_the_past", "uid_ranges"]

log = logging.getLogger("commsproxy.triage")


async def leave_the_past(
    worker: Upstream, store: StateStore, settings: EngineSettings, name: str
) -> None:
    """A login's first start (no INBOX cursor yet): tag what INBOX holds and leave it.

    One ``UID STORE`` over UID ranges writes ``$Triaged $NotHeld`` on every message not
    decided yet but the recent unread ones (``first_start_window``), which the first pass
    then triages as new. Mail that carries ``$Triaged`` or ``$Released`` already (a start
    after the store was deleted) keeps its keywords as they are. The cursor and the record
    for ``status`` are written together afterwards: a crash before that repeats the
    tagging, which changes nothing the second time. ``name`` says whose triage in the log.
    """
    s = settings
    if store.cursor(s.login, INBOX) is not None:
        return
    info = await worker.select(INBOX)
    top = (info.uidnext or 1) - 1
    if info.uidnext is None and info.exists:
        top = max(await worker.search("ALL"), default=0)
    recent = await _recent_unread(worker, settings, top) if info.exists else []
    tagged = max(info.exists - len(recent), 0)  # left in place, tagged now or before
    if info.exists and top:
        decided = await worker.search(f"UID 1:{top} OR KEYWORD {TRIAGED} KEYWORD {RELEASED}")
        # Ranges between the UIDs to skip: UIDs no message has any more cost nothing.
        skip = sorted({*recent, *(uid for uid in decided if uid <= top)})
        for target in uid_ranges(top, skip):
            await worker.add_flags_to(target, (TRIAGED, NOT_HELD))
    last = recent[0] - 1 if recent else top
    window = s.triage.first_start_window
    store.first_start(s.login, info.uidvalidity, last, tagged, window, s.clock())
    log.info(
        "%s: first start: %d message(s) already in INBOX left in place (tagged %s %s);"
        " %d unread from the last %g hour(s) triaged as new",
        name, tagged, TRIAGED, NOT_HELD, len(recent), window / 3600,
    )  # fmt: skip


async def _recent_unread(worker: Upstream, settings: EngineSettings, top: int) -> list[int]:
    """UIDs up to ``top`` of unread, untriaged mail that arrived or is dated within the
    window. SEARCH dates are whole days, so the day before is asked and times compared."""
    window = settings.triage.first_start_window
    if window <= 0 or top <= 0:
        return []
    since = settings.clock() - timedelta(seconds=window)
    day = (since - timedelta(days=1)).strftime("%d-%b-%Y")
    found = await worker.search(
        f"UID 1:{top} UNSEEN UNKEYWORD {TRIAGED} UNKEYWORD {RELEASED}"
        f" OR SINCE {day} SENTSINCE {day}"
    )
    found = [uid for uid in found if uid <= top]
    if not found:
        return []
    items = "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (DATE)])"
    return sorted(f.uid for f in await worker.fetch(found, items) if arrived_since(f, since))


def uid_ranges(top: int, skip: Sequence[int], longest: int = 4000) -> list[str]:
    """UIDs 1..top except ``skip`` (sorted) as UID sets (``1:4,6:9``), each at most about
    ``longest`` characters, so no command line grows past what servers take (Dovecot: 64 KB)."""
    parts: list[str] = []
    start = 1
    for uid in [*skip, top + 1]:
        if uid > start:
            parts.append(str(start) if uid - 1 == start else f"{start}:{uid - 1}")
        start = max(start, uid + 1)
    out: list[str] = []
    for part in parts:
        if out and len(out[-1]) + len(part) < longest:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def arrived_since(fetched: Fetched, since: datetime) -> bool:
    """The message arrived (INTERNALDATE) or is dated (Date:) at ``since`` or later."""
    moments = []
    if fetched.internaldate:
        with contextlib.suppress(ValueError):
            moments.append(datetime.strptime(fetched.internaldate.strip(), "%d-%b-%Y %H:%M:%S %z"))
    date = mail_of(fetched).date
    if date is not None:
        moments.append(date if date.tzinfo else date.replace(tzinfo=UTC))
    return any(moment >= since for moment in moments)
