"""Keeping one login's live history: load or read it at start, feed it, save it, watch Sent.

The engine calls :meth:`HistoryKeeper.start` at the start of each session, before its first
triage pass: a history saved in the state store is loaded and Sent is read from where it was
left (a restart never reads the server again); without one, the server is read once
(history_reader.py), bounded by ``[triage] history_seconds`` and ``history_messages``, so triage
waits at most that long and only at a login's first start. Then every triaged message counts as
received (after it was decided: a message's history is of the mail before it), what the user
sends through the SMTP side is added at once, and Sent is looked at every
``history_sent_check`` seconds with one STATUS for mail sent from other devices. The history is
saved with the Sent cursor in one row, at most every ``SAVE_EVERY`` seconds and at the end of
a session. Only counts go to the log and to ``status``; names never do.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from ..classifier.mail import Mail
from ..config import TriageConfig
from .history import LiveHistory
from .history_reader import ReadProgress, choose_folders, read_history, read_new
from .state_store import HistoryRecord, StateStore
from .upstream import CommandRefused, Upstream

__all__ = ["CATCH_UP", "SAVE_EVERY", "HistoryKeeper"]

log = logging.getLogger("commsproxy.triage")

SAVE_EVERY = 10.0  # seconds between saves while mail flows (the document can be a few MB)
CATCH_UP = 1000  # newest messages read from Sent per look; older ones are skipped
_LOG_EVERY = 1000  # headers between progress lines in the log


class HistoryKeeper:
    def __init__(
        self,
        history: LiveHistory,
        store: StateStore,
        login: str,
        triage: TriageConfig,
        *,
        address: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.history = history
        self.store = store
        self.login = login
        self.triage = triage
        self.address = address  # the login's user name when it is an address
        self._clock = clock
        self._monotonic = monotonic
        now = clock()
        self.record = HistoryRecord(
            login, "reading", None, None, 0, 0, None, 0, None, None, None, now
        )
        self._last_look: float | None = None  # when Sent was last looked at (monotonic)
        # Hears each message found in Sent (sent from another device): the follow-ups.
        self.found_sent: Callable[[Sequence[Mail]], None] | None = None
        self._last_save = monotonic()
        self._logged = 0

    def __str__(self) -> str:
        return f"history[{self.login}]"

    # -- start ---------------------------------------------------------------------------------

    async def start(self, up: Upstream, leave_out: Sequence[str] = ()) -> None:
        """Load the saved history and catch up, or read it from the server (bounded)."""
        if not self.history.known:
            self._load()
        if self.history.known:
            await self.look_at_sent(up, force=True)
            self.save(force=True)
        else:
            await self._first_read(up, leave_out)

    def _load(self) -> None:
        saved = self.store.history(self.login)
        if saved is None or saved.document is None:
            return
        try:
            self.history.load_document(json.loads(saved.document))
        except ValueError as err:  # json's errors are ValueErrors too
            log.warning("%s: the saved history cannot be used (%s); reading it again", self, err)
            return
        self.record = replace(saved, document=None)  # held once, in the history itself
        senders, sent = len(self.history), self.history.sent_count
        log.info("%s: loaded: %d senders, %d sent", self, senders, sent)

    async def _first_read(self, up: Upstream, leave_out: Sequence[str]) -> None:
        t = self.triage
        folders = await choose_folders(up, leave_out)
        sent_at: dict[str, int] = {}
        if folders.sent is not None:
            try:
                sent_at = await up.status(folders.sent, "(UIDNEXT UIDVALIDITY)")
            except CommandRefused as err:
                log.warning("%s: Sent cannot be watched: %s", self, err)
        started = self._clock()
        self.record = replace(self.record, state="reading", started=started, updated=started)
        self.store.save_history(self.record)
        log.info(
            "%s: reading the history with senders from %s and %d other folder(s)"
            " (at most %g s, %d messages)",
            self, folders.sent or "no Sent folder", len(folders.others),
            t.history_seconds, t.history_messages,
        )  # fmt: skip
        begun = self._last_look = self._monotonic()  # Sent's cursor is as of now
        mails, progress = await read_history(
            up,
            folders,
            now=started,
            seconds=t.history_seconds,
            messages=t.history_messages,
            monotonic=self._monotonic,
            report=self._progress,
        )
        sent_name = folders.sent
        self.history.absorb(mails, is_sent=lambda m: m.folder == sent_name, login=self.address)
        self.history.known = True
        uidnext = sent_at.get("UIDNEXT")
        finished = self._clock()
        self.record = replace(
            self.record,
            state="ready",
            finished=finished,
            messages=progress.messages,
            folders=progress.folders,
            stopped=progress.stopped,
            sent_mailbox=sent_name if sent_at else None,
            sent_uidvalidity=sent_at.get("UIDVALIDITY"),
            # Sent as it was when the read began: anything newer is read by the next look.
            sent_uid=uidnext - 1 if uidnext is not None else None,
        )
        self.save(force=True)
        stopped = {"time": ", stopped at the time limit", "count": ", stopped at the count"}
        log.info(
            "%s: ready: %d headers from %d folder(s) in %.1f s%s; %d senders, %d sent",
            self, progress.messages, progress.folders, self._monotonic() - begun,
            stopped.get(progress.stopped or "", ""), len(self.history), self.history.sent_count,
        )  # fmt: skip

    def _progress(self, progress: ReadProgress) -> None:
        self.record = replace(
            self.record, messages=progress.messages, folders=progress.folders,
            updated=self._clock(),
        )  # fmt: skip
        self.store.save_history(self.record)
        if progress.messages >= self._logged + _LOG_EVERY:
            self._logged = progress.messages
            log.info("%s: %d headers read", self, progress.messages)

    # -- as mail flows -------------------------------------------------------------------------

    def received(self, mails: Sequence[Mail]) -> None:
        """Triaged messages (call after deciding them: a message is not its own history)."""
        for mail in mails:
            self.history.add_received(mail)

    def sent(self, mail: Mail) -> None:
        """A message the user sent through the SMTP side."""
        if not mail.automatic:
            self.history.add_sent(mail, from_user=True)

    def next_look(self) -> float:
        """Seconds until ``look_at_sent`` has a look due: the worker's nap ends then, not a
        whole ``history_sent_check`` after whatever woke it last."""
        every = self.triage.history_sent_check
        if self._last_look is None:
            return every
        return max(self._last_look + every - self._monotonic(), 0.0)

    async def look_at_sent(self, up: Upstream, *, force: bool = False) -> None:
        """Read what arrived in Sent since the last look; one STATUS when nothing did."""
        now = self._monotonic()
        due = self._last_look is None or now - self._last_look >= self.triage.history_sent_check
        if not (force or due):
            return
        self._last_look = now  # also while the history is not known: the next look is due then
        if not self.history.known:
            return
        mailbox = self.record.sent_mailbox
        if mailbox is None:
            mailbox = (await choose_folders(up)).sent
            if mailbox is None:
                return
        try:
            status = await up.status(mailbox, "(UIDNEXT UIDVALIDITY)")
        except CommandRefused as err:
            if self.record.sent_mailbox is not None:  # said once, not at every look
                log.warning("%s: Sent cannot be read (%s); looking for it again later", self, err)
            self.record = replace(self.record, sent_mailbox=None)
            return
        validity, uidnext = status.get("UIDVALIDITY"), status.get("UIDNEXT")
        last = self.record.sent_uid or 0
        if validity != self.record.sent_uidvalidity or mailbox != self.record.sent_mailbox:
            last = 0  # a new or renumbered Sent: its newest mail, each message counted once
        if uidnext is not None and uidnext <= last + 1:
            return
        mails, highest = await read_new(up, mailbox, last, CATCH_UP)
        # An auto-reply's copy in Sent (Gmail and Microsoft 365 keep one) is not the user
        # answering that sender.
        added = self.history.add_sent_batch([m for m in mails if not m.automatic])
        if self.found_sent is not None and mails:
            self.found_sent(mails)
        self.record = replace(
            self.record, sent_mailbox=mailbox, sent_uidvalidity=validity, sent_uid=highest
        )
        self.history.changed = True
        if added:
            log.info("%s: %d message(s) found in %s", self, added, mailbox)

    # -- saving --------------------------------------------------------------------------------

    def save(self, *, force: bool = False) -> None:
        """Save when it changed, at most every SAVE_EVERY seconds unless ``force``."""
        now = self._monotonic()
        if not self.history.changed or not (force or now - self._last_save >= SAVE_EVERY):
            return
        if not self.history.known:
            return  # a partial first read is not saved: the next start reads again
        document = json.dumps(self.history.to_document(), separators=(",", ":"))
        self.record = replace(
            self.record, senders=len(self.history), updated=self._clock(), document=document
        )
        self.store.save_history(self.record)
        self.record = replace(self.record, document=None)  # held once, in the history itself
        self.history.changed = False
        self._last_save = now
