"""The relay hooks that drive the no-flicker gate (inbox_view.py).

Per session: before a client's NOOP/IDLE/CHECK/STATUS on INBOX, triage is asked to catch up,
which closes most races before they happen. That costs the client nothing when nothing arrived:
a NOOP, IDLE or CHECK gets what triage already knows unless its watcher heard INBOX change, and
a STATUS one NOOP on triage's own link, where INBOX stays selected, to be sure. A SELECT or
EXAMINE of INBOX waits for nothing: it goes upstream at once and its answer is held until its
tagged reply, whose ``UIDNEXT`` (and ``UIDVALIDITY``) the session machine keeps. Triage's
cursor, read before the command went, names the highest UID it has finished with (decided, and
moved away if held); when every UID the answer can name is at or below it, nothing in the answer
is about to be held and it goes out unchanged. Otherwise (or without ``UIDNEXT``) the answer is
settled like announced new mail, the messages surely below the cursor counting as known. When
upstream announces mail the client has not seen, the session's responses are paused, triage
makes a real pass (bounded by the gate timeout), the upstream is made to report the resulting
expunges (its own ``NOOP`` between client commands; in IDLE they come by themselves), and the
paused responses go out rewritten so the held mail never shows. A slow or broken triage only
delays the client by the timeout: then the gate fails open and the message shows, to be held a
moment later. Triage that is not connected (starting, or waiting to reconnect) is not waited
for at all: the gate fails open at once and says so once, not per command.

The gate keeps no copy of the session's state: whether INBOX is selected (once the server said
OK), the message count the upstream reported and the proxy's own commands in flight are read
from the session machine (``session.state``, commsproxy.imap.session). What is its own is the
client's side of INBOX (``InboxView``: how much the client has been shown) and the settling.

A client may hang up at any moment, also while the gate writes held responses to it; that is an
ordinary end of a session (debug level), never an error, and the settling task never ends with
an exception nobody retrieves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ...imap.grammar import Command, Response, ResponseKind
from ...imap.names import INBOX
from ...imap.session import ImapSession
from .hooks import DISCONNECTS, RelayedSession
from .inbox_view import InboxView

__all__ = ["GateHooks", "TriageBackend"]

log = logging.getLogger("commsproxy.gate")

_CATCH_UP_COMMANDS = frozenset({"NOOP", "IDLE", "CHECK", "SELECT", "EXAMINE", "STATUS"})
_SELECTS = frozenset({"SELECT", "EXAMINE"})
_IDLE_SETTLE = 2.0  # seconds to wait for an IDLE session to hear of the expunges
_MAX_USERS = 1024  # user names whose login the gate keeps


class TriageBackend(Protocol):
    """What the gate needs from triage (the service's engines)."""

    def login_for(self, user: str) -> str | None:
        """The triaged login a client user name belongs to, if any (the same for the life of
        the backend: the gate asks once per user name)."""

    def ready(self, login: str) -> bool:
        """Triage for ``login`` is connected and working: worth waiting for."""

    async def catch_up(
        self, login: str, limit: float, need: Literal["known", "look", "pass"] = "pass"
    ) -> tuple[int, int] | None:
        """Triage what arrived; INBOX's (messages, triaged messages), or None on timeout or
        when triage is not (or no longer) connected. ``need``: "known" takes what triage knows
        unless it heard of news, "look" checks with one STATUS, "pass" waits for a pass."""

    def known(self, login: str) -> tuple[int, int] | None:
        """INBOX's (messages, triaged messages) when triage is connected and heard of nothing
        new since its last pass (what ``catch_up`` "known" would give at once, so a NOOP, IDLE
        or CHECK goes upstream in the relay's callback); None when a client must wait."""

    def held_uids(self, login: str) -> frozenset[int]:
        """INBOX UIDs recently moved to hold mailboxes."""

    def decided(self, login: str) -> tuple[int, int] | None:
        """INBOX's (UIDVALIDITY, UID) triage has finished up to: every message up to that UID
        is decided, and moved away if held; None before its first pass."""


@dataclass(slots=True)  # one per SELECT of INBOX: not frozen, for speed; treat as read-only
class _Opening:
    """A SELECT/EXAMINE of INBOX whose answer is held until its tagged reply."""

    tag: str
    decided: tuple[int, int]  # triage's (UIDVALIDITY, UID) before the command went upstream


@dataclass
class _SessionGate:
    view: InboxView | None = None  # set while INBOX is selected
    opening: _Opening | None = None
    settling: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a response came while paused


def _rewriter(
    view: InboxView, state: ImapSession, held: frozenset[int], limit: int | None
) -> Callable[[list[list[bytes]]], list[bytes]]:
    own = frozenset(state.own_tags)  # their replies never reach the client; kept out twice

    def rewrite(messages: list[list[bytes]]) -> list[bytes]:
        return view.rewrite(messages, own, held, limit).data

    return rewrite


def _inbox_open(state: ImapSession) -> bool:
    """INBOX is selected (the server said OK) and no other SELECT is under way."""
    return state.selected == INBOX and not state.selecting


class GateHooks:
    def __init__(self, backend: TriageBackend, timeout: float = 5.0) -> None:
        self.backend = backend
        self.timeout = timeout
        self._gates: weakref.WeakKeyDictionary[RelayedSession, _SessionGate] = (
            weakref.WeakKeyDictionary()
        )
        self._open: set[str] = set()  # logins whose triage is down: said once, not per command
        # The login each user name belongs to, asked once (the logins are read at start):
        # every command through the gate needs it. Bounded, as user names come from clients.
        self._logins: dict[str, str | None] = {}

    def _gate(self, session: RelayedSession) -> _SessionGate:
        gate = self._gates.get(session)
        if gate is None:
            gate = self._gates[session] = _SessionGate()
        return gate

    def _login(self, session: RelayedSession) -> str | None:
        user = session.state.user
        if not user:
            return None
        logins = self._logins
        if user not in logins:
            if len(logins) >= _MAX_USERS:
                logins.clear()
            logins[user] = self.backend.login_for(user)
        return logins[user]

    # -- hooks --------------------------------------------------------------------------------

    def before_command(self, session: RelayedSession, command: Command) -> Awaitable[object] | None:
        """None when the command may go at once (most commands, and a SELECT/EXAMINE of INBOX,
        whose answer is held instead); else the wait for triage to catch up."""
        if command.name not in _CATCH_UP_COMMANDS:
            return None
        login = self._login(session)
        if login is None:
            return None
        opening = command.name in ("SELECT", "EXAMINE", "STATUS")
        if opening:
            if command.mailbox != INBOX:  # a command's mailbox spells INBOX one way
                return None
        elif not _inbox_open(session.state):
            return None
        if not self._triage_up(login):
            return None
        if command.name in _SELECTS and self._hold_answer(session, command, login):
            return None
        if not opening and self.backend.known(login) is not None:
            return None  # nothing new: what triage knows is what a wait would give
        return self._catch_up(session, login, "look" if opening else "known")

    async def _catch_up(
        self, session: RelayedSession, login: str, need: Literal["look", "known"]
    ) -> None:
        state = await self.backend.catch_up(login, self.timeout, need)
        if state is None and self._triage_up(login):
            log.warning("%s: triage did not catch up within %g s; going on", session, self.timeout)

    def _hold_answer(self, session: RelayedSession, command: Command, login: str) -> bool:
        """Forward a SELECT/EXAMINE of INBOX at once and hold its answer: its UIDNEXT says
        at the tagged reply whether it shows mail triage has not finished with (``_opened``).
        False where that cannot be done: then triage is asked first, as for STATUS."""
        decided = self.backend.decided(login)
        gate = self._gate(session)
        if decided is None or session.responses_paused or gate.opening is not None:
            return False
        session.hold_answer()  # only its tagged reply matters here (``_opened``)
        gate.opening, gate.view = _Opening(command.tag, decided), None
        return True

    def _opened(self, session: RelayedSession, gate: _SessionGate, opening: _Opening) -> None:
        """The held SELECT/EXAMINE answered: show it as it is when triage had finished with
        every UID it names before it was sent; else settle it like announced new mail."""
        gate.opening = None
        state = session.state
        if not _inbox_open(state):  # refused, or another SELECT follows: nothing to gate
            gate.view = None
            self._show(session, gate)
            return
        if not session.responses_paused:  # the hold overflowed and failed open: resynchronise
            gate.view = InboxView()
            return
        exists, uidnext = state.exists or 0, state.uidnext
        validity, last = opening.decided
        if uidnext is not None and state.uidvalidity == validity:
            unseen = max(0, uidnext - 1 - last)  # at most this many messages are new
        else:
            unseen = exists  # no UIDNEXT (or a new UIDVALIDITY): every message may be new
        gate.view = InboxView(max(0, exists - unseen), exists, announce=True)
        if unseen == 0:
            gate.view.known = gate.view.total = state.exists
            self._show(session, gate)
        else:
            log.debug("%s: the SELECT may name %d new message(s): triage first", session, unseen)
            session.pause_responses()  # settling reads every response from here on
            gate.settling = asyncio.create_task(self._settle(session, gate))

    def _show(self, session: RelayedSession, gate: _SessionGate) -> None:
        """The held answer goes out unchanged with its tagged reply, being read now."""
        if not session.responses_paused:
            return
        if gate.view is not None:
            gate.view.announce = False
        session.release_held()

    def _triage_up(self, login: str) -> bool:
        """Whether to wait for triage; its going down and coming back are logged once each."""
        if self.backend.ready(login):
            if login in self._open:
                self._open.discard(login)
                log.info("gate[%s]: triage is back; new mail waits for it again", login)
            return True
        if login not in self._open:
            self._open.add(login)
            log.warning(
                "gate[%s]: triage is not connected; new mail shows unchecked until it is", login
            )
        return False

    def on_response(self, session: RelayedSession, response: Response) -> None:
        gate = self._gates.get(session)
        if gate is not None and gate.opening is not None:
            if response.kind is ResponseKind.TAGGED and response.tag == gate.opening.tag:
                self._opened(session, gate, gate.opening)
            return
        if gate is not None and gate.settling is not None:
            self._while_paused(session, gate)
            return
        state = session.state
        if not _inbox_open(state):
            if gate is not None:
                gate.view = None
            return
        if gate is None or gate.view is None:
            if self._login(session) is None:
                return
            # INBOX was just selected: the client knows what the SELECT reported.
            gate = self._gate(session)
            gate.view = InboxView(state.exists, state.exists)
        if response.kind is not ResponseKind.UNTAGGED or response.number is None:
            if response.name == "VANISHED":
                gate.view.known = None  # cannot count it here: resynchronise at the next EXISTS
            return
        if response.name == "EXISTS":
            if gate.view.wants_pause(response.number):
                session.pause_responses()
                gate.settling = asyncio.create_task(self._settle(session, gate))
        elif response.name == "EXPUNGE":
            gate.view.forwarded_expunge()

    def _while_paused(self, session: RelayedSession, gate: _SessionGate) -> None:
        if not _inbox_open(session.state):
            gate.view = None  # another mailbox: the settling shows what it held, unchanged
        gate.changed.set()

    # -- settling a pause ---------------------------------------------------------------------

    async def _settle(self, session: RelayedSession, gate: _SessionGate) -> None:
        login = self._login(session)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        held = self.backend.held_uids
        try:
            while login is not None and (left := deadline - loop.time()) > 0:
                if not self._triage_up(login):
                    break
                state = await self.backend.catch_up(login, left, "pass")
                if state is None:
                    if self._triage_up(login):
                        log.warning("%s: triage too slow; showing new mail unchecked", session)
                    break
                total, triaged = state
                await self._hear_expunges(session, gate, total, deadline - loop.time())
                view = gate.view
                if view is None or not session.responses_paused:
                    break
                # Show what triage has decided on; keep holding back the rest.
                rewrite = _rewriter(view, session.state, held(login), triaged)
                await session.resume_responses(rewrite, keep_paused=True)
                if not view.hiding:
                    await session.resume_responses()
                    return
        except DISCONNECTS as err:
            log.debug("%s: client left while the gate held responses: %r", session, err)
            return  # nothing to show to a client that is gone
        except Exception:
            log.exception("%s: gate error; showing new mail unchecked", session)
        finally:
            gate.settling = None
        try:
            await self._fail_open(session, gate, login)
        except DISCONNECTS as err:
            log.debug("%s: client left while the gate failed open: %r", session, err)
        except Exception:
            # Logged here: this task is not awaited, so an exception would go unretrieved.
            log.exception("%s: gate could not show held responses", session)

    async def _fail_open(
        self, session: RelayedSession, gate: _SessionGate, login: str | None
    ) -> None:
        """Show everything still held back (a no-op after a clean finish)."""
        view = gate.view
        if not session.responses_paused:
            if view is not None and view.hiding:
                view.known = None  # the relay failed open on its own: resynchronise
            return
        if view is None:
            await session.resume_responses()
            return
        uids = self.backend.held_uids(login) if login else frozenset()
        await session.resume_responses(_rewriter(view, session.state, uids, None))

    async def _hear_expunges(
        self, session: RelayedSession, gate: _SessionGate, target: int, left: float
    ) -> None:
        """Let upstream tell this session about what triage moved away: a NOOP of our own
        between client commands, or inside the client's IDLE."""
        if left <= 0:
            return
        state = session.state
        tag = session.send_own_command("NOOP") or session.sync_in_idle()
        if tag is not None:
            # Done when our NOOP is answered: the machine forgets its tag then.
            def settled() -> bool:
                return tag not in state.own_tags
        else:
            # Mid-command: upstream reports expunges with that command's reply.
            left = min(left, _IDLE_SETTLE)

            def settled() -> bool:
                return state.exists is None or state.exists <= target

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                while not settled():
                    gate.changed.clear()
                    await gate.changed.wait()
