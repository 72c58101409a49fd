"""The relay over real sockets on loopback, against a scripted fake upstream (no Dovecot).

The fake answers each command line with a canned reply; the tests check the bytes each side
receives, the machine's facts, and the login hooks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from commsproxy.endpoints import parse_endpoint
from commsproxy.imap.errors import No
from commsproxy.imap.grammar import Command, Response
from commsproxy.imap.session import State
from commsproxy.imap.session_events import ClientLogin, LoginSteps
from commsproxy.proxy.imap.hooks import RelayLimits, SessionParts
from commsproxy.proxy.imap.relay import Session
from commsproxy.proxy.routing import UpstreamServer

Script = Callable[[bytes], bytes]


@dataclass
class FakeUpstream:
    script: Script
    greeting: bytes = b"* OK fake ready\r\n"
    received: bytearray = field(default_factory=bytearray)
    port: int = 0
    hold_greeting: asyncio.Event | None = None  # greets once it is set
    greeted: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hold_greeting is not None:
            await self.hold_greeting.wait()
        writer.write(self.greeting)
        await writer.drain()
        self.greeted.set()
        while line := await reader.readline():
            self.received += line
            reply = self.script(line)
            writer.write(reply)
            await writer.drain()
            if reply.startswith(b"* BYE"):
                break  # as servers do: BYE, then close
        writer.close()


_literal_tag: list[bytes] = []  # a LOGIN whose arguments follow as a literal


def dovecot_like(line: bytes) -> bytes:
    if _literal_tag:
        return _literal_tag.pop() + (b" OK logged in\r\n" if b"pw" in line else b" NO no\r\n")
    tag, _, rest = line.partition(b" ")
    if rest.endswith(b"+}\r\n"):
        _literal_tag.append(tag)
        return b""
    name = rest.split(b" ", 1)[0].strip().upper()
    if name == b"LOGIN":
        ok = b"pw" in rest
        return tag + (b" OK logged in\r\n" if ok else b" NO [AUTHENTICATIONFAILED] no\r\n")
    if name == b"SELECT":
        return b"* 2 EXISTS\r\n* CAPABILITY IMAP4rev1 COMPRESS=DEFLATE\r\n" + tag + b" OK sel\r\n"
    if name == b"DONE" or not rest:
        return b""
    return tag + b" OK " + name + b" done\r\n"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(dovecot_like)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()


@dataclass
class Logins:
    seen: list[tuple[str, str]] = field(default_factory=list)

    def on_logged_in(self, user: str, secret: str) -> None:
        self.seen.append((user, secret))


async def start(
    fake: FakeUpstream, limits: RelayLimits | None = None, **kwargs: object
) -> tuple[Session, asyncio.StreamReader, asyncio.StreamWriter, asyncio.Task[None]]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    s_reader, s_writer = await asyncio.open_connection(sock=theirs)
    upstream = parse_endpoint(f"imap://127.0.0.1:{fake.port}", "imap")
    parts = SessionParts(
        UpstreamServer(upstream, ssl.create_default_context()),
        None,
        limits or RelayLimits(),
        **kwargs,  # type: ignore[arg-type]
    )
    session = Session(s_reader, s_writer, parts)
    return session, reader, writer, asyncio.create_task(session.run())


async def until(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    out = b""
    while not out.startswith(tag) and b"\n" + tag not in out:
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line, out
        out += line
    return out


async def test_bytes_pass_unchanged_and_the_machine_follows(upstream: FakeUpstream) -> None:
    logins = Logins()
    session, reader, writer, task = await start(upstream, logins=logins)
    assert await reader.readline() == b"* OK fake ready\r\n"
    writer.write(b"a LOGIN {2+}\r\nme pw\r\nb SELECT INBOX\r\n")
    got = await until(reader, b"b ")
    assert got == b"a OK logged in\r\n* 2 EXISTS\r\n* CAPABILITY IMAP4rev1\r\nb OK sel\r\n"
    assert upstream.received == b"a LOGIN {2+}\r\nme pw\r\nb SELECT INBOX\r\n"
    assert session.state.selected == "INBOX"
    assert session.state.exists == 2
    assert logins.seen == [("me", "pw")]
    writer.write(b"z COMPRESS DEFLATE\r\n")
    assert await until(reader, b"z ") == b"z NO COMPRESS is not offered through commsproxy\r\n"
    own = session.send_own_command("NOOP")
    assert own is not None
    writer.write(b"c NOOP\r\n")
    assert await until(reader, b"c ") == b"c OK NOOP done\r\n"  # our own reply never shows
    assert session.state.own_tags == {}
    writer.close()
    await asyncio.wait_for(task, 5)
    assert session.state.state is State.CLOSED


async def test_routed_login_uses_the_upstream_login_hook(upstream: FakeUpstream) -> None:
    class Swap:
        async def upstream_login(self, login: ClientLogin) -> LoginSteps:
            if login.secret != "local-secret":
                raise No("wrong password", code="AUTHENTICATIONFAILED")
            return LoginSteps((f"{login.tag} LOGIN {login.user} pw\r\n".encode(),))

    logins = Logins()
    session, reader, writer, task = await start(upstream, upstream_login=Swap(), logins=logins)
    assert (await reader.readline()).startswith(b"* OK [CAPABILITY IMAP4rev1")
    writer.write(b"a LOGIN me nope\r\n")
    assert await until(reader, b"a ") == b"a NO [AUTHENTICATIONFAILED] wrong password\r\n"
    assert upstream.received == b""
    assert session.state.state is State.NOT_AUTHENTICATED
    writer.write(b"b LOGIN me local-secret\r\nc NOOP\r\n")
    assert await until(reader, b"c ") == b"b OK logged in\r\nc OK NOOP done\r\n"
    assert upstream.received == b"b LOGIN me pw\r\nc NOOP\r\n"
    assert logins.seen == [("me", "local-secret")]
    writer.close()
    await asyncio.wait_for(task, 5)


async def test_upstream_bye_reaches_the_client_and_ends_the_session(
    upstream: FakeUpstream,
) -> None:
    upstream.script = lambda line: b"* BYE going away\r\n"
    session, reader, writer, task = await start(upstream)
    await reader.readline()
    writer.write(b"a NOOP\r\n")
    assert await reader.readline() == b"* BYE going away\r\n"
    await asyncio.wait_for(task, 5)
    assert session.state.bye == b"* BYE going away\r\n"
    writer.close()


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_session_the_proxy_ends_itself_closes_once_and_logs_its_end(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    session, reader, writer, task = await start(upstream, RelayLimits(max_literal=100))
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\n")
    await until(reader, b"a ")
    writer.write(b"b APPEND INBOX {101+}\r\nhello\r\n")  # already on its way: BYE
    assert await until(reader, b"* BYE") == b"* BYE [TOOBIG] literal of 101 bytes exceeds 100\r\n"
    writer.close()
    await asyncio.wait_for(task, 5)
    assert not task.cancelled()  # run() itself was not cancelled by a second close
    assert any(r.getMessage().startswith(f"{session}: closed (user me") for r in caplog.records)
    assert _failures(caplog) == []


async def test_what_the_upstream_says_after_the_last_word_to_the_client_is_dropped(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.hold_greeting = asyncio.Event()  # the greeting comes after the BYE and the EOF
    _, reader, writer, task = await start(upstream, RelayLimits(max_command_line=100))
    writer.write(b"x SEARCH " + b"1," * 100 + b"1\r\n")
    got = await asyncio.wait_for(reader.read(), 5)  # up to the proxy's EOF
    assert got == b"* BYE command line too long (limit 100 bytes)\r\n"
    upstream.hold_greeting.set()  # while the proxy lingers, reading what the client sends
    await asyncio.wait_for(upstream.greeted.wait(), 5)
    await asyncio.sleep(0.1)  # loopback: the proxy reads the greeting
    assert not task.done()  # still lingering: the greeting did not end the session in error
    writer.close()
    await asyncio.wait_for(task, 5)
    assert not task.cancelled()
    assert _failures(caplog) == []


class WaitBeforeNoop:
    """Hooks that hold every NOOP until ``go`` is set and let everything else go at once; on
    request, hold a SELECT's answer and let it out with its tagged reply (as the gate does)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.hold_select = False
        self.selecting: str | None = None

    def before_command(self, session: Session, command: Command) -> Awaitable[object] | None:
        if command.name == "SELECT" and self.hold_select:
            session.pause_responses()
            self.selecting = command.tag
        return self.go.wait() if command.name == "NOOP" else None

    def on_response(self, session: Session, response: Response) -> None:
        if response.tag is not None and response.tag == self.selecting:
            self.selecting = None
            session.release_held()


async def test_a_hook_that_waits_holds_its_command_and_what_follows(
    upstream: FakeUpstream,
) -> None:
    hooks = WaitBeforeNoop()
    _, reader, writer, task = await start(upstream, hooks=hooks)
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\n")
    await until(reader, b"a ")
    writer.write(b"b CHECK\r\nc NOOP\r\nd CHECK\r\n")
    await asyncio.sleep(0.05)
    assert upstream.received == b"a LOGIN me pw\r\n"  # the NOOP waits, and the lines with it
    hooks.go.set()
    got = await until(reader, b"d ")
    assert got == b"b OK CHECK done\r\nc OK NOOP done\r\nd OK CHECK done\r\n"
    assert upstream.received == b"a LOGIN me pw\r\nb CHECK\r\nc NOOP\r\nd CHECK\r\n"
    writer.write(b"e NOOP\r\n")  # the hook is done waiting: at once, as any command
    assert await until(reader, b"e ") == b"e OK NOOP done\r\n"
    writer.close()
    await asyncio.wait_for(task, 5)


async def test_commands_in_pieces_and_many_at_once_pass_byte_for_byte(
    upstream: FakeUpstream,
) -> None:
    session, reader, writer, task = await start(upstream)
    await reader.readline()
    for piece in (b"a LOGIN me", b" pw\r\nb NO", b"OP\r", b"\nc CHECK\r\nd LOGOUT\r\n"):
        writer.write(piece)
        await asyncio.sleep(0.01)  # each piece its own read
    got = await until(reader, b"d ")
    assert got.endswith(b"b OK NOOP done\r\nc OK CHECK done\r\nd OK LOGOUT done\r\n")
    assert upstream.received == b"a LOGIN me pw\r\nb NOOP\r\nc CHECK\r\nd LOGOUT\r\n"
    writer.close()
    await asyncio.wait_for(task, 5)
    assert session.state.commands == 4


async def test_a_held_answer_goes_out_whole_with_its_tagged_reply(upstream: FakeUpstream) -> None:
    hooks = WaitBeforeNoop()
    hooks.hold_select = True
    session, reader, writer, task = await start(upstream, hooks=hooks)
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\nb SELECT INBOX\r\n")
    got = await until(reader, b"b ")
    assert got == b"a OK logged in\r\n* 2 EXISTS\r\n* CAPABILITY IMAP4rev1\r\nb OK sel\r\n"
    assert not session.responses_paused
    assert session.state.selected == "INBOX"
    writer.write(b"c CHECK\r\n")  # forwarded as it comes again
    assert await until(reader, b"c ") == b"c OK CHECK done\r\n"
    writer.close()
    await asyncio.wait_for(task, 5)


async def test_a_client_sending_on_while_a_command_waits_is_read_no_further_than_a_bound(
    upstream: FakeUpstream,
) -> None:
    hooks = WaitBeforeNoop()
    session, reader, writer, task = await start(upstream, hooks=hooks)
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\n")
    await until(reader, b"a ")
    searches = b"".join(b"s%d SEARCH TEXT %s\r\n" % (i, b"x" * 2000) for i in range(400))
    writer.write(b"b NOOP\r\n" + searches)  # 800 kB behind a command that waits
    await asyncio.sleep(0.2)
    assert session._client_paused  # reading paused, not piled up
    assert session._client_framer.buffered <= 3 * 256 * 1024
    hooks.go.set()
    got = await until(reader, b"s399 ")
    assert got.count(b" OK SEARCH done\r\n") == 400
    assert upstream.received.endswith(searches)
    writer.close()
    await asyncio.wait_for(task, 5)


async def test_a_client_that_closes_right_after_its_last_command_ends_the_session(
    upstream: FakeUpstream,
) -> None:
    upstream.hold_greeting = asyncio.Event()  # the pumps start once the upstream greeted
    session, _, writer, task = await start(upstream)
    writer.write(b"a LOGIN me pw\r\nb NOOP\r\n")
    writer.write_eof()  # the end of the stream waits in the reader with the commands
    await asyncio.sleep(0.05)
    upstream.hold_greeting.set()
    await asyncio.wait_for(task, 5)  # the end is seen, however it came: no session left hanging
    assert session.state.state is State.CLOSED
    assert session.state.commands == 2  # both were read, and went upstream
    writer.close()


async def test_an_answer_held_for_its_tagged_reply_is_read_where_the_machine_reads_and_heard_once(
    upstream: FakeUpstream,
) -> None:
    answer = b"* FLAGS (\\Seen)\r\n* 4 EXISTS\r\n* OK [UNSEEN 2] x\r\n* OK [UIDNEXT 9] y\r\n"

    def script(line: bytes) -> bytes:
        tag = line.split(b" ", 1)[0]
        if b"NOOP" in line:
            return b"* 5 EXISTS\r\n" + tag + b" OK done\r\n"
        return answer + tag + b" OK sel\r\n" if b"SELECT" in line else dovecot_like(line)

    class HoldAnswer(WaitBeforeNoop):
        seen: list[str]

        def before_command(self, session: Session, command: Command) -> Awaitable[object] | None:
            if command.name == "SELECT":
                session.hold_answer()
                self.selecting, self.seen = command.tag, []
            return None

        def on_response(self, session: Session, response: Response) -> None:
            if hasattr(self, "seen"):  # from the SELECT on
                self.seen.append(response.name)
            super().on_response(session, response)

    upstream.script = script
    hooks = HoldAnswer()
    session, reader, writer, task = await start(upstream, hooks=hooks)
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\n")
    await until(reader, b"a ")
    writer.write(b"b SELECT INBOX\r\n")
    assert await until(reader, b"b ") == answer + b"b OK sel\r\n"
    assert hooks.seen == ["OK"]  # the hook hears the tagged reply it waits for, no more
    assert (session.state.exists, session.state.uidnext) == (4, 9)  # the machine read those
    # Released with its reply: from then on the hook hears every response the machine reads.
    hooks.seen = []
    writer.write(b"c NOOP\r\n")
    assert await until(reader, b"c ") == b"* 5 EXISTS\r\nc OK done\r\n"
    assert hooks.seen == ["EXISTS", "OK"]
    writer.close()
    await asyncio.wait_for(task, 5)


async def test_what_follows_a_reply_that_pauses_in_the_same_read_is_held_and_read(
    upstream: FakeUpstream,
) -> None:
    """A hook that pauses on a held SELECT's tagged reply (as the gate does when the answer
    may show new mail): the lines after it in the same read are held, and read by the machine
    and the hook, until the hook lets them out."""
    after = b"* 7 EXISTS\r\n* 3 FETCH (FLAGS (\\Seen))\r\n"

    def script(line: bytes) -> bytes:
        tag = line.split(b" ", 1)[0]
        if b"SELECT" in line:
            return b"* 4 EXISTS\r\n* FLAGS (\\Seen)\r\n" + tag + b" OK sel\r\n" + after
        return dovecot_like(line)

    class PauseOnReply(WaitBeforeNoop):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []
            self.heard_all = asyncio.Event()

        def before_command(self, session: Session, command: Command) -> Awaitable[object] | None:
            if command.name == "SELECT":
                session.hold_answer()
                self.selecting = command.tag
            return None

        def on_response(self, session: Session, response: Response) -> None:
            self.seen.append(response.name)
            if response.tag is not None and response.tag == self.selecting:
                self.selecting = None
                session.pause_responses()  # every response is read again from here on
            if response.name == "FETCH":
                self.heard_all.set()

    upstream.script = script
    hooks = PauseOnReply()
    session, reader, writer, task = await start(upstream, hooks=hooks)
    await reader.readline()
    writer.write(b"a LOGIN me pw\r\n")
    await until(reader, b"a ")
    hooks.seen = []
    writer.write(b"b SELECT INBOX\r\n")
    await asyncio.wait_for(hooks.heard_all.wait(), 5)
    assert hooks.seen == ["OK", "EXISTS", "FETCH"]  # the reply, then all that follows it
    assert session.state.exists == 7
    assert session.responses_paused
    await session.resume_responses()
    assert await until(reader, b"* 3 FETCH") == (
        b"* 4 EXISTS\r\n* FLAGS (\\Seen)\r\nb OK sel\r\n" + after
    )
    writer.close()
    await asyncio.wait_for(task, 5)
