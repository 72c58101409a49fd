"""Snooze: mail the user moves into a ``Snoozed/…`` mailbox comes back to INBOX at its time.

Any mail program can snooze: the boxes are ordinary mailboxes under ``[snooze] root`` (Tomorrow,
Monday, Next week, In 2 hours, and the user's own, each with a time rule), created and subscribed
at each session start and when a reload changes them (not in a dry run). The server is the
truth, as for batches:

- **Noticing.** Every ``LOOK_EVERY`` seconds one ``LIST ... RETURN (STATUS (MESSAGES UIDNEXT
  UIDVALIDITY))`` for all the boxes where the server offers LIST-STATUS (RFC 5819), else one
  STATUS per box; only a box whose answer changed is selected. Messages above the box's UID
  cursor are recorded in the state store with their due time (the box's rule from the moment
  they were noticed) before anything else happens to them; recorded messages no longer there
  (the user took them out early) are forgotten, never returned.
- **Returning.** A due message is marked ``returning`` in the store first; then a copy goes to
  INBOX dated now, unread, with ``$Triaged $Released`` (triage never decides about it again)
  and ``$Unsnoozed``; then exactly the original is expunged by UID (release.py's ``reappend``).
  A redo of a ``returning`` record looks in INBOX for its copy (``$Unsnoozed``, the same size
  and header) before appending, so a cut at any point leaves exactly one copy. A laptop that
  wakes past the time returns everything due at once, once.
"""

from __future__ import annotations

import logging
import time as monotonic_time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..classifier.mail import MailParseError, parse_mail
from ..config import SnoozeConfig, local_zone
from ..imap.commands import quote_string
from ..imap.names import INBOX, RELEASED, SEEN, TRIAGED, UNSNOOZED
from ..imap.responses import Fetched
from ..timespec import When
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .filed_about import mail_about
from .refusal_waits import RefusalWaits
from .release import reappend
from .state_store import Snooze, StateStore
from .upstream import CommandRefused, Upstream

__all__ = ["SnoozeBox", "Snoozes", "due_back", "returned_flags"]

log = logging.getLogger("commsproxy.triage")

# Seconds between looks at the boxes (one LIST-STATUS, or one STATUS each). A message's due
# time counts from when it is noticed, so a look every 30 s rather than every 5 s makes a
# snooze of hours at most 30 s longer; it still comes back at that time, and an idle proxy
# (and its server) does six times less for snooze.
LOOK_EVERY = 30.0
_RETRY = 60.0  # seconds before a return the server refused is tried again
_DROPPED = frozenset({"\\recent", "\\deleted", SEEN.lower()})


@dataclass(frozen=True)
class SnoozeBox:
    name: str  # as in the config ("Tomorrow"), under [snooze] root
    when: When
    mailbox: str  # the server's name for it


def due_back(
    when: When, noticed: datetime, zone: ZoneInfo, morning: time, workdays: frozenset[int]
) -> datetime:
    """When a message noticed in a box at ``noticed`` comes back (aware UTC)."""
    return when.after(noticed, zone, morning, workdays)


def returned_flags(flags: frozenset[str]) -> list[str]:
    """The copy's flags: the original's, unread, marked as triaged, released and unsnoozed."""
    kept = [f for f in sorted(flags) if f.lower() not in _DROPPED]
    return [*kept, *(k for k in (TRIAGED, RELEASED, UNSNOOZED) if k not in flags)]


class Snoozes(EnginePart):
    name = "snooze"

    def __init__(
        self,
        settings: EngineSettings,
        store: StateStore,
        *,
        zone: ZoneInfo | None = None,
        look_every: float = LOOK_EVERY,
    ) -> None:
        super().__init__(settings)
        self.store = store
        self.zone = zone  # None: this machine's zone, read when a due time is computed
        self.look_every = look_every
        self.boxes: list[SnoozeBox] = []
        self.stepped: datetime | None = None  # the clock as the last finished step began
        self._seen: dict[str, tuple[int, ...]] = {}  # mailbox -> its last STATUS
        self._next_look = 0.0  # monotonic time
        self._retry = RefusalWaits(_RETRY, _now)  # returns the server refused
        self._made_for: SnoozeConfig | None = None  # the config the boxes were made for

    # -- the engine's hooks -------------------------------------------------------------------

    async def start(self, worker: Upstream) -> None:
        self._retry.clear()
        self._made_for = None  # a new session: the boxes are looked at and made again
        await self.step(worker)

    def next_due(self) -> datetime | None:
        now = self.settings.clock()
        pending = self.store.snoozed(self.settings.login)
        first = self._retry.next_try(((s.id, s.due) for s in pending), now)
        later = [first] if first is not None else []
        if self.boxes:
            later.append(now + timedelta(seconds=max(self._next_look - _now(), 0.0)))
        return min(later, default=None)

    async def step(self, worker: Upstream) -> None:
        began = self.settings.clock()
        try:
            if self._made_for != self.settings.snooze:  # a session start, or a reload
                await self._make_boxes(worker)
            if self.boxes and _now() >= self._next_look:
                await self._look(worker)
            if not self.settings.dry_run:
                await self._return_due(worker, began)
        finally:
            if worker.selected != INBOX and not worker.closed:
                await worker.select(INBOX)  # the engine's worker keeps INBOX selected
        self.stepped = began

    async def _make_boxes(self, worker: Upstream) -> None:
        """The configured boxes exist and are subscribed (mail programs show them); none
        is made or watched in a dry run or with ``[snooze] enabled = false``. Mail noticed
        before keeps its time either way."""
        snooze = self.settings.snooze
        self.boxes, self._seen, self._next_look = [], {}, 0.0
        if snooze.enabled and not self.settings.dry_run:
            await worker.ensure_mailbox(await worker.server_name(snooze.root))
            for name, when in snooze.boxes:
                mailbox = await worker.server_name(f"{snooze.root}/{name}")
                await worker.ensure_mailbox(mailbox)
                self.boxes.append(SnoozeBox(name, when, mailbox))
        self._made_for = snooze

    # -- noticing -----------------------------------------------------------------------------

    async def _look(self, worker: Upstream) -> None:
        self._next_look = _now() + self.look_every
        found = await worker.statuses([box.mailbox for box in self.boxes])
        for box in self.boxes:
            status = found.get(box.mailbox)
            if status is None:  # removed by the user, or never created (a dry run)
                continue
            key = tuple(status.get(k, -1) for k in ("MESSAGES", "UIDNEXT", "UIDVALIDITY"))
            if self._seen.get(box.mailbox) != key:
                await self._reconcile(worker, box, key[0], key[2])
                self._seen[box.mailbox] = key

    async def _reconcile(self, worker: Upstream, box: SnoozeBox, count: int, validity: int) -> None:
        """Record what is new in ``box``; forget what the user took out of it."""
        login = self.settings.login
        records = [
            s
            for s in self.store.snoozed(login)
            if s.mailbox == box.mailbox and s.state == "waiting"
        ]
        present: set[int] = set()
        if count > 0:
            info = await worker.select(box.mailbox)
            validity = info.uidvalidity
            present = set(await worker.search("UNDELETED"))
        cursor = self.store.cursor(login, box.mailbox)
        last = cursor[1] if cursor is not None and cursor[0] == validity else 0
        new = sorted(uid for uid in present if uid > last)
        if new:
            now = self.settings.clock()
            zone = self.zone or local_zone()
            s = self.settings
            due = due_back(box.when, now, zone, s.snooze.morning, s.followup.workdays)
            ids, about = await _message_ids(worker, new)
            self.store.note_snoozed(
                login, box.mailbox, box.name, validity, [(u, ids.get(u)) for u in new], now, due
            )
            self.store.describe_snoozed(login, box.mailbox, validity, about)
            self.store.set_cursor(login, box.mailbox, validity, new[-1])
            log.info(
                "%s: %d message(s) snoozed in %s until %s",
                self, len(new), box.mailbox, due.astimezone(zone).strftime("%a %d %b %H:%M"),
            )  # fmt: skip
        for record in records:
            if record.uidvalidity != validity or record.uid not in present:
                self.store.set_snooze_state(record.id, "forgotten", self.settings.clock())
                log.info("%s: uid %d taken out of %s before its time", self, record.uid,
                         box.mailbox)  # fmt: skip

    # -- returning ----------------------------------------------------------------------------

    async def _return_due(self, worker: Upstream, now: datetime) -> None:
        for record in self.store.snoozed(self.settings.login):
            if record.due > now:
                break
            if self._retry.waiting(record.id):
                continue
            try:
                await self._return(worker, record)
            except CommandRefused as err:  # e.g. the server refuses the APPEND: later again
                self._retry.refused(record.id)
                log.warning("%s: uid %d in %s could not come back yet: %s", self, record.uid,
                            record.mailbox, err)  # fmt: skip
            else:
                self._retry.done(record.id)

    async def _return(self, worker: Upstream, record: Snooze) -> None:
        now = self.settings.clock()
        redo = record.state == "returning"
        if not redo:
            self.store.set_snooze_state(record.id, "returning", now)
        original = await self._original(worker, record)
        if original is not None and not redo and "\\Deleted" in original.flags:
            original = None  # the user deleted it there (our own mark comes after "returning")
        if original is None:
            # Taken out by the user; or, for a redo, returned by the try that was cut.
            state = "returned" if redo else "forgotten"
            self.store.set_snooze_state(record.id, state, now)
            log.info("%s: uid %d is no longer in %s: %s", self, record.uid, record.mailbox, state)
            return
        copied = {original.uid} if redo and await self._copy_there(worker, original) else set()
        await reappend(
            worker, record.mailbox, [original], lambda m: returned_flags(m.flags),
            self.settings.clock, copied,
        )  # fmt: skip
        self.store.set_snooze_state(record.id, "returned", self.settings.clock())
        log.info("%s: uid %d back in INBOX from %s (snoozed in %s)", self, record.uid,
                 record.mailbox, record.box)  # fmt: skip

    async def _original(self, worker: Upstream, record: Snooze) -> Fetched | None:
        try:
            info = await worker.select(record.mailbox)
        except CommandRefused:  # the box is gone, and what was in it with it
            return None
        if info.uidvalidity != record.uidvalidity:
            return None
        fetched = await worker.fetch([record.uid], "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        return next((f for f in fetched if f.uid == record.uid), None)

    async def _copy_there(self, worker: Upstream, original: Fetched) -> bool:
        """Whether INBOX holds this original's copy (a try cut after its APPEND)."""
        header = original.text.split(b"\r\n\r\n", 1)[0]
        size = len(original.text)
        criteria = f"KEYWORD {UNSNOOZED} LARGER {size - 1} SMALLER {size + 1}"
        mid = _message_id(header)
        if mid:
            criteria += f" HEADER Message-ID {quote_string(mid)}"
        await worker.select(INBOX)
        uids = await worker.search(criteria)
        if not uids:
            return False
        copies = await worker.fetch(uids, "(UID BODY.PEEK[HEADER])")
        return any(c.header.split(b"\r\n\r\n", 1)[0] == header for c in copies)


async def _message_ids(
    worker: Upstream, uids: Sequence[int]
) -> tuple[dict[int, str], list[tuple[int, str, str]]]:
    """Each message's Message-ID, and its (UID, sender, subject) for the page and `status`."""
    found: dict[int, str] = {}
    about: list[tuple[int, str, str]] = []
    for fetched in await worker.fetch_headers(uids, ["MESSAGE-ID", "FROM", "SUBJECT"]):
        header = fetched.header.rstrip(b"\r\n") + b"\r\n\r\n"
        try:
            mail = parse_mail(header)
        except MailParseError:
            continue
        if mail.message_id:
            found[fetched.uid] = mail.message_id
        about.append((fetched.uid, *mail_about("incoming", mail)))
    return found, about


def _message_id(header: bytes) -> str | None:
    try:
        return parse_mail(header.rstrip(b"\r\n") + b"\r\n\r\n").message_id or None
    except MailParseError:
        return None


def _now() -> float:
    return monotonic_time.monotonic()
