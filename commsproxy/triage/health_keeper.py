"""One login's triage health: moved, published for ``status``, logged when it is news.

A failed try also sets the backoff before the next, and once triage has failed for ``[triage]
notice_after`` seconds leaves a notice in INBOX (notice.py) over a connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta

from .engine_settings import EngineSettings
from .health import Health, State
from .notice import NoticeBox
from .signin import Connector, SignInPaused
from .state_store import StateStore
from .upstream import LoginRefused, Upstream, UpstreamImapError

__all__ = ["HealthKeeper", "sleep_unless_stopped"]

log = logging.getLogger("commsproxy.triage")

_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # then [triage] retry_max, forever (at most)

Spare = Callable[[], tuple[str, str] | None]  # a client's login, to leave a notice with
Connect = Callable[[tuple[str, str] | Connector], Awaitable[Upstream]]


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class HealthKeeper:
    """``health`` and what it takes to say it: the store it is published in, the notice box,
    a client's login to leave a notice with (``spare``) and a way to connect; ``name`` says
    whose triage in the log."""

    def __init__(
        self,
        settings: EngineSettings,
        store: StateStore,
        health: Health,
        spare: Spare | None,
        connect: Connect,
        name: str,
    ) -> None:
        self._settings = settings
        self._store = store
        self.health = health
        self._spare = spare
        self._connect = connect
        self._name = name
        self.failures = 0  # in a row, for the backoff
        self.notices = NoticeBox(store, settings.login, settings.clock)
        self._told = False  # a failure on record from before a restart is news to this log
        self._spare_refused: tuple[str, str] | None = None

    def __str__(self) -> str:
        return self._name

    async def failed(
        self,
        stop: asyncio.Event,
        credentials: tuple[str, str] | Connector | None,
        state: State,
        reason: str,
        todo: str,
        lost: bool = False,
    ) -> None:
        """One failed try: health (logged when news), the notice when due, then the backoff."""
        delay = min(
            _BACKOFF[min(self.failures, len(_BACKOFF) - 1)], self._settings.triage.retry_max
        )
        self.failures += 1
        self.set(state, reason, todo, retry=delay, news=lost)
        after = timedelta(seconds=self._settings.triage.notice_after)
        if self.health.notice_due(self._settings.clock(), after):
            await self._notice_from_outside(credentials)
        await sleep_unless_stopped(stop, delay)

    def set(
        self,
        state: State,
        reason: str | None = None,
        todo: str | None = None,
        *,
        retry: float | None = None,
        log_it: bool = True,
        news: bool = False,
    ) -> bool:
        """Move health to ``state`` and publish it; log it when it is news. True if news."""
        before = self.health
        self.health = before.moved(state, self._settings.clock(), reason, todo)
        news = news or self.health.is_news(before) or not self._told
        if news:
            self.publish()
        self._told = True
        if not news or not log_it:
            if reason is not None:
                log.debug("%s: still %s: %s", self, state.value, reason)
            return news
        again = f"; reconnecting in {retry:g} s" if retry is not None else ""
        if state is State.SIGNIN_FAILED:
            log.error("%s: %s: %s%s", self, state.value, reason, again)
        elif state is State.WAITING:
            log.info("%s: waiting for a password: log in through the proxy once", self)
        elif state is State.PAUSED:
            log.debug("%s: paused: %s", self, reason)  # signin.py says it, once
        elif not self.health.working:
            log.warning("%s: %s%s", self, reason, again)
        elif not before.working and before.failing_since is not None:
            log.info("%s: triage works again (it had not since %s: %s)", self,
                     before.failing_since.isoformat(timespec="seconds"), before.reason)  # fmt: skip
        return news

    def publish(self) -> None:
        """Write health where `status`, another process, reads it."""
        self._store.save_health(self.health, os.getpid(), self._settings.clock())

    async def _notice_from_outside(self, credentials: tuple[str, str] | Connector | None) -> None:
        """Leave the notice over a connection of its own, once it is due.

        When the login itself fails, only a client's working login (kept in memory by the hub)
        can reach INBOX; a server that cannot be reached cannot take a notice either.
        """
        notice = self.notices.left
        state = self.health.state
        reason = self.health.reason or state.value
        if self._settings.dry_run or (
            notice is not None and notice.appended is not None and notice.reason == reason
        ):
            return  # there, saying why: nothing to connect for
        if state is State.FAILING:
            login: tuple[str, str] | Connector | None = credentials
        elif state in (State.SIGNIN_FAILED, State.WAITING):
            login = self._spare() if self._spare is not None else None
            if login == self._spare_refused:
                return  # tried once: no more failed logins until a client brings another
        else:
            return
        if login is None:
            return
        try:
            up = await self._connect(login)
        except (UpstreamImapError, SignInPaused) as err:
            if isinstance(err, LoginRefused) and isinstance(login, tuple):
                self._spare_refused = login
            log.debug("%s: cannot leave the notice: %s", self, err)
            return
        try:
            await self.notices.leave(up, reason, self.health.todo or "")
        except UpstreamImapError as err:
            log.warning("%s: could not leave the notice in INBOX: %s", self, err)
        finally:
            await up.logout()
