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

Nothing a client waits for scans the mailbox. The worker keeps INBOX selected and counts its
messages from the server's own EXISTS and EXPUNGE responses (upstream.py); a pass runs only when
the watcher heard INBOX change, a client's gate saw the server announce mail triage has not
seen, or a batch is due, and looks only at UIDs above the cursor. Between passes the gate gets
the state triage already knows. With no mail arriving, the server hears nothing but the
watcher's IDLE, and now and then a STATUS of the few mailboxes the slower timers look at.

A login's first start leaves the past alone: the mail already in INBOX is tagged ``$Triaged``
``$NotHeld`` in one ``UID STORE`` (crash repair reads that as decided and not held) and stays
where it is, except unread mail from the last ``[triage] first_start_window`` seconds, which is
triaged as new mail (first_start.py). The parts: new_mail.py triages a chunk of new mail,
due_releases.py and left_behind.py release held mail, correction_timing.py says when to look
for the user's corrections; this module keeps the life cycle and the watcher and the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal, Protocol

from ..classifier.mail import Mail
from ..credentials import CredentialError
from ..imap.names import INBOX
from ..imap.responses import untagged_name
from .correction_timing import CorrectionTiming
from .corrections import CorrectionWatch
from .decide import Decider
from .due_releases import release_due, upcoming_release
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .filer import Filer
from .first_start import leave_the_past
from .health import Health, State
from .health_keeper import HealthKeeper, Spare, sleep_unless_stopped
from .history_keeper import HistoryKeeper
from .left_behind import adopt_left_behind, release_left_behind
from .new_mail import NewMail
from .release import Releaser
from .signin import Connector, SignInPaused
from .state_store import StateStore
from .teamhint import TeamWatch
from .upstream import CommandRefused, LoginRefused, Upstream, UpstreamImapError, connect

__all__ = ["CatchUp", "Credentials", "Engine", "EngineSettings"]

log = logging.getLogger("commsproxy.triage")

_NOOP_WITHOUT_IDLE = 5 * 60.0  # seconds; servers log out a silent client after 30 minutes
_IDLE_RESTART = 25 * 60.0  # seconds; servers may drop an IDLE after 29 minutes (RFC 2177)
# Servers without IDLE push nothing: the worker looks at INBOX this often instead (a NOOP and
# a UID SEARCH of the UIDs above the cursor, cheap; clients' own polls are gated anyway).
_POLL_WITHOUT_IDLE = 5.0
_LONGEST_NAP = 60.0  # seconds; the worker's wake-ups with nothing to do cost no request

# What a caller of catch_up needs: "known" (what triage knows, unless the watcher heard INBOX
# change), "look" (that, once one STATUS says nothing arrived since), "pass" (a pass, always).
CatchUp = Literal["known", "look", "pass"]

_TODO_REFUSED = (
    "check the password: what password_command prints (or what your mail program logs in"
    " with) must be the one the server takes; triage retries by itself"
)
_TODO_COMMAND = "fix password_command in the config (run it in a terminal to see why it fails)"
_TODO_SERVER = "check the network and the server (upstream_imap); triage retries by itself"
_TODO_WAITING = "open your mail program: its login through commsproxy gives triage the password"
_TODO_FAILING = "see commsproxy's log for the details; triage retries by itself"


class Credentials(Protocol):
    """Where the engine gets (user, password), or a way to connect (an OAuth2 login, see
    signin.py), each time it connects."""

    async def __call__(self) -> tuple[str, str] | Connector | None:
        """None while there is nothing to log in with; CredentialError when the
        password_command fails."""

    def refused(self) -> None:
        """The server refused them: do not offer the same again."""

    async def check(self, worker: Upstream) -> None:
        """Between steps; raises SignInPaused when the login cannot go on signed in."""


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        decider: Decider,
        store: StateStore,
        credentials: Credentials,
        history: HistoryKeeper | None = None,
        spare: Spare | None = None,
        parts: Sequence[EnginePart] = (),
    ) -> None:
        self.parts = list(parts)  # follow-ups, snooze, ... (engine_part.py)
        self._settings = settings
        self._decider = decider
        self._new_mail: NewMail | None = None  # the running session's, to hand a new decider
        self.store = store
        self._credentials = credentials
        self.history = history  # the user's history with senders, kept current (or None)
        if history is not None:  # mail found in Sent is sent mail to the parts too
            history.found_sent = self._found_in_sent
        self.recent_held: deque[int] = deque(maxlen=10_000)  # INBOX UIDs moved, for the gate
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._passes = 0  # completed triage passes, for catch_up
        self._pass_done = asyncio.Condition()
        self._news = 0  # INBOX changes (EXISTS, EXPUNGE) the watcher heard
        self._seen = -1  # ... as counted when the last pass began: none new if equal
        self._started = 0  # triage passes begun; a pass ends as _passes reaches this
        self._wanted = 0  # the pass someone waits for (catch_up): run until _started is this
        self._worker: Upstream | None = None
        self._arrivals = -1  # the worker's EXISTS responses as of the last pass's count
        self._idle = True  # the watcher's server pushes news (IDLE)
        self._releaser: Releaser | None = None
        self._filer: Filer | None = None
        self._team: TeamWatch | None = None
        self._corrections: CorrectionWatch | None = None
        self._ready = asyncio.Event()
        # INBOX after the last pass: (messages, of which triaged) — triaged ones come first,
        # in UID order, so the gate may show a client that many and no more.
        self.inbox_state: tuple[int, int] | None = None
        self.hold_names: dict[str, str] = {}  # batch name -> mailbox name on the server
        self._timing = CorrectionTiming(self.hold_names)
        before = store.health(settings.login)
        health = Health.start(settings.login, settings.clock(), before and before[0])
        health = replace(health, next_release=self._upcoming(settings.clock()))
        self._report = HealthKeeper(settings, store, health, spare, self._connect, str(self))
        self._linked = False  # this try got past logging in
        self._cursor: tuple[int, int] | None = None  # INBOX's, as of the last pass (decided)

    @property
    def settings(self) -> EngineSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: EngineSettings) -> None:
        self._settings = settings
        for part in self.parts:
            part.reconfigured(settings)

    # -- for the gate and the CLI -------------------------------------------------------------

    @property
    def health(self) -> Health:
        """This login's health, as `status` shows it (health_keeper.py)."""
        return self._report.health

    @health.setter
    def health(self, health: Health) -> None:
        self._report.health = health

    @property
    def decider(self) -> Decider:
        return self._decider

    @decider.setter
    def decider(self, decider: Decider) -> None:
        """A reloaded config's rules (VIPs) apply from the running session's next decision."""
        self._decider = decider
        if self._new_mail is not None:
            self._new_mail.decider = decider

    @property
    def worker(self) -> Upstream | None:
        """The worker's link while connected (what it sent: ``sent``, ``recent``)."""
        return self._worker

    @property
    def ready(self) -> bool:
        """Connected, and past its first pass: worth waiting for."""
        return self._ready.is_set()

    @property
    def between_steps(self) -> asyncio.Lock:
        """Held by the worker during each step: taken by work from outside (a deliver
        request) that uses the worker's link, so it runs between two steps."""
        return self._lock

    async def catch_up(
        self, limit: float, *, while_ready: bool = False, need: CatchUp = "pass"
    ) -> tuple[int, int] | None:
        """Triage everything that has arrived, waiting at most ``limit`` seconds.

        Returns INBOX's (messages, triaged messages) once done, for the gate to know what a
        client may see, or None when triage could not finish in time: the caller fails open.
        ``while_ready`` (the gate): None at once when the engine is not connected or drops
        while waiting -- no client command may wait out a backoff. ``need`` says how sure the
        caller must be that nothing arrived unseen (see CatchUp); "known" costs no request.
        """
        if while_ready and not self.ready:
            return None
        if need == "known" and (known := self.known()) is not None:
            return known  # a client's NOOP or IDLE: no timer, no wait
        try:
            async with asyncio.timeout(limit):
                await self._ready.wait()
                quiet = self._quiet()
                if quiet and (need == "known" or (need == "look" and await self._nothing_new())):
                    return self.inbox_state
                # A pass already running may have started before the mail arrived: wait for
                # one that begins from now on.
                target = self._wanted = max(self._wanted, self._started + 1)
                self._wake.set()
                async with self._pass_done:
                    await self._pass_done.wait_for(
                        lambda: self._passes >= target or (while_ready and not self.ready)
                    )
                return self.inbox_state if self.ready or not while_ready else None
        except TimeoutError:
            return None

    def known(self) -> tuple[int, int] | None:
        """What ``catch_up(need="known")`` answers without waiting: INBOX's (messages,
        triaged messages) when connected and nothing new was heard; else None."""
        return self.inbox_state if self.ready and self._quiet() else None

    def _quiet(self) -> bool:
        return self._news == self._seen and self.inbox_state is not None

    def decided(self) -> tuple[int, int] | None:
        """INBOX's (UIDVALIDITY, UID) triage has finished up to, for the gate: the cursor moves
        past a UID only once its message is decided and, if held, moved away. Kept in memory
        as of the last pass (every SELECT of INBOX asks): during a pass it may lag behind the
        store's, which only makes the gate wait for that pass."""
        return self._cursor if self.ready else None

    async def _nothing_new(self) -> bool:
        """One command on the worker's link says whether INBOX is as triage knows it.

        With INBOX selected there (as between passes) a NOOP: no EXISTS since the last pass,
        and the count triage knows (a STATUS of the selected mailbox may answer from the
        session's own view). Otherwise a STATUS: no UID above the cursor, the same count.
        """
        worker = self._worker
        if worker is None:
            return False
        try:
            async with self._lock:
                if worker.selected == INBOX and worker.info is not None:
                    arrivals = worker.arrivals
                    await worker.noop()
                    same = worker.arrivals == arrivals == self._arrivals
                    return same and self._known(worker.exists, worker.info.uidvalidity, None)
                status = await worker.status(INBOX, "(MESSAGES UIDNEXT UIDVALIDITY)")
        except UpstreamImapError as err:  # the worker's own loop notices and reconnects
            log.debug("%s: looking at INBOX for a client failed: %s", self, err)
            return False
        validity = status.get("UIDVALIDITY", -1)
        return self._known(status.get("MESSAGES"), validity, status.get("UIDNEXT", -1))

    def _known(self, messages: int | None, uidvalidity: int, uidnext: int | None) -> bool:
        cursor = self._cursor
        return (
            cursor is not None
            and self.inbox_state is not None
            and uidvalidity == cursor[0]
            and (uidnext is None or 0 <= uidnext <= cursor[1] + 1)
            and messages == self.inbox_state[0]
            and self._news == self._seen
        )

    async def release(self, batch_name: str | None = None) -> dict[str, int]:
        """Release one batch (or all) now, between triage passes; messages moved per batch."""
        await asyncio.wait_for(self._ready.wait(), 60)
        assert self._releaser is not None
        moved: dict[str, int] = {}
        for batch in self.settings.batches:
            if batch_name in (None, batch.name):
                async with self._lock:
                    try:
                        moved[batch.name] = await self._releaser.release(batch, scheduled=None)
                    except UpstreamImapError:
                        self.link_failed()
                        raise
        return moved

    def link_failed(self) -> None:
        """Work from outside (a request) failed on the worker's link: the worker looks at its
        link now rather than at its next command, which may be many seconds away."""
        self._wake.set()

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; on any failure say so once (health.py) and retry with
        backoff, forever."""
        self._report.publish()
        while not stop.is_set():
            try:
                credentials = await self._credentials()
            except CredentialError as err:
                await self._report.failed(stop, None, State.SIGNIN_FAILED, str(err), _TODO_COMMAND)
                continue
            if credentials is None:
                paused = self.store.paused(self.settings.login)
                if paused is not None:  # signin.py logged why; status shows it
                    self._report.set(
                        State.PAUSED, paused.reason, _todo_sign_in(self.settings.login)
                    )
                else:
                    reason = "no password to log in with yet"
                    self._report.set(State.WAITING, reason, _TODO_WAITING)
                await sleep_unless_stopped(stop, 1.0)
                continue
            self._linked = False
            try:
                await self._session(credentials, stop)
            except SignInPaused:
                paused = self.store.paused(self.settings.login)
                reason = paused.reason if paused else "the sign-in must be renewed"
                self._report.set(State.PAUSED, reason, _todo_sign_in(self.settings.login))
                await sleep_unless_stopped(stop, 1.0)  # costs no request while paused (signin.py)
            except LoginRefused as err:
                self._credentials.refused()
                await self._report.failed(
                    stop, credentials, State.SIGNIN_FAILED, str(err), _TODO_REFUSED
                )
            except CommandRefused as err:  # logged in, but the server refuses a step
                await self._report.failed(stop, credentials, State.FAILING, str(err), _TODO_FAILING)
            except UpstreamImapError as err:  # the link: cannot connect, or lost
                # A link that was up and dropped is an event of its own, said each time; a
                # server that cannot be reached is one state, however often it is tried.
                await self._report.failed(
                    stop, credentials, State.UNREACHABLE, str(err), _TODO_SERVER, self._linked
                )
            except Exception as err:
                # A bug must not silently end triage for this login: say so, start over.
                if self._report.set(
                    State.FAILING, f"unexpected error: {err!r}", _TODO_FAILING, log_it=False
                ):
                    log.exception("%s: unexpected error; starting over", self)
                await sleep_unless_stopped(stop, self.settings.triage.retry_max)
            finally:
                await self._not_ready()

    def __str__(self) -> str:
        return f"triage[{self.settings.login}]"

    async def _not_ready(self) -> None:
        """The session is over: the gate stops waiting for this engine (see catch_up)."""
        self._ready.clear()
        async with self._pass_done:
            self._pass_done.notify_all()

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
            self._linked = True
            await self._prepare(worker)
            await self._start_filing(worker)
            new_mail = self._new_mail = NewMail(
                self.settings, self.store, self.decider, self.hold_names, self.recent_held,
                self.history, self._filer, self._decided, str(self), self.parts,
            )  # fmt: skip
            if self._first_history_read():
                self._report.set(State.HISTORY)
                limit = self.settings.triage.history_messages
                self.health = replace(self.health, history=(0, limit))
                self._report.publish()
            await self._start_history(worker)
            self._corrections = CorrectionWatch(
                worker, self.store, self.settings.login, self.hold_names, self.settings.batches,
                self.settings.clock,
            )  # fmt: skip
            releaser = self._releaser = self._make_releaser(worker)
            login = self.settings.login
            left_behind = (
                {} if self.settings.dry_run
                else adopt_left_behind(releaser, self.store, login, self.hold_names)
            )  # fmt: skip
            await releaser.resume_unfinished(self.settings.batches)
            await release_left_behind(
                releaser, left_behind, self.store, login, self._lock, str(self)
            )
            # Due releases first: on a first start (no release on record) this must not
            # release the mail the first pass is about to hold.
            await self._release_due(releaser)
            await leave_the_past(worker, self.store, self.settings, str(self))
            await self._triage_pass(worker, new_mail)
            for part in self.parts:  # after the pass: a reply that came meanwhile is known
                await self._part(part.start(worker), part, "start")
            if not self.settings.dry_run:
                await self._report.notices.remove(worker)
            self._report.failures = 0
            self._report.set(State.CONNECTED)
            self._worker = worker
            self._ready.set()
            log.info("%s: watching INBOX on %s", self, worker.name)
            tasks = [
                asyncio.create_task(self._watch(watcher), name=f"{self}-watch"),
                asyncio.create_task(
                    self._work(worker, releaser, new_mail, stop), name=f"{self}-work"
                ),
            ]
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await self._not_ready()  # before the logouts, which may take seconds
            self._worker = None
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
        if not self.settings.dry_run:
            self.store.note_hold_mailboxes(
                self.settings.login, self.hold_names.values(), self.settings.clock()
            )

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

    def _first_history_read(self) -> bool:
        if self.history is None:
            return False
        record = self.store.history_status(self.settings.login)
        return record is None or record.state == "reading"

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

    def sent(self, mail: Mail, followup: str | None = None) -> None:
        """The user sent ``mail`` through the SMTP side: it may answer mail they received."""
        for part in self.parts:
            try:
                part.sent(mail, followup)
            except Exception:  # a part's bug must not stop triage (engine_part.py)
                log.exception("%s: %s failed to hear of sent mail", self, part)
        if self.history is not None:
            self.history.sent(mail)
        self._wake.set()  # saved (and acted on) by the next step

    def _found_in_sent(self, mails: Sequence[Mail]) -> None:
        """Mail the user sent from another device, found in Sent by the history."""
        for part in self.parts:
            try:
                for mail in mails:
                    part.sent(mail, None)
            except Exception:  # a part's bug must not stop the history's look at Sent
                log.exception("%s: %s failed on mail found in Sent; going on", self, part)

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
            history=self.history.history if self.history is not None else None,
            filing=self.settings.filing,
            digest_link=self.settings.digest_link,
        )

    async def _watch(self, watcher: Upstream) -> None:
        await watcher.select(INBOX)
        self._idle = watcher.has("IDLE")
        if not self._idle:
            # No push from this server: the worker polls INBOX (_POLL_WITHOUT_IDLE); a NOOP
            # now and then keeps the watcher's link from being logged out.
            self._wake.set()
            while True:
                await asyncio.sleep(_NOOP_WITHOUT_IDLE)
                await watcher.noop()
        while True:
            await watcher.idle_start()
            loop = asyncio.get_running_loop()
            restart_at = loop.time() + _IDLE_RESTART
            while (left := restart_at - loop.time()) > 0:
                self._heard(await watcher.idle_wait(left))
            await watcher.idle_done()

    def _heard(self, pushed: Sequence[bytes]) -> None:
        """What the watcher heard: INBOX's size changed (a pass is due), or flags did."""
        for line in pushed:
            kind = untagged_name(line)
            if kind is None or kind[0] is None:
                continue
            if kind[1] in ("EXISTS", "EXPUNGE"):
                self._news += 1
                self._timing.heard()  # a move out of INBOX may be a correction
                self._wake.set()
            elif kind[1] == "FETCH":
                self._timing.heard()
                self._wake.set()

    def _nap(self) -> float:
        """Seconds until the worker has something to do by the clock (a batch due, a timer)."""
        s = self.settings
        naps = [_LONGEST_NAP]
        upcoming = self.health.next_release
        if upcoming is not None:  # one overdue and not yet released is looked at every 1 s
            naps.append(max((upcoming[1] - s.clock()).total_seconds(), 1.0))
        if not self._idle:
            naps.append(_POLL_WITHOUT_IDLE)
        if self.history is not None:
            naps.append(self.history.next_look())
        if self._team is not None and s.filing is not None:
            naps.append(s.filing.config.team_scan)
        if self._corrections is not None:
            now = asyncio.get_running_loop().time()
            naps.append(self._timing.wait(now))
        for part in self.parts:
            due = part.next_due()
            if due is not None:
                naps.append(max((due - s.clock()).total_seconds(), 0.0))
        return max(min(naps), 0.05)

    async def _work(
        self, worker: Upstream, releaser: Releaser, new_mail: NewMail, stop: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            # The nap's end sets the event from the loop's timer: no task per wait (wait_for
            # makes one), so a wake by the clock costs the worker's step and nothing else.
            timer = loop.call_later(self._nap(), self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            self._wake.clear()
            if worker.closed:  # cut while it napped: reconnect now, not at its next command
                raise UpstreamImapError(f"{worker.name}: connection lost")
            try:
                await self._credentials.check(worker)  # an OAuth2 login refreshes here, early
            except SignInPaused:
                await self._leave_sign_in_notice(worker)
                raise
            if self._wanted > self._started or self._news != self._seen or not self._idle:
                await self._triage_pass(worker, new_mail)
            await self._release_due(releaser)
            async with self._lock:
                if self.history is not None:
                    await self.history.look_at_sent(worker)
                    self.history.save()
                if self._corrections is not None and await self._timing.due(
                    worker, self.settings.look_elsewhere
                ):
                    await self._corrections.maybe_scan()
                if self._filer is not None and not self.settings.dry_run:
                    await self._filer.drain()
                if self._team is not None and not self.settings.dry_run:
                    await self._team.maybe_scan()
                for part in self.parts:
                    await self._part(part.step(worker), part, "step")

    async def _part(self, work: Awaitable[None], part: EnginePart, what: str) -> None:
        """A part's start or step: a server failure ends the session (retried); a bug in a
        part is logged and must not stop triage."""
        try:
            await work
        except (UpstreamImapError, SignInPaused):
            raise
        except Exception:
            log.exception("%s: %s %s failed; going on", self, part, what)

    async def _leave_sign_in_notice(self, worker: Upstream) -> None:
        """A pause needs its notice now: only this worker is still logged in (signin.py)."""
        paused = self.store.paused(self.settings.login)
        if paused is None or self.settings.dry_run:
            return
        try:
            await self._report.notices.leave(
                worker, paused.reason, _todo_sign_in(self.settings.login), sign_in=True
            )
        except UpstreamImapError as err:
            log.warning("%s: could not leave the sign-in notice: %s", self, err)

    # -- triage -------------------------------------------------------------------------------

    async def _triage_pass(self, worker: Upstream, new_mail: NewMail) -> None:
        async with self._lock:
            try:
                self._seen = self._news
                self._started += 1
                # INBOX stays selected between passes; a NOOP brings its news (EXISTS,
                # EXPUNGE) into the count the worker keeps, without a scan.
                if worker.selected == INBOX and worker.info is not None:
                    await worker.noop()
                    info = worker.info
                else:
                    info = await worker.select(INBOX)
                await new_mail.triage_new(worker, info)
                self._cursor = self.store.cursor(self.settings.login, INBOX)
                self.inbox_state = await self._count(worker, info.uidvalidity)
                self._arrivals = worker.arrivals
            finally:
                self._passes += 1
                async with self._pass_done:
                    self._pass_done.notify_all()

    async def _count(self, worker: Upstream, uidvalidity: int) -> tuple[int, int]:
        """INBOX's (messages, triaged messages): the count the worker keeps, less the UIDs
        above the cursor (mail that came during the pass).

        A SEARCH answers for the mailbox as the session knew it when the command began; news
        the server reports with its answer (EXISTS, EXPUNGE) is newer, so the count taken
        before the SEARCH goes with its result, and a count that moved meanwhile asks again.
        """
        last = self._cursor
        done = last[1] if last and last[0] == uidvalidity else 0
        for _ in range(3):
            before = worker.exists or 0
            above = [uid for uid in await worker.search(f"UID {done + 1}:*") if uid > done]
            if worker.exists == before:
                break
        else:
            self._news += 1  # INBOX keeps changing: the next catch_up waits for a pass
        return before, max(before - len(above), 0)

    # -- releases -----------------------------------------------------------------------------

    def _upcoming(self, now: datetime) -> tuple[str, datetime] | None:
        return upcoming_release(self.settings.batches, self.store, self.settings.login, now)

    async def _release_due(self, releaser: Releaser) -> None:
        s = self.settings
        now = s.clock()
        await release_due(releaser, s.batches, self.store, s.login, now, self._lock)
        upcoming = self._upcoming(now)
        if upcoming != self.health.next_release:
            self.health = replace(self.health, next_release=upcoming)
            self._report.publish()

    def _decided(self, at: datetime, what: str) -> None:
        """The last decision, for health (``status``)."""
        self.health = replace(self.health, last_decision=(at, what))
        self._report.publish()


def _todo_sign_in(login: str) -> str:
    return f"run `commsproxy login {login}`"
