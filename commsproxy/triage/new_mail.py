"""Triage of new mail in INBOX, one chunk at a time: decide, tag, file and hold.

Every change on the server follows engine.py's order: the decision goes to the state store,
``UID STORE +FLAGS`` writes it as keywords, ``UID MOVE`` holds the message. A message in INBOX
that carries ``$Triaged`` and a hold keyword is either one whose move was interrupted (the store
has its decision under this UID: move it) or one the user brought back from a hold mailbox (a
new UID: a correction, leave it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..classifier.mail import Mail
from ..imap.names import (
    FILED,
    HELD_AS,
    INBOX,
    LABEL_KEYWORDS,
    NOT_HELD,
    RELEASED,
    TRIAGED,
    URGENT,
)
from ..imap.responses import Fetched, MailboxInfo
from .account_match import resolve_incoming
from .decide import Decider, Decision
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .fetched_mail import mail_of
from .filed_about import mail_about
from .filer import Filer
from .history_keeper import HistoryKeeper
from .holding import holding_stopped
from .state_store import Correction, StateStore
from .state_store import Decision as StoredDecision
from .upstream import Upstream

__all__ = ["NewMail"]

log = logging.getLogger("commsproxy.triage")

_CHUNK = 500  # messages per triage step: bounded memory on a first start with a full INBOX
# Keywords and holds go out per group of steps: one UID STORE per label and one UID MOVE per
# hold mailbox for up to this many messages looked at (more only where a command line would
# pass about 8 KB: upstream.py). On maildir a UID MOVE costs about the same whatever its size,
# growing with the mailbox (about 300 to 600 ms at 100,000 messages), so a backlog split
# between two hold mailboxes pays two MOVEs per group rather than two per step; a STORE costs
# 20 ms there. Each step's decisions are in the state store before the group's keywords go
# out (a crash in between decides those messages again at the next start: the parts keep
# what they heard once, filing finds its copies), and the keywords before the moves. The
# cursor passes a group only once its moves are done (the gate reads "at or below the
# cursor" as decided and moved away if held).
# What an urgent message in a backlog waits for is unchanged: the gate shows the mail a pass
# decided once that pass is done (engine.py), failing open after [triage] gate_timeout; a
# group only keeps the state store's cursor up to this many messages behind the decisions.
_GROUP = 2000
# Bodies per UID FETCH: as many of a step as should fit in this many bytes of answer, going by
# the size of the messages fetched last (at first the largest a message can give: header and
# body prefix), so a step of small messages costs one round trip and big ones stay bounded.
# Not by RFC822.SIZE asked beforehand: on maildir the server reads every new file for it (at
# 100,000 messages 0.2 to 0.7 s for 2,000 new ones), and reads them again for the bodies.
_FETCH_BYTES = 8 << 20
_HEADER_GUESS = 16 << 10  # a header's size, for the first guess
_LEAST_GUESS = 2 << 10  # a message's size is never guessed smaller
_GONE_NOTE = "gone before it was held: deleted or moved by another client"
# A decision goes to the store with the head of its reason (label and score, and what the
# engine adds: "already read", "quiet hours"); the model's reasons are worded in a thread
# while the group's keywords and moves are on their way to the server, which leaves the
# engine's CPU idle then, and written over the head once worded (a crash in between leaves
# the head: the message is still where its decision says). Their words need the messages:
# past this many characters of bodies kept for a group, a step's reasons are worded at once.
_LATER_CHARS = 4_000_000


@dataclass
class _Tags:
    """A group's keywords to write: UIDs per label, kept in INBOX though not urgent, filed."""

    labels: dict[str, list[int]] = field(default_factory=dict)
    not_held: list[int] = field(default_factory=list)
    filed: list[int] = field(default_factory=list)


@dataclass
class _Later:
    """A group's decisions whose reasons are worded while the server holds its mail: each
    record with its decision, what the engine added to the reason, and where it went (for
    the log)."""

    items: list[tuple[StoredDecision, Decision, str, str]] = field(default_factory=list)
    chars: int = 0  # body characters the decisions keep alive until they are worded

    def word(self) -> list[str]:
        """Every reason in full (runs in a thread: it touches nothing but the decisions)."""
        return [decision.in_full() for _, decision, _, _ in self.items]


@dataclass
class NewMail:
    """What triaging one session's new mail needs; ``decided`` hears of the last decision
    (when, and what: for health), ``name`` says whose triage in the log."""

    settings: EngineSettings
    store: StateStore
    decider: Decider
    hold_names: dict[str, str]  # batch name -> mailbox name on the server
    recent_held: deque[int]  # INBOX UIDs moved, for the gate
    history: HistoryKeeper | None
    filer: Filer | None
    decided: Callable[[datetime, str], None]
    name: str
    parts: Sequence[EnginePart] = ()  # told of each decision before the mail moves
    # Bytes a message's header and body prefix take, as fetched last (0: nothing fetched yet).
    _per_message: int = field(default=0, init=False, repr=False)

    def __str__(self) -> str:
        return self.name

    async def triage_new(self, worker: Upstream, info: MailboxInfo) -> list[int]:
        """Triage the UIDs above the cursor; returns those it found (all triaged by now)."""
        login = self.settings.login
        cursor = self.store.cursor(login, INBOX)
        last = cursor[1] if cursor and cursor[0] == info.uidvalidity else 0
        if cursor and cursor[0] != info.uidvalidity:
            log.warning("%s: INBOX UIDVALIDITY changed; re-scanning by keywords", self)
        # ``n:*`` names the last message even when n is above every UID: hence the filter.
        uids = [uid for uid in await worker.search(f"UID {last + 1}:*") if uid > last]
        for first in range(0, len(uids), _GROUP):
            group = uids[first : first + _GROUP]
            pending, tags, later = await self._triage_group(worker, info.uidvalidity, group)
            await self._tag_and_hold(worker, info.uidvalidity, pending, tags, later)
            self.store.set_cursor(login, INBOX, info.uidvalidity, group[-1])
        return uids

    async def _tag_and_hold(
        self,
        worker: Upstream,
        uidvalidity: int,
        pending: dict[str, list[int]],
        tags: _Tags,
        later: _Later,
    ) -> None:
        """The group's keywords, then its moves; meanwhile its reasons are worded."""
        words = asyncio.ensure_future(asyncio.to_thread(later.word)) if later.items else None
        try:
            await self._tag(worker, tags)
            if not self.settings.dry_run:
                await self._hold(worker, uidvalidity, pending)
        finally:
            if words is not None:
                await self._worded(uidvalidity, later, words)

    async def _worded(
        self, uidvalidity: int, later: _Later, words: asyncio.Future[list[str]]
    ) -> None:
        """The reasons worded while the server held the mail: into the store and the log."""
        try:
            full = await asyncio.shield(words)
        except asyncio.CancelledError:
            # A stop: the thread ends its words (no I/O, a fraction of a second); they are
            # kept, and the stop goes on.
            await asyncio.wait([words])
            if not words.cancelled() and words.exception() is None:
                self._keep_words(uidvalidity, later, words.result())
            raise
        except Exception:  # a bug in wording: the decisions keep their label and score
            log.exception("%s: wording the reasons of %d decision(s) failed", self,
                          len(later.items))  # fmt: skip
            return
        self._keep_words(uidvalidity, later, full)

    def _keep_words(self, uidvalidity: int, later: _Later, full: list[str]) -> None:
        worded = list(zip(later.items, full, strict=True))
        self.store.word_reasons(
            self.settings.login,
            INBOX,
            uidvalidity,
            [(record.uid, decision.reason, text) for (record, decision, _, _), text in worded],
        )
        if log.isEnabledFor(logging.INFO):
            log.info("%s", "\n".join(
                f"{self}: uid {record.uid} {record.label}{where}: {text}{added}"
                for (record, _, added, where), text in worded
            ))  # fmt: skip

    async def _hold(
        self, worker: Upstream, uidvalidity: int, pending: dict[str, list[int]]
    ) -> None:
        """One UID MOVE per hold mailbox (upstream.py splits only beyond its own limit)."""
        for mailbox, held in pending.items():
            moved = await worker.move(held, mailbox)
            kept = [uid for uid in held if uid not in moved.gone]
            self.recent_held.extend(kept)
            if kept:
                log.info("%s: held %d message(s) in %s", self, len(kept), mailbox)
            if moved.gone:
                self._gone(uidvalidity, sorted(moved.gone))

    async def _triage_group(
        self, worker: Upstream, uidvalidity: int, uids: list[int]
    ) -> tuple[dict[str, list[int]], _Tags, _Later]:
        """Decide and file a group's new mail in steps; returns what is to be held, per
        mailbox (the new decisions and the moves a crash interrupted), the keywords to write
        and the decisions whose reasons are still to be worded."""
        s = self.settings
        looked = await worker.fetch(uids, "(UID FLAGS)", per_command=len(uids))
        flags = {f.uid: f.flags for f in looked}
        fresh = [uid for uid, fl in flags.items() if TRIAGED not in fl and RELEASED not in fl]
        pending: dict[str, list[int]] = {}  # mailbox -> UIDs whose move was interrupted
        rescued: dict[int, str] = {}  # UID -> the label it was held as
        for uid, fl in flags.items():
            if TRIAGED not in fl or RELEASED in fl:
                continue
            held_as = next((HELD_AS[k] for k in fl if k in HELD_AS), None)
            if held_as is None or NOT_HELD in fl:
                continue
            known = self.store.decision_for_uid(s.login, INBOX, uidvalidity, uid)
            if known is not None and known.held and known.batch in self.hold_names:
                pending.setdefault(self.hold_names[known.batch], []).append(uid)
            elif known is None:
                rescued[uid] = held_as
        if rescued:
            await self._rescued(worker, rescued)
        steps = [fresh[i : i + _CHUNK] for i in range(0, len(fresh), _CHUNK)]
        # The next step's bodies are asked for before this step is decided, so the server
        # reads them while the classifier works: at most two steps' mail in memory.
        ahead: asyncio.Task[list[Fetched]] | None = None
        tags = _Tags()
        later = _Later()
        try:
            for i, step in enumerate(steps):
                fetched = await (ahead or self._bodies(worker, step))
                ahead = None
                if i + 1 < len(steps):
                    ahead = asyncio.create_task(self._bodies(worker, steps[i + 1]))
                    await asyncio.sleep(0)  # its FETCH goes out before the work below
                holds = await self._step(fetched, uidvalidity, tags, later)
                for mailbox, held in holds.items():
                    pending.setdefault(mailbox, []).extend(held)
        finally:
            if ahead is not None:  # this pass failed: its link is given up (engine.py)
                ahead.cancel()
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()  # the failure that counts is the one on its way out
        return pending, tags, later

    async def _bodies(self, worker: Upstream, uids: list[int]) -> list[Fetched]:
        """What the classifier reads of each message: header and the body's first bytes."""
        prefix = self.settings.triage.body_prefix
        items = f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{prefix}>)"
        fetched: list[Fetched] = []
        start = 0
        while start < len(uids):
            guess = self._per_message or prefix + _HEADER_GUESS
            part = uids[start : start + max(_FETCH_BYTES // guess, 1)]
            start += len(part)
            got = await worker.fetch(part, items, per_command=len(part))
            if got:
                size = sum(len(f.header) + len(f.text) for f in got) // len(got)
                self._per_message = max(size, _LEAST_GUESS)
            fetched += got
        return fetched

    async def _step(
        self, fetched: list[Fetched], uidvalidity: int, tags: _Tags, later: _Later
    ) -> dict[str, list[int]]:
        """Decide and file one step's mail, its keywords into ``tags``; returns what is to be
        held, per mailbox."""
        if not fetched:  # gone (another client) between the two FETCHes
            return {}
        mails = [mail_of(f) for f in fetched]
        holds, labels = self._decide(fetched, mails, uidvalidity, later)
        # Filing copies before tagging, so the team's copy carries none of our keywords.
        tags.filed.extend(await self._file([f.uid for f in fetched], mails))
        # Would be held but was not (read already, or a dry run): say so on the server, so
        # that without the store it is not mistaken for mail the user brought back.
        held_now = {uid for uids in holds.values() for uid in uids}
        tags.not_held += [u for u, lb in labels.items() if lb != URGENT and u not in held_now]
        for uid, label in labels.items():
            tags.labels.setdefault(label, []).append(uid)
        return holds

    def _gone(self, uidvalidity: int, uids: list[int]) -> None:
        """Deleted or moved by another client before the move: done, not a failure."""
        log.info(
            "%s: uid %s gone before it could be held (deleted or moved by another client)",
            self, ",".join(map(str, uids)),
        )  # fmt: skip
        self.store.mark_gone(self.settings.login, INBOX, uidvalidity, uids, _GONE_NOTE)

    def _decide(
        self,
        fetched: Sequence[Fetched],
        mails: Sequence[Mail],
        uidvalidity: int,
        later: _Later | None = None,
    ) -> tuple[dict[str, list[int]], dict[int, str]]:
        """Classify, and write the decisions to the store before anything changes upstream.

        Returns the UIDs to hold per mailbox and each UID's label. With ``later``, the
        reasons left to be worded go there (within _LATER_CHARS), else they are worded now."""
        s = self.settings
        decisions = self.decider.decide(mails)
        chars = sum(len(mail.body) for mail in mails)
        defer = later is not None and later.chars + chars <= _LATER_CHARS
        if later is not None and defer:
            later.chars += chars
        now = s.clock()
        # `commsproxy stop-holding`: decide and tag as ever, but leave everything in INBOX.
        stopped = holding_stopped(self.store.path.parent) is not None
        records: list[StoredDecision] = []
        said: list[str] = []  # a line per decision, logged as one record (cheaper per message)
        holds: dict[str, list[int]] = {}
        labels: dict[int, str] = {}
        for f, mail, decision in zip(fetched, mails, decisions, strict=True):
            batch = s.batch_for(decision.label, now) if decision.label != URGENT else None
            seen = "\\Seen" in f.flags and not s.triage.hold_seen
            held = batch is not None and not seen and not s.dry_run and not stopped
            added = " (already read: left in INBOX)" if batch and seen else ""
            if batch is not None and not seen and stopped and not s.dry_run:
                added += " (holding stopped: left in INBOX)"
            elif held and batch is not None and batch.quiet is not None:
                added += " (quiet hours: held until they end)"
            worded_later = defer and decision.later is not None
            reason = (decision.reason if worded_later else decision.in_full()) + added
            labels[f.uid] = decision.label
            record = StoredDecision(
                login=s.login,
                mailbox=INBOX,
                uidvalidity=uidvalidity,
                uid=f.uid,
                message_id=mail.message_id,
                label=decision.label,
                score=decision.score,
                reason=reason,
                batch=batch.name if batch else None,
                held=held,
                sender=mail.sender,
                subject=mail.subject,
                decided_at=now,
            )
            records.append(record)
            where = ""
            if batch is not None and held:
                holds.setdefault(self.hold_names[batch.name], []).append(f.uid)
                where = f" -> {batch.mailbox}"
            elif batch is not None and not seen and s.dry_run:  # say what a run would do
                where = f" (dry run: would be held in {batch.mailbox})"
            elif batch is not None and not seen:
                where = " (holding stopped: left in INBOX)"
            if worded_later and later is not None:
                later.items.append((record, decision, added, where))  # logged once worded
            else:
                said.append(f"{self}: uid {f.uid} {decision.label}{where}: {reason}")
        if said and log.isEnabledFor(logging.INFO):
            log.info("%s", "\n".join(said))
        self.store.record_decisions(records)
        for part in self.parts:
            try:
                part.decided(mails, records)
            except Exception:  # a part's bug must not stop triage (engine_part.py)
                log.exception("%s: %s failed to hear of new decisions", self, part)
        if records:
            last = records[-1]
            mailboxes = {b.name: b.mailbox for b in s.batches}
            held_in = mailboxes.get(last.batch or "", last.batch)
            what = f"{last.label}, " + (f"held in {held_in}" if last.held else "in INBOX")
            self.decided(last.decided_at, what)
        if self.history is not None:
            self.history.received(mails)  # after deciding: a message is not its own history
        return holds, labels

    async def _file(self, uids: Sequence[int], mails: Sequence[Mail]) -> set[int]:
        """Copy each message that belongs to a customer account into its folder."""
        setup = self.settings.filing
        if setup is None or self.filer is None:
            return set()
        filings = resolve_incoming(mails, setup.rules, setup.guesser)
        items = [
            (uid, mail.message_id, filing)
            for uid, mail, filing in zip(uids, mails, filings, strict=True)
            if filing is not None
        ]
        if self.settings.dry_run:
            for uid, _, filing in items:
                log.info("%s: uid %d (dry run: would file in %s: %s)", self, uid,
                         filing.account, filing.reason)  # fmt: skip
            return set()
        if not items:
            return set()
        # Who and what each filing is about, from the parsed mail: no second FETCH.
        about = {
            uid: mail_about("incoming", mail)
            for uid, mail, filing in zip(uids, mails, filings, strict=True)
            if filing is not None
        }
        return await self.filer.file_incoming(items, about=about)

    async def _tag(self, worker: Upstream, tags: _Tags) -> None:
        """The decisions as keywords: one UID STORE per label, then ``$NotHeld`` and
        ``$Filed``."""
        for label, uids in tags.labels.items():
            await worker.add_flags(uids, (TRIAGED, *LABEL_KEYWORDS[label]))
        if tags.not_held:
            await worker.add_flags(tags.not_held, (NOT_HELD,))
        if tags.filed:
            await worker.add_flags(tags.filed, (FILED,))

    async def _rescued(self, worker: Upstream, rescued: dict[int, str]) -> None:
        """Held messages back in INBOX under new UIDs: the user moved them; learn from that."""
        headers = {f.uid: f for f in await worker.fetch(list(rescued), "(UID BODY.PEEK[HEADER])")}
        for uid, previous in rescued.items():
            log.info("%s: uid %d came back from a hold mailbox: recorded as urgent", self, uid)
            mail = mail_of(headers.get(uid, Fetched(uid, frozenset())))
            self.store.record_correction(
                Correction(
                    login=self.settings.login,
                    message_id=mail.message_id,  # without it the correction cannot train
                    kind="rescue",
                    label=URGENT,
                    previous=previous,
                    sender=mail.sender,
                    subject=mail.subject,
                    at=self.settings.clock(),
                )
            )
