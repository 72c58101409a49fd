"""Triage for one login: watch INBOX, decide, tag, hold; release on schedule; repair on start.

The engine keeps two upstream connections of its own: a watcher that IDLEs on INBOX (restarted
before the 29-minute limit) and only says "something changed", and a worker that does the work.
Before its first pass the worker loads (or, at a login's first start, reads within bounds) the
user's history with senders (history_keeper.py), which every decision then uses and updates.
Every change on the server follows one order, so that a crash at any point is repaired by the
next start without losing or duplicating mail:

1. the decision goes to the state store (a log, and the mark that a move is pending);
2. ``UID STORE +FLAGS`` writes it on the server as keywords (``$Triaged`` + ``$Later``...);
3. ``UID MOVE`` holds the message (only then does the cursor move past its UID).

On the next pass, a message in INBOX that carries ``$Triaged`` and a hold keyword is either one
whose move was interrupted (the store has its decision under this UID: move it) or one the user
brought back from a hold mailbox (a new UID: a correction, leave it). Released mail carries
``$Released`` and is never triaged again. Deleting the store therefore loses nothing and
triages nothing twice: the keywords are the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ..classifier.mail import Mail, MailParseError, parse_mail
from ..config import BatchConfig, TriageConfig
from ..endpoints import Endpoint
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
from .corrections import CorrectionWatch
from .decide import Decider
from .filer import Filer, FilingSetup
from .history_keeper import HistoryKeeper
from .holding import holding_stopped
from .release import Releaser
from .scheduler import due_release
from .signin import Connector, SignInPaused
from .state_store import Correction, StateStore
from .state_store import Decision as StoredDecision
from .teamhint import TeamWatch
from .upstream import LoginRefused, Upstream, UpstreamImapError, connect

__all__ = ["Engine", "EngineSettings"]

log = logging.getLogger("commsproxy.triage")

_CHUNK = 500  # messages per triage step: bounded memory on a first start with a full INBOX
_IDLE_RESTART = 25 * 60.0  # seconds; servers may drop an IDLE after 29 minutes (RFC 2177)
_TICK = 2.0  # seconds between checks for release requests and due releases
_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # only for failures of the link itself
_GONE_NOTE = "gone before it was held: deleted or moved by another client"

Clock = Callable[[], datetime]


class Credentials(Protocol):
    """Where the engine gets (user, password), or a way to connect (an OAuth2 login, see
    signin.py), each time it connects."""

    async def __call__(self) -> tuple[str, str] | Connector | None: ...

    def refused(self) -> None:
        """The server refused them: do not offer the same again."""

    async def check(self, worker: Upstream) -> None:
        """Between steps; raises SignInPaused when the login cannot go on signed in."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineSettings:
    login: str  # the upstream user name, the key in the store
    endpoint: Endpoint
    tls: ssl.SSLContext
    triage: TriageConfig
    batches: tuple[BatchConfig, ...]
    dry_run: bool = False
    filing: FilingSetup | None = None  # None: no [accounts] to file into
    own_addresses: tuple[str, ...] = ()  # this login's own addresses (for the team hint)
    clock: Clock = field(default=_now)
    connect_timeout: float = 30.0

    def batch_for(self, label: str) -> BatchConfig | None:
        for batch in self.batches:
            if label in batch.labels:
                return batch
        return None


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        decider: Decider,
        store: StateStore,
        credentials: Credentials,
        history: HistoryKeeper | None = None,
    ) -> None:
        self.settings = settings
        self.decider = decider
        self.store = store
        self._credentials = credentials
        self.history = history  # the user's history with senders, kept current (or None)
        self.recent_held: deque[int] = deque(maxlen=10_000)  # INBOX UIDs moved, for the gate
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._passes = 0  # completed triage passes, for catch_up
        self._pass_done = asyncio.Condition()
        self._releaser: Releaser | None = None
        self._filer: Filer | None = None
        self._team: TeamWatch | None = None
        self._corrections: CorrectionWatch | None = None
        self._ready = asyncio.Event()
        # INBOX after the last pass: (messages, of which triaged) — triaged ones come first,
        # in UID order, so the gate may show a client that many and no more.
        self.inbox_state: tuple[int, int] | None = None
        self.hold_names: dict[str, str] = {}  # batch name -> mailbox name on the server

    # -- for the gate and the CLI -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected, and past its first pass: worth waiting for."""
        return self._ready.is_set()

    async def catch_up(self, limit: float, *, while_ready: bool = False) -> tuple[int, int] | None:
        """Triage everything that has arrived, waiting at most ``limit`` seconds.

        Returns INBOX's (messages, triaged messages) once done, for the gate to know what a
        client may see, or None when triage could not finish in time: the caller fails open.
        ``while_ready`` (the gate): None at once when the engine is not connected or drops
        while waiting -- no client command may wait out a backoff.
        """
        if while_ready and not self.ready:
            return None
        try:
            async with asyncio.timeout(limit):
                await self._ready.wait()
                # A pass already running may have started before the mail arrived: wait for
                # the one after it.
                target = self._passes + (2 if self._lock.locked() else 1)
                self._wake.set()
                async with self._pass_done:
                    await self._pass_done.wait_for(
                        lambda: self._passes >= target or (while_ready and not self.ready)
                    )
                return self.inbox_state if self.ready or not while_ready else None
        except TimeoutError:
            return None

    async def release(self, batch_name: str | None = None) -> dict[str, int]:
        """Release one batch (or all) now, between triage passes; messages moved per batch."""
        await asyncio.wait_for(self._ready.wait(), 60)
        assert self._releaser is not None
        moved: dict[str, int] = {}
        for batch in self.settings.batches:
            if batch_name in (None, batch.name):
                async with self._lock:
                    moved[batch.name] = await self._releaser.release(batch, scheduled=None)
        return moved

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; reconnect with backoff on any upstream error."""
        failures = 0
        waiting = False
        while not stop.is_set():
            credentials = await self._credentials()
            if credentials is None:
                if not waiting and not self.store.paused(self.settings.login):
                    log.info("%s: waiting for a password: log in through the proxy once", self)
                waiting = True  # said once; an OAuth2 pause says why itself (signin.py)
                await self._sleep(stop, 1.0)
                continue
            waiting = False
            try:
                await self._session(credentials, stop)
                failures = 0
            except SignInPaused:
                await self._sleep(stop, 1.0)
            except LoginRefused as err:
                self._credentials.refused()
                log.error("%s: %s", self, err)
                await self._sleep(stop, _BACKOFF[-1])
            except UpstreamImapError as err:
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.warning("%s: %s; reconnecting in %g s", self, err, delay)
                await self._sleep(stop, delay)
            except Exception:
                # A bug must not silently end triage for this login: say so, start over.
                log.exception("%s: unexpected error; starting over in %g s", self, _BACKOFF[-1])
                await self._sleep(stop, _BACKOFF[-1])
            finally:
                await self._not_ready()

    def __str__(self) -> str:
        return f"triage[{self.settings.login}]"

    async def _not_ready(self) -> None:
        """The session is over: the gate stops waiting for this engine (see catch_up)."""
        self._ready.clear()
        async with self._pass_done:
            self._pass_done.notify_all()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _connect(self, credentials: tuple[str, str] | Connector) -> Upstream:
        s = self.settings
        if not isinstance(credentials, tuple):
            return await credentials(s.endpoint, s.tls, s.connect_timeout)
        user, password = credentials
        return await connect(s.endpoint, s.tls, user, password, seconds=s.connect_timeout)

    async def _session(self, credentials: tuple[str, str] | Connector, stop: asyncio.Event) -> None:
        worker = await self._connect(credentials)
        watcher: Upstream | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            watcher = await self._connect(credentials)
            await self._prepare(worker)
            await self._start_filing(worker)
            await self._start_history(worker)
            self._corrections = CorrectionWatch(
                worker, self.store, self.settings.login, self.hold_names, self.settings.batches,
                self.settings.clock,
            )  # fmt: skip
            releaser = self._releaser = self._make_releaser(worker)
            await releaser.resume_unfinished(self.settings.batches)
            # Due releases first: on a first start (no release on record) this must not
            # release the mail the first pass is about to hold.
            await self._release_due(releaser)
            await self._triage_pass(worker)
            self._ready.set()
            log.info("%s: watching INBOX on %s", self, worker.name)
            tasks = [
                asyncio.create_task(self._watch(watcher), name=f"{self}-watch"),
                asyncio.create_task(self._work(worker, releaser, stop), name=f"{self}-work"),
            ]
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self._not_ready()  # before the logouts, which may take seconds
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._releaser = self._filer = self._team = self._corrections = None
            if self.history is not None:
                self.history.save(force=True)
            await worker.logout()
            if watcher is not None:
                await watcher.logout()

    async def _prepare(self, worker: Upstream) -> None:
        """Hold mailboxes exist, named with the server's own hierarchy delimiter."""
        for batch in self.settings.batches:
            name = await worker.server_name(batch.mailbox)
            self.hold_names[batch.name] = name
            if not self.settings.dry_run:
                await worker.ensure_mailbox(name)

    async def _start_filing(self, worker: Upstream) -> None:
        setup = self.settings.filing
        if setup is None:
            return
        filer = self._filer = Filer(
            worker, self.store, self.settings.login, setup, self.settings.clock
        )
        await filer.prepare()
        if not self.settings.dry_run:
            await filer.drain(everything=True)  # whatever made them fail may be fixed now
        self._team = TeamWatch(filer, self.settings.own_addresses, [*self.hold_names.values()])
        log.info("%s: filing into %s", self, filer.root)

    async def _start_history(self, worker: Upstream) -> None:
        """Before the first pass: load the history, or read it (bounded) at a first start.

        Triage waits for that read -- at most ``[triage] history_seconds``, once per login --
        so that a full INBOX at the first start is scored with the history, not cold.
        """
        if self.history is None:
            return
        leave_out = [*self.hold_names.values(), *([self._filer.root] if self._filer else [])]
        try:
            await self.history.start(worker, leave_out)
        except UpstreamImapError:
            raise
        except Exception:
            # A bug here must not stop triage: the mail is then scored without the history.
            log.exception("%s: reading the history with senders failed; going on without", self)

    def sent(self, mail: Mail) -> None:
        """The user sent ``mail`` through the SMTP side: it may answer mail they received."""
        if self.history is not None:
            self.history.sent(mail)
            self._wake.set()  # saved by the next step

    def wake(self) -> None:
        """New work outside INBOX (mail to file from the SMTP side)."""
        self._wake.set()

    def _make_releaser(self, worker: Upstream) -> Releaser:
        return Releaser(
            worker,
            self.store,
            self.settings.login,
            self.hold_names,
            self.settings.triage,
            self.settings.clock,
        )

    async def _watch(self, watcher: Upstream) -> None:
        await watcher.select(INBOX)
        while True:
            await watcher.idle_start()
            loop = asyncio.get_running_loop()
            restart_at = loop.time() + _IDLE_RESTART
            while (left := restart_at - loop.time()) > 0:
                pushed = await watcher.idle_wait(left)
                if any(b"EXISTS" in line.upper() for line in pushed):
                    self._wake.set()
            await watcher.idle_done()

    async def _work(self, worker: Upstream, releaser: Releaser, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _TICK)
            self._wake.clear()
            await self._credentials.check(worker)  # an OAuth2 login refreshes here, early
            await self._triage_pass(worker)
            await self._release_due(releaser)
            async with self._lock:
                if self.history is not None:
                    await self.history.look_at_sent(worker)
                    self.history.save()
                if self._corrections is not None:
                    await self._corrections.maybe_scan()
                if self._filer is not None and not self.settings.dry_run:
                    await self._filer.drain()
                if self._team is not None and not self.settings.dry_run:
                    await self._team.maybe_scan()

    # -- triage -------------------------------------------------------------------------------

    async def _triage_pass(self, worker: Upstream) -> None:
        async with self._lock:
            try:
                info = await worker.select(INBOX)
                await self._triage_new(worker, info)
                # One SEARCH gives both numbers at the same instant.
                uids = await worker.search("ALL")
                last = self.store.cursor(self.settings.login, INBOX)
                done = last[1] if last and last[0] == info.uidvalidity else 0
                self.inbox_state = (len(uids), sum(1 for uid in uids if uid <= done))
            finally:
                self._passes += 1
                async with self._pass_done:
                    self._pass_done.notify_all()

    async def _triage_new(self, worker: Upstream, info: MailboxInfo) -> None:
        login = self.settings.login
        cursor = self.store.cursor(login, INBOX)
        last = cursor[1] if cursor and cursor[0] == info.uidvalidity else 0
        if cursor and cursor[0] != info.uidvalidity:
            log.warning("%s: INBOX UIDVALIDITY changed; re-scanning by keywords", self)
        if info.uidnext is not None and info.uidnext <= last + 1:
            return
        uids = [uid for uid in await worker.search(f"UID {last + 1}:*") if uid > last]
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start : start + _CHUNK]
            await self._triage_chunk(worker, info.uidvalidity, chunk)
            self.store.set_cursor(login, INBOX, info.uidvalidity, chunk[-1])

    async def _triage_chunk(self, worker: Upstream, uidvalidity: int, uids: list[int]) -> None:
        s = self.settings
        flags = {f.uid: f.flags for f in await worker.fetch(uids, "(UID FLAGS)")}
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
        if fresh:
            prefix = s.triage.body_prefix
            items = f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{prefix}>)"
            fetched = await worker.fetch(fresh, items)
            mails = [_mail(f) for f in fetched]
            holds, labels = self._decide(fetched, mails, uidvalidity)
            for mailbox, held in holds.items():
                pending.setdefault(mailbox, []).extend(held)
            # Filing copies before tagging, so the team's copy carries none of our keywords.
            filed = await self._file([f.uid for f in fetched], mails)
            await self._tag(worker, labels)
            # Would be held but was not (read already, or a dry run): say so on the server, so
            # that without the store it is not mistaken for mail the user brought back.
            held_now = {uid for uids in holds.values() for uid in uids}
            kept = [u for u, label in labels.items() if label != URGENT and u not in held_now]
            if kept:
                await worker.add_flags(kept, (NOT_HELD,))
            if filed:
                await worker.add_flags(filed, (FILED,))
        if s.dry_run:
            return
        for mailbox, held in pending.items():
            moved = await worker.move(held, mailbox)
            kept = [uid for uid in held if uid not in moved.gone]
            self.recent_held.extend(kept)
            if kept:
                log.info("%s: held %d message(s) in %s", self, len(kept), mailbox)
            if moved.gone:
                self._gone(uidvalidity, sorted(moved.gone))

    def _gone(self, uidvalidity: int, uids: list[int]) -> None:
        """Deleted or moved by another client before the move: done, not a failure."""
        log.info(
            "%s: uid %s gone before it could be held (deleted or moved by another client)",
            self, ",".join(map(str, uids)),
        )  # fmt: skip
        self.store.mark_gone(self.settings.login, INBOX, uidvalidity, uids, _GONE_NOTE)

    def _decide(
        self, fetched: Sequence[Fetched], mails: Sequence[Mail], uidvalidity: int
    ) -> tuple[dict[str, list[int]], dict[int, str]]:
        """Classify, and write the decisions to the store before anything changes upstream.

        Returns the UIDs to hold per mailbox and each UID's label."""
        s = self.settings
        decisions = self.decider.decide(mails)
        now = s.clock()
        # `commsproxy stop-holding`: decide and tag as ever, but leave everything in INBOX.
        stopped = holding_stopped(self.store.path.parent) is not None
        records: list[StoredDecision] = []
        holds: dict[str, list[int]] = {}
        labels: dict[int, str] = {}
        for f, mail, decision in zip(fetched, mails, decisions, strict=True):
            batch = s.batch_for(decision.label) if decision.label != URGENT else None
            seen = "\\Seen" in f.flags and not s.triage.hold_seen
            held = batch is not None and not seen and not s.dry_run and not stopped
            reason = decision.reason + (" (already read: left in INBOX)" if batch and seen else "")
            if batch is not None and not seen and stopped and not s.dry_run:
                reason += " (holding stopped: left in INBOX)"
            labels[f.uid] = decision.label
            records.append(
                StoredDecision(
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
            )
            where = ""
            if batch is not None and held:
                holds.setdefault(self.hold_names[batch.name], []).append(f.uid)
                where = f" -> {batch.mailbox}"
            elif batch is not None and not seen and s.dry_run:  # say what a run would do
                where = f" (dry run: would be held in {batch.mailbox})"
            elif batch is not None and not seen:
                where = " (holding stopped: left in INBOX)"
            log.info("%s: uid %d %s%s: %s", self, f.uid, decision.label, where, reason)
        self.store.record_decisions(records)
        if self.history is not None:
            self.history.received(mails)  # after deciding: a message is not its own history
        return holds, labels

    async def _file(self, uids: Sequence[int], mails: Sequence[Mail]) -> set[int]:
        """Copy each message that belongs to a customer account into its folder."""
        setup = self.settings.filing
        if setup is None or self._filer is None:
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
        return await self._filer.file_incoming(items) if items else set()

    async def _tag(self, worker: Upstream, labels: dict[int, str]) -> None:
        by_label: dict[str, list[int]] = {}
        for uid, label in labels.items():
            by_label.setdefault(label, []).append(uid)
        for label, uids in by_label.items():
            await worker.add_flags(uids, (TRIAGED, *LABEL_KEYWORDS[label]))

    async def _rescued(self, worker: Upstream, rescued: dict[int, str]) -> None:
        """Held messages back in INBOX under new UIDs: the user moved them; learn from that."""
        headers = {f.uid: f for f in await worker.fetch(list(rescued), "(UID BODY.PEEK[HEADER])")}
        for uid, previous in rescued.items():
            log.info("%s: uid %d came back from a hold mailbox: recorded as urgent", self, uid)
            mail = _mail(headers.get(uid, Fetched(uid, frozenset())))
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

    # -- releases -----------------------------------------------------------------------------

    async def _release_due(self, releaser: Releaser) -> None:
        now = self.settings.clock()
        for batch in self.settings.batches:
            last = self.store.last_scheduled_release(self.settings.login, batch.name)
            due = due_release(batch.schedule, last, now)
            if due is not None:
                async with self._lock:
                    await releaser.release(batch, scheduled=due)


def _mail(fetched: Fetched) -> Mail:
    try:
        return parse_mail(fetched.raw, folder=INBOX, size=fetched.size)
    except MailParseError:
        return Mail(
            message_id=None,
            in_reply_to=(),
            references=(),
            date=None,
            sender="",
            sender_name="",
            to=(),
            cc=(),
            subject="",
            body="",
        )
