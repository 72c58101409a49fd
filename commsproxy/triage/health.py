"""How triage of one login is doing, in words: kept by its engine, read by ``status``.

The engine says what happened (logged in, a login refused, the server unreachable, a pause);
this model says whether that is news. A failure repeated on every retry is the same state, so
it is logged once, when it starts, and again only when it changes or ends. The model also
remembers since when triage has not worked (across failures of different kinds, and across a
restart: the store keeps it), which decides when a notice goes to INBOX. Pure: no I/O, and
time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = ["Health", "State"]


class State(StrEnum):
    STARTING = "starting"
    HISTORY = "history loading"  # logged in; reading the history with senders first
    CONNECTED = "connected"
    WAITING = "waiting for a password"  # no password_command: a client login brings one
    SIGNIN_FAILED = "signing in failed"
    UNREACHABLE = "server unreachable"
    PAUSED = "triage paused"  # an OAuth2 sign-in must be renewed (signin.py)
    FAILING = "failing"  # logged in, but a step fails (a refused CREATE, a bug)


_WORKING = frozenset({State.STARTING, State.HISTORY, State.CONNECTED})


@dataclass(frozen=True)
class Health:
    login: str
    state: State
    since: datetime  # when this state (with this reason) began
    reason: str | None = None  # why, in words, for a failing state
    todo: str | None = None  # what the user can do about it
    failing_since: datetime | None = None  # when triage last stopped working
    history: tuple[int, int] | None = None  # headers read of at most this many, while loading
    last_decision: tuple[datetime, str] | None = None  # when, and what ("bulk, held in Later")
    next_release: tuple[str, datetime] | None = None  # batch name, time

    @classmethod
    def start(cls, login: str, now: datetime, before: Health | None = None) -> Health:
        """At a (re)start: a failure on record goes on (with its time) until the engine
        learns better, so a restart neither hides it nor restarts the notice's clock."""
        if before is not None and not before.working:
            return before
        last = None if before is None else before.last_decision
        return cls(login, State.STARTING, now, last_decision=last)

    @property
    def working(self) -> bool:
        return self.state in _WORKING

    def moved(
        self, state: State, now: datetime, reason: str | None = None, todo: str | None = None
    ) -> Health:
        """Now in ``state``; the times stay when neither the state nor its reason changed."""
        if self._same(state, reason):
            return replace(self, reason=reason, todo=todo)
        failing = None if state in _WORKING else (self.failing_since or now)
        history = self.history if state is State.HISTORY else None
        return replace(
            self, state=state, since=now, reason=reason, todo=todo, failing_since=failing,
            history=history,
        )  # fmt: skip

    def is_news(self, before: Health) -> bool:
        """Worth a log line: a new state, or the same failure for another reason."""
        return not before._same(self.state, self.reason)

    def _same(self, state: State, reason: str | None) -> bool:
        # An unreachable server gives a new reason on nearly every try (a link lost, refused,
        # timed out): one state all the same.
        return state == self.state and (reason == self.reason or state is State.UNREACHABLE)

    def notice_due(self, now: datetime, after: timedelta) -> bool:
        """A notice belongs in INBOX: triage has not worked for ``after``. A pause needs one at
        once: only the worker still logged in with the last token can leave it."""
        if self.working or self.failing_since is None:
            return False
        return self.state is State.PAUSED or now - self.failing_since >= after
