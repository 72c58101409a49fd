"""All logins' triage in one place: engines, login routing, passwords held in memory, requests.

The gate asks the hub, by client user name, which engine a session belongs to. A client LOGIN
whose user name matches a ``[[login]]`` goes to that login; with exactly one login every client
goes to it (with several, the relay has already refused an unknown user name). Passwords come
from the login's ``password_command`` or, failing that, from the client's own LOGIN through the
proxy, kept in memory only and never written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..classifier.mail import MailParseError, parse_mail
from ..credentials import password_from_command
from ..imap.names import SENT
from ..looks import when_seen
from .account_match import resolve_outgoing
from .decide import Decider
from .deliver_now import NotHeld, deliver_held
from .engine import CatchUp, Engine, EngineSettings
from .file_events import FileEvents
from .request_retries import RequestRetries
from .state_store import DeliverRequest, ReleaseRequest, StateStore
from .store_watch import StoreWatch
from .upstream import Upstream

__all__ = ["LoginRoute", "TriageHub"]

log = logging.getLogger("commsproxy.triage")

# Seconds between looks for requests from other processes (`release --now`, `deliver`, the
# page's buttons). A look is a stat on looks.py's shared timer; every second would save an
# idle proxy about 0.015% of a CPU more, but makes each request wait a quarter second longer
# on average (and the tests that make many, seconds longer).
_REQUEST_POLL = 0.5
_SETTLE = 0.05  # seconds from a write to the store seen (file_events.py) to the query
_REQUEST_RETRY_MAX = 60.0  # seconds; the longest wait before a failed request is tried again


@dataclass(frozen=True)
class LoginRoute:
    key: str  # the login's name in the store and the logs: its user name, or "default"
    username: str | None  # None: whoever logs in through the proxy
    password_command: str | None
    oauth: bool = False  # signs in with OAuth2: the client's password is a local one, not kept


class TriageHub:
    def __init__(self, store: StateStore) -> None:
        self.store = store  # opened and closed by whoever runs the hub
        self.engines: dict[str, Engine] = {}
        self.routes: dict[str, LoginRoute] = {}
        self._passwords: dict[str, tuple[str, str]] = {}  # key -> (user, password), memory only
        # The same from a client login of a password_command login: never used to triage (the
        # config says where that password comes from), only to leave the notice that it fails.
        self._spares: dict[str, tuple[str, str]] = {}
        self._password_seen = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}  # key -> its engine, while run() runs
        # Requests from other processes (_serve_asks): what each has done, and when to retry.
        self._released: dict[int, set[tuple[str, str]]] = {}  # request -> (login, batch) done
        self._release_retries = _retries()
        self._deliver_retries = _retries()
        self._stop: asyncio.Event | None = None

    def add(self, route: LoginRoute, engine: Engine) -> None:
        self.routes[route.key] = route
        self.engines[route.key] = engine

    # -- routing (TriageBackend) --------------------------------------------------------------

    def login_for(self, user: str) -> str | None:
        wanted = user.strip().lower()
        for key, route in self.routes.items():
            if route.username is not None and route.username.lower() == wanted:
                return key
        if len(self.routes) == 1:
            return next(iter(self.routes))
        return None

    def ready(self, login: str) -> bool:
        engine = self.engines.get(login)
        return engine is not None and engine.ready

    async def catch_up(
        self, login: str, limit: float, need: CatchUp = "pass"
    ) -> tuple[int, int] | None:
        engine = self.engines.get(login)
        if engine is None:
            return None
        return await engine.catch_up(limit, while_ready=True, need=need)

    def known(self, login: str) -> tuple[int, int] | None:
        """For the gate: a NOOP or IDLE on INBOX with nothing new waits for
        nothing."""
        engine = self.engines.get(login)
        return engine.known() if engine is not None else None

    def held_uids(self, login: str) -> frozenset[int]:
        engine = self.engines.get(login)
        return frozenset(engine.recent_held) if engine is not None else frozenset()

    def decided(self, login: str) -> tuple[int, int] | None:
        engine = self.engines.get(login)
        return engine.decided() if engine is not None else None

    def on_logged_in(self, user: str, secret: str) -> None:
        """A client logged in through the proxy (the relay's LoginObserver): keep its password
        for the login it belongs to, in memory, when the config has no password_command."""
        login = self.login_for(user)
        if login is not None:
            self.remember_password(login, secret, user)

    def remember_password(self, login: str, password: str, user: str) -> None:
        route = self.routes[login]
        if route.oauth:
            return
        if route.password_command is not None:
            self._spares[login] = (route.username or user, password)
            return
        self._passwords[login] = (route.username or user, password)
        self._password_seen.set()

    # -- sent mail (the SMTP side) -------------------------------------------------------------

    async def file_sent(
        self,
        user: str | None,
        recipients: Sequence[str],
        content: bytes,
        followup: str | None = None,
    ) -> None:
        """A message the upstream accepted: into the sender's history, and queued for its
        account folder (the engine appends it).

        Queued in the store first, so a failing or slow server never delays sending, and a
        restart does not lose the filing.
        """
        key = self.login_for(user or "")
        engine = self.engines.get(key) if key is not None else None
        if engine is None:
            return
        setup = engine.settings.filing
        filed = setup is not None and not engine.settings.dry_run
        if engine.history is None and not filed and not engine.parts:
            return
        try:
            mail = parse_mail(content)
        except MailParseError as err:
            what = "not filed" if filed else "not in the history"
            log.warning("triage[%s]: a sent message cannot be read (%s): %s", key, err, what)
            return
        engine.sent(mail, followup)
        if setup is None or not filed:
            return
        filing = resolve_outgoing(mail, recipients, setup.rules, setup.guesser)
        if filing is None:
            return
        self.store.queue_filing(
            engine.settings.login, filing.account, mail.message_id, content, f"\\Seen {SENT}",
            "outgoing", filing.reason, datetime.now(UTC),
        )  # fmt: skip
        engine.wake()

    # -- credentials for the engines ----------------------------------------------------------

    def credentials_for(self, key: str) -> CredentialSource:
        return CredentialSource(self, key)

    async def _credentials(self, key: str) -> tuple[str, str] | None:
        route = self.routes[key]
        if route.password_command is not None and route.username:
            # A failing command raises CredentialError: the engine says so, once (health.py).
            password = await password_from_command(route.password_command)
            return route.username, password
        if key not in self._passwords:
            self._password_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._password_seen.wait(), 60)
        return self._passwords.get(key)

    def forget_password(self, key: str) -> None:
        """The upstream refused it (changed password): wait for the next client login."""
        self._passwords.pop(key, None)

    def spare_password(self, key: str) -> tuple[str, str] | None:
        """A client's working login for a password_command login, to leave a notice with."""
        return self._spares.get(key)

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        for key, engine in self.engines.items():
            self._running[key] = asyncio.create_task(engine.run(stop), name=str(engine))
        asks = asyncio.create_task(self._serve_asks(), name="requests")
        try:
            await stop.wait()
        finally:
            tasks = [*self._running.values(), asks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reconfigure(self, key: str, decider: Decider, settings: EngineSettings) -> None:
        """A reloaded config for one login's engine.

        The decider (VIPs) is used from the next decision on. New settings (batches, accounts)
        need the session built anew -- hold mailboxes, releaser, filer -- so the engine starts
        over with them, between two passes: its lock is held meanwhile, so no pass, release or
        filing is cut in the middle.
        """
        engine = self.engines[key]
        engine.decider = decider
        if settings == engine.settings:
            return
        task, stop = self._running.get(key), self._stop
        async with engine._lock:  # the engine's own "between two steps"
            engine.settings = settings
            if task is None or stop is None or stop.is_set():
                return  # not running: the new settings apply when it starts
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        log.info("%s: starting over with the reloaded config", engine)
        self._running[key] = asyncio.create_task(engine.run(stop), name=str(engine))

    async def _serve_asks(self) -> None:
        """Carry out what other processes ask through the store (``release --now``,
        ``deliver``, the local page's buttons); a stop cancels this task.

        On Linux the kernel says when the store's files are written (file_events.py), so an
        idle proxy does not wake for this at all but every ``sure_every`` seconds (a query, in
        case a write went unseen). Elsewhere it looks every ``_REQUEST_POLL`` seconds: a stat
        of the store's files (store_watch.py) in a timer callback (looks.py), no query and no
        task woken while nothing changes."""
        path = self.store.path
        watch, pending = StoreWatch(path), True
        events = FileEvents.open(path.parent, (path.name, path.name + "-wal"))
        if events is not None:
            events.start()
        try:
            while True:
                written = False
                if pending:  # a request waits for its retry, or writes were seen: by the clock
                    await asyncio.sleep(_REQUEST_POLL)
                elif events is not None:
                    written = await events.written(watch.sure_every)
                    if not written and not watch.changed():
                        continue
                    if written:  # the writer's commit may still be on its way: a moment
                        await asyncio.sleep(_SETTLE)
                else:  # the stats run on the loop's timer; this task wakes for news only
                    await when_seen(_REQUEST_POLL, watch.changed)
                releases = await self._serve_releases()
                # After writes, one more look by the clock: a commit becomes visible to other
                # connections a moment after its last write, which may be the last event.
                pending = await self._serve_deliveries() or releases or written
        finally:
            if events is not None:
                events.close()

    async def _serve_releases(self) -> bool:
        """Carry out ``commsproxy release --now``; whether a request is still waiting.

        A request is marked done only once every batch it names is released for every login
        it names: a release that fails (a link cut in the middle) is tried again, with waits
        growing to a minute, and the batches already released are not released twice.
        """
        released, retries = self._released, self._release_retries
        waiting = False
        for request in self.store.pending_release_requests():
            if not retries.due(request.id):
                waiting = True
                continue
            done = released.setdefault(request.id, set())
            error = await self._serve_request(request, done)
            if error is None:
                self.store.complete_release_request(request.id, datetime.now(UTC))
                released.pop(request.id, None)
                retries.done(request.id)
                continue
            waiting = True
            wait, news = retries.failed(request.id, error)
            if news:
                log.error("%s; trying again in %g s", error, wait)
        return waiting

    async def _serve_request(
        self, request: ReleaseRequest, done: set[tuple[str, str]]
    ) -> str | None:
        """Release what ``request`` names and is not in ``done`` yet; None when all is, else
        what failed (the request then stays queued)."""
        keys: Sequence[str] = list(self.engines) if request.login is None else [request.login]
        failed: list[str] = []
        for key in keys:
            engine = self.engines.get(key)
            if engine is None:
                continue
            for batch in engine.settings.batches:
                if request.batch not in (None, batch.name) or (key, batch.name) in done:
                    continue
                try:
                    moved = await engine.release(batch.name)
                except Exception as err:  # one failed release must not stop the others
                    failed.append(f"triage[{key}]: requested release of {batch.name} failed: {err}")
                    break  # this login's link is down: its other batches wait for the retry
                log.info("triage[%s]: released on request: %s", key, moved)
                done.add((key, batch.name))
        return "; ".join(failed) or None

    async def _serve_deliveries(self) -> bool:
        """Carry out ``commsproxy deliver`` (and the local page's "deliver now") for held
        messages, through each login's engine between two of its steps; whether a request is
        still waiting.

        A request is completed once the message is in INBOX, or refused when it is not held;
        one that fails on the way (a cut link, the engine not connected yet) stays queued and
        is tried again, with waits growing to a minute.
        """
        retries = self._deliver_retries
        requests = self.store.pending_deliveries()
        waiting = False
        for request in requests:
            if not retries.due(request.id):
                waiting = True
                continue
            crash: Exception | None = None
            try:
                error = await self._serve_delivery(request)
            except Exception as err:  # a bug or the store: keep serving the others
                crash, error = err, f"deliver request {request.id} failed: {err!r}"
            if error is None:
                retries.done(request.id)
                continue
            waiting = True
            wait, news = retries.failed(request.id, error)
            if news:
                log.warning("%s; trying again in %g s", error, wait, exc_info=crash)
        return waiting

    async def _serve_delivery(self, request: DeliverRequest) -> str | None:
        """Serve one deliver request; None when it is completed, else why it waits."""
        now = datetime.now(UTC)
        engine = self.engines.get(request.login)
        if engine is None:
            detail = f"no login {request.login!r} in the running commsproxy run"
            self.store.complete_delivery(request.id, "refused", detail, now)
            return None
        what = f"triage[{request.login}]: deliver <{request.message_id}>"
        if not engine.ready:
            return f"{what}: waiting for the login's triage to connect"
        async with engine.between_steps:
            worker = engine.worker
            if worker is None:
                return f"{what}: waiting for the login's triage to connect"
            holds = [*engine.hold_names.values(), *self.store.hold_mailboxes(request.login)]
            names, batches = engine.hold_names, engine.settings.batches
            fresh = {names[b.name] for b in batches if b.reappend and b.name in names}
            try:
                detail = await deliver_held(
                    worker, self.store, request, holds, engine.settings.clock, fresh
                )
            except NotHeld as err:
                self.store.complete_delivery(request.id, "refused", str(err), datetime.now(UTC))
                return None
            except Exception as err:  # the worker's own loop notices a dead link, woken now
                engine.link_failed()
                return f"{what} failed: {err}"
        self.store.complete_delivery(request.id, "delivered", detail, datetime.now(UTC))
        engine.wake()  # the message's arrival in INBOX: counted by the next pass
        return None


def _retries() -> RequestRetries:
    return RequestRetries(time.monotonic, lambda: _REQUEST_RETRY_MAX)


class CredentialSource:
    """The engine's way to get (user, password) when it (re)connects."""

    def __init__(self, hub: TriageHub, key: str) -> None:
        self._hub, self._key = hub, key

    async def __call__(self) -> tuple[str, str] | None:
        return await self._hub._credentials(self._key)

    def refused(self) -> None:
        self._hub.forget_password(self._key)

    async def check(self, worker: Upstream) -> None:
        return None  # a password stays good until the server refuses it
