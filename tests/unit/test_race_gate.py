"""Harmless races never stall a client: vanished messages, triage that is down, clients leaving.

Fakes only here (a scripted IMAP server, a backend, a session); the same cases against the
real Dovecot are in tests/integration/test_many_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from commsproxy.imap.framer import Framer, Line, MessageEnd
from commsproxy.imap.grammar import parse_command, parse_response
from commsproxy.imap.session import ImapSession
from commsproxy.proxy.imap.gate import GateHooks
from commsproxy.proxy.imap.relay import Session
from commsproxy.triage.engine import Engine, EngineSettings
from commsproxy.triage.state_store import Decision, StateStore
from commsproxy.triage.upstream import Upstream, UpstreamImapError
from commsproxy.upstream import connect

from .imap_server import Peer, scripted_server

# --- the engine's link: EXPUNGEISSUED and vanished UIDs ---------------------------------------


@dataclass
class ScriptedImap:
    """Just enough of an IMAP server, on the wire: a mailbox of UIDs that another client empties.

    ``steal`` UIDs vanish on the next MOVE, which is then refused with EXPUNGEISSUED the way
    Dovecot does it (nothing moved); a UID already gone is skipped without a word. With
    ``hang`` the link drops as soon as a command comes.
    """

    inbox: set[int]
    steal: set[int] = field(default_factory=set)
    capabilities: frozenset[str] = frozenset({"MOVE", "UIDPLUS"})
    moved: list[int] = field(default_factory=list)
    hang: bool = False
    commands: list[str] = field(default_factory=list)

    @property
    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY IMAP4rev1 {' '.join(sorted(self.capabilities))}] hi\r\n".encode()

    async def serve(self, peer: Peer) -> None:
        while True:
            command = await peer.command()
            words = [str(arg) for arg in command.args]
            if command.name != "LOGOUT":
                kept = words[:1] if "MOVE" in command.name else words[:2]
                self.commands.append(" ".join([command.name, *kept]))
            if self.hang:  # the link is dead: it drops
                await peer.close()
                return
            tag = command.tag.encode()
            if command.name == "UID MOVE":
                peer.send(
                    self._move(_expand(words[0])) + tag + b" OK Done\r\n"
                    if not self._refused(_expand(words[0]))
                    else tag
                    + b" NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n"
                )
            elif command.name == "UID SEARCH":
                wanted = _expand(words[1])
                found = " ".join(str(uid) for uid in wanted if uid in self.inbox)
                peer.send(
                    f"* SEARCH {found}".strip().encode()
                    + b"\r\n"
                    + tag
                    + b" OK Search completed\r\n"
                )
            elif command.name == "LOGOUT":
                peer.send(b"* BYE\r\n" + tag + b" OK\r\n")
                return
            else:
                raise AssertionError(command.name)

    def _refused(self, uids: list[int]) -> bool:
        if self.steal & set(uids):
            self.inbox -= self.steal
            self.steal = set()
            return True
        return False

    def _move(self, uids: list[int]) -> bytes:
        here = [uid for uid in uids if uid in self.inbox]
        self.inbox -= set(here)
        self.moved += here
        if not here or "UIDPLUS" not in self.capabilities:
            return b""
        new = ",".join(str(100 + uid) for uid in here)
        return f"* OK [COPYUID 7 {','.join(map(str, here))} {new}] Moved\r\n".encode()


def _expand(uid_set: str) -> list[int]:
    out: list[int] = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        out.extend(range(int(low), int(high or low) + 1))
    return out


@contextlib.asynccontextmanager
async def _upstream(server: ScriptedImap) -> AsyncIterator[Upstream]:
    async with scripted_server(server.serve, greeting=server.greeting) as served:
        client = await connect(served.endpoint, ssl.create_default_context(), seconds=5.0)
        try:
            yield Upstream(client, 5.0)
        finally:
            await client.logout()


async def test_move_of_a_message_expunged_meanwhile_moves_the_rest() -> None:
    client = ScriptedImap(inbox={1, 2, 3, 4}, steal={2})
    async with _upstream(client) as upstream:
        moved = await upstream.move([1, 2, 3], "Later")
    assert moved.gone == {2}
    assert sorted(moved.uids) == [1, 3]
    assert sorted(client.moved) == [1, 3]
    assert client.inbox == {4}


async def test_move_of_uids_already_gone_reports_them_gone() -> None:
    client = ScriptedImap(inbox={1, 3})
    async with _upstream(client) as upstream:
        moved = await upstream.move([1, 2, 3], "Later")
    assert moved.gone == {2}
    assert sorted(moved.uids) == [1, 3]


async def test_move_where_everything_vanished_is_done() -> None:
    client = ScriptedImap(inbox={5}, steal={5})
    async with _upstream(client) as upstream:
        moved = await upstream.move([5], "Later")
    assert moved.gone == {5}
    assert moved.uids == {}
    assert client.commands == ["UID MOVE 5", "UID SEARCH UID 5"]


async def test_a_server_without_uidplus_cannot_say_what_vanished() -> None:
    client = ScriptedImap(inbox={1}, capabilities=frozenset({"MOVE"}))
    async with _upstream(client) as upstream:
        moved = await upstream.move([1, 2], "Later")
    assert moved.gone == frozenset()  # no COPYUID: taken as moved, as before


async def test_a_link_failure_is_still_an_error() -> None:
    client = ScriptedImap(inbox={1}, hang=True)
    async with _upstream(client) as upstream:  # the link drops at the MOVE
        with pytest.raises(UpstreamImapError, match="connection lost"):
            await upstream.move([1], "Later")


# --- the engine: no waiting for an engine that is not connected -------------------------------


async def _before(hooks: GateHooks, session: Any, command: Any) -> None:
    """A client command as the relay hands it to the gate: waited for only if it must be."""
    if (waiting := hooks.before_command(session, command)) is not None:
        await waiting


def _engine(tmp_path: Path) -> Engine:
    # An engine that never connects: only its store (for health) and clock are read.
    store = StateStore(tmp_path / "state.db")
    settings = cast(
        EngineSettings, SimpleNamespace(login="me", batches=(), clock=lambda: datetime.now(UTC))
    )
    return Engine(settings, cast(Any, None), store, cast(Any, None))


async def test_catch_up_for_the_gate_returns_at_once_when_not_connected(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await engine.catch_up(30, while_ready=True) is None
    assert loop.time() - started < 0.5


async def test_catch_up_for_the_gate_stops_waiting_when_the_engine_drops(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine._ready.set()
    waiting = asyncio.create_task(engine.catch_up(30, while_ready=True))
    await asyncio.sleep(0)  # it now waits for a pass
    await engine._not_ready()
    assert await asyncio.wait_for(waiting, 1) is None


def test_what_triage_has_finished_with_is_its_cursor_while_connected(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine._cursor = (7, 41)  # as the last pass left it
    assert engine.decided() is None  # not connected: the gate does not count on it
    engine._ready.set()
    assert engine.decided() == (7, 41)
    # A pass under way moves the store's cursor chunk by chunk; the gate keeps the pass's
    # start (it then waits for that pass), and no SELECT reads the store.
    engine.store.set_cursor("me", "INBOX", 7, 45)
    assert engine.decided() == (7, 41)


# --- the gate ---------------------------------------------------------------------------------


class FakeBackend:
    def __init__(self, ready: bool) -> None:
        self.up = ready
        self.asked = 0
        self.needs: list[str] = []
        self.cursor: tuple[int, int] | None = None  # triage's (UIDVALIDITY, UID); None: unknown

    def login_for(self, user: str) -> str | None:
        return "me"

    def ready(self, login: str) -> bool:
        return self.up

    async def catch_up(
        self, login: str, limit: float, need: str = "pass"
    ) -> tuple[int, int] | None:
        self.asked += 1
        self.needs.append(need)
        if not self.up:
            raise AssertionError("the gate waited for triage that is down")
        return (4, 4)  # all four messages decided, none held

    def known(self, login: str) -> tuple[int, int] | None:
        return None  # cannot say from memory: every poll asks catch_up

    def held_uids(self, login: str) -> frozenset[int]:
        return frozenset()

    def decided(self, login: str) -> tuple[int, int] | None:
        return self.cursor

    def remember_password(self, login: str, password: str, user: str) -> None:
        return None


def _inbox_selected() -> ImapSession:
    """A real session machine, logged in as "me" with INBOX (3 messages) selected."""
    state = ImapSession()
    for client, server in (
        (b"a LOGIN me pw\r\n", b"a OK logged in\r\n"),
        (b"s SELECT INBOX\r\n", b"* 3 EXISTS\r\ns OK [READ-WRITE] done\r\n"),
    ):
        framer = Framer()
        framer.receive_data(client)
        for event in framer.events():
            if isinstance(event, Line):
                state.client_line(event)
            elif isinstance(event, MessageEnd):
                state.client_message_end(event)
        for line in server.splitlines(keepends=True):
            state.server_line(line)
    return state


class FakeSession:
    """What the gate touches of a relay session; writing to the client may fail."""

    def __init__(self, write_error: Exception | None = None) -> None:
        self.state = _inbox_selected()
        self.write_error = write_error
        self.paused = False
        self.writes = 0

    def __str__(self) -> str:
        return "imap#test"

    def pause_responses(self) -> None:
        self.paused = True

    def hold_answer(self) -> None:
        self.paused = True

    @property
    def responses_paused(self) -> bool:
        return self.paused

    async def resume_responses(self, rewrite: Any = None, *, keep_paused: bool = False) -> None:
        self.writes += 1
        if self.write_error is not None:
            raise self.write_error
        if rewrite is not None:
            rewrite([])  # nothing held here: the view learns what the client may know
        self.paused = keep_paused

    def release_held(self) -> None:
        self.writes += 1
        self.paused = False

    def send_own_command(self, command: str) -> str | None:
        return None

    def sync_in_idle(self) -> str | None:
        return None


def _session(fake: FakeSession) -> Session:
    return cast(Session, fake)


async def test_gate_fails_open_at_once_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "commsproxy.gate")
    backend = FakeBackend(ready=False)
    hooks = GateHooks(backend, timeout=30)
    session = _session(FakeSession())
    loop = asyncio.get_running_loop()
    for line in (b"a SELECT INBOX", b"b STATUS INBOX (MESSAGES)", b"c NOOP", b"d EXAMINE INBOX"):
        started = loop.time()
        await _before(hooks, session, parse_command(line))
        assert loop.time() - started < 0.5
    assert backend.asked == 0
    said = [r.getMessage() for r in caplog.records if "not connected" in r.getMessage()]
    assert len(said) == 1, said
    backend.up = True
    await _before(hooks, session, parse_command(b"e NOOP"))
    assert backend.asked == 1
    assert any("triage is back" in r.getMessage() for r in caplog.records)


class KnowingBackend(FakeBackend):
    """A backend that can say from memory that nothing new arrived (``known``)."""

    def __init__(self) -> None:
        super().__init__(ready=True)
        self.news = False

    def known(self, login: str) -> tuple[int, int] | None:
        return None if self.news else (4, 4)


async def test_a_poll_with_nothing_new_goes_at_once_and_with_news_waits_for_triage() -> None:
    backend = KnowingBackend()
    hooks = GateHooks(backend, timeout=30)
    session = _session(FakeSession())
    for line in (b"a NOOP", b"b IDLE", b"c CHECK"):
        assert hooks.before_command(session, parse_command(line)) is None
    assert backend.needs == []
    backend.news = True
    for line in (b"d NOOP", b"e IDLE"):
        waiting = hooks.before_command(session, parse_command(line))
        assert waiting is not None
        await waiting
    assert backend.needs == ["known", "known"]
    # A STATUS of INBOX still looks (one NOOP on triage's link), news or not.
    backend.news = False
    await _before(hooks, session, parse_command(b"f STATUS INBOX (MESSAGES)"))
    assert backend.needs == ["known", "known", "look"]


async def test_new_mail_while_triage_is_down_is_shown_at_once() -> None:
    backend = FakeBackend(ready=False)
    hooks = GateHooks(backend, timeout=30)
    fake = FakeSession()
    session = _session(fake)
    await _before(hooks, session, parse_command(b"a SELECT INBOX"))
    hooks.on_response(session, parse_response(b"* 3 EXISTS"))
    hooks.on_response(session, parse_response(b"* 4 EXISTS"))  # new mail: paused, then settled
    assert fake.paused
    await asyncio.wait_for(_settled(hooks, session), 1)
    assert not fake.paused
    assert fake.writes == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        asyncio.IncompleteReadError(b"", 10),
    ],
)
async def test_a_client_leaving_while_held_responses_go_out_is_no_error(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hooks = GateHooks(FakeBackend(ready=True), timeout=30)
    fake = FakeSession(write_error=error)
    session = _session(fake)
    await _before(hooks, session, parse_command(b"a SELECT INBOX"))
    hooks.on_response(session, parse_response(b"* 3 EXISTS"))
    hooks.on_response(session, parse_response(b"* 4 EXISTS"))
    task = hooks._gates[session].settling
    assert task is not None
    await asyncio.wait_for(task, 1)
    assert task.exception() is None  # nothing left for "Task exception was never retrieved"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("client left" in r.getMessage() for r in caplog.records)


async def _settled(hooks: GateHooks, session: Session) -> None:
    while (task := hooks._gates[session].settling) is not None:
        await task


class CountingBackend(KnowingBackend):
    """Counts how often the gate asks which login a user name belongs to."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def login_for(self, user: str) -> str | None:
        self.lookups += 1
        return "me"


async def test_the_gate_asks_a_user_names_login_once() -> None:
    backend = CountingBackend()
    hooks = GateHooks(backend, timeout=30)
    first, second = _session(FakeSession()), _session(FakeSession())
    for session in (first, second, first):
        for line in (b"a NOOP", b"b IDLE", b"c CHECK"):
            assert hooks.before_command(session, parse_command(line)) is None
    assert backend.lookups == 1  # both sessions are logged in as "me"


# --- the record of a message that was gone -----------------------------------------------------


def test_a_message_gone_before_its_move_is_recorded_as_not_held(tmp_path: Path) -> None:
    when = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with StateStore.open(tmp_path / "state") as store:
        store.record_decisions(
            Decision(
                login="me",
                mailbox="INBOX",
                uidvalidity=7,
                uid=uid,
                message_id=f"<m{uid}@x>",
                label="normal",
                score=0.1,
                reason="low urgency",
                batch="later",
                held=True,
                sender="a@example.org",
                subject="s",
                decided_at=when,
            )
            for uid in (1, 2)
        )
        store.mark_gone("me", "INBOX", 7, [2], "gone before it was held")
        kept, gone = (store.decision_for_uid("me", "INBOX", 7, uid) for uid in (1, 2))
    assert kept is not None
    assert kept.held
    assert kept.reason == "low urgency"
    assert gone is not None
    assert not gone.held
    assert gone.reason == "low urgency (gone before it was held)"


async def test_what_the_gate_asks_of_triage_per_command() -> None:
    """Polls take what triage knows; a SELECT, EXAMINE or STATUS has it look; mail the server
    announces that the client has not seen asks for a pass."""
    backend = FakeBackend(ready=True)
    hooks = GateHooks(backend, timeout=30)
    fake = FakeSession()
    session = _session(fake)
    for line in (b"a NOOP", b"b CHECK", b"c IDLE", b"d SELECT INBOX", b"e STATUS INBOX (UIDNEXT)"):
        await _before(hooks, session, parse_command(line))
    await _before(hooks, session, parse_command(b"f EXAMINE INBOX"))
    await _before(hooks, session, parse_command(b"g STATUS Later (MESSAGES)"))
    assert backend.needs == ["known", "known", "known", "look", "look", "look"]
    assert not fake.paused
    backend.cursor = (7, 3)  # triage's cursor known: a SELECT/EXAMINE holds its answer instead
    for line in (b"h NOOP", b"i IDLE", b"j STATUS INBOX (UIDNEXT)"):
        await _before(hooks, session, parse_command(line))
    assert backend.needs[6:] == ["known", "known", "look"]
    assert not fake.paused
    hooks.on_response(session, parse_response(b"* 3 EXISTS"))
    hooks.on_response(session, parse_response(b"* 5 EXISTS"))  # more than the client has seen
    assert fake.paused
    await asyncio.wait_for(_settled(hooks, session), 1)
    assert backend.needs[9:] == ["pass"]


def _client_says(state: ImapSession, line: bytes) -> None:
    framer = Framer()
    framer.receive_data(line + b"\r\n")
    for event in framer.events():
        if isinstance(event, Line):
            state.client_line(event)
        elif isinstance(event, MessageEnd):
            state.client_message_end(event)


async def _select_answered(
    uidnext: int, cursor: tuple[int, int]
) -> tuple[FakeBackend, FakeSession]:
    """A client re-selects INBOX (4 messages, UIDNEXT ``uidnext``) with triage at ``cursor``."""
    backend = FakeBackend(ready=True)
    backend.cursor = cursor
    hooks = GateHooks(backend, timeout=30)
    fake = FakeSession()
    session = _session(fake)
    command = b"d SELECT INBOX"
    _client_says(fake.state, command)
    await _before(hooks, session, parse_command(command))
    assert fake.paused  # the answer is held from the start...
    assert backend.needs == []  # ...and nothing waits for triage before it goes upstream
    for line in (
        b"* 4 EXISTS\r\n",
        b"* OK [UIDVALIDITY 7] UIDs valid\r\n",
        b"* OK [UIDNEXT %d] Predicted next UID\r\n" % uidnext,
        b"d OK [READ-WRITE] Select completed\r\n",
    ):
        _, response = fake.state.server_line(line)
        assert response is not None
        hooks.on_response(session, response)
    assert fake.state.uidnext == uidnext
    await asyncio.wait_for(_settled(hooks, session), 1)
    return backend, fake


async def test_a_select_naming_only_decided_mail_goes_out_without_asking_triage() -> None:
    backend, fake = await _select_answered(uidnext=11, cursor=(7, 10))
    assert backend.needs == []
    assert (fake.paused, fake.writes) == (False, 1)


async def test_a_select_naming_mail_triage_has_not_finished_waits_for_a_pass() -> None:
    backend, fake = await _select_answered(uidnext=12, cursor=(7, 10))
    assert backend.needs == ["pass"]
    assert not fake.paused


async def test_a_select_after_a_new_uidvalidity_waits_for_a_pass() -> None:
    backend, fake = await _select_answered(uidnext=5, cursor=(6, 10))
    assert backend.needs == ["pass"]
    assert not fake.paused
