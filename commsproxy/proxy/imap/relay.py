"""One client connection relayed to its own upstream connection: the only I/O of the IMAP proxy.

Two pumps run per session and move bytes; the session machine (``commsproxy.imap.session``,
``self.state``) decides what they mean. The client pump frames the client's bytes, asks the
machine whether each line goes upstream, and does what the machine asks of it: write the
proxy's own answers (everything before a routed login, STARTTLS, COMPRESS, refusals), secure the
client link, or connect to the server a login names. The upstream pump frames responses, lets
the machine read each first line (it rewrites capability lists and drops the replies to the
proxy's own commands) and forwards the rest unchanged, or holds it while the gate has paused
the session (``pause_responses``).

Whatever the machine reads, it reads in the pump's own turn and the pump acts on the machine's
events before its next ``await``, so the two pumps never act on each other's events.

While the upstream pump waits for the server with nothing left to write, what the server sends
is relayed in the transport's own callback (upstream_feed.py), in the pump's stead and with the
same code: no stream buffer copies and no task switch per read, which is most of what a reply
cost over a plain copy loop. Anything else (the client link busy, being secured or slow to take
what was written, the end of the stream) goes through the stream and the pump as before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ...imap import session_events as ev
from ...imap.errors import ImapRefusal, No
from ...imap.framer import (
    NEED_DATA,
    Framer,
    FramingError,
    Line,
    LiteralData,
    LiteralTooLarge,
    Unread,
)
from ...imap.grammar import ResponseKind
from ...imap.session import ImapSession, State
from .client_feed import ClientFeed, Handoff
from .client_link import ClientLink
from .held import HeldResponses
from .hooks import (
    DISCONNECTS,
    LoginExchange,
    NoHooks,
    PassCredentials,
    SessionParts,
    UpstreamLink,
    UpstreamLogin,
)
from .upstream_feed import UpstreamFeed
from .upstream_link import ServerLink, UpstreamError

__all__ = ["Session"]

log = logging.getLogger("commsproxy.imap")

_READ_SIZE = 256 * 1024
_session_ids = itertools.count(1)
_UPSTREAM_GONE = b"* BYE [UNAVAILABLE] upstream closed the connection\r\n"
# What the machine asks of the client side that needs the pump (it waits); the rest is noted.
_PUMP_EVENTS = (ev.Answer, ev.Hangup, ev.StartTls, ev.ConnectUpstream)
_TAGGED = ResponseKind.TAGGED
# The events ``_note`` acts on; the others are facts it passes over.
_NOTED = frozenset({ev.ToUpstream, ev.CancelLiteral, ev.LoggedIn})


class Session:
    """A client connection relayed to one upstream connection."""

    def __init__(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
        parts: SessionParts,
    ) -> None:  # fmt: skip
        self.id = next(_session_ids)
        self.limits, self.hooks, self._parts = parts.limits, parts.hooks, parts
        # Hooks that do nothing (a proxy without triage) are not called at all.
        self._hooked = not isinstance(parts.hooks, NoHooks)
        self._client = ClientLink(client_reader, client_writer)
        self.peer = self._client.peer
        self._server = ServerLink(parts.upstream, parts.limits)
        self._upstream_login: UpstreamLogin = parts.upstream_login or PassCredentials()
        self.state = ImapSession(
            answer_prelogin=parts.answers_prelogin,
            offer_starttls=parts.local_tls is not None and not self._client.tls,
            client_tls=self._client.tls,
            facts=False,  # the relay acts on what the machine asks, and reads its facts itself
        )
        self._client_framer = Framer(
            max_line=parts.limits.max_command_line, max_literal=parts.limits.max_literal
        )
        self._held = HeldResponses(parts.limits.max_paused_bytes)
        self._tasks: list[asyncio.Task[None]] = []
        self._upstream_task: asyncio.Task[None] | None = None
        self._upstream_waiting = False  # the upstream pump waits for data, nothing unwritten
        self._pump_over: asyncio.Future[None] | None = None  # done when the first pump ends
        # The client's bytes through ``ClientFeed`` (see client_feed.py): the pump waits on
        # ``_client_wake``; ``_client_left`` is what the transport callback left it to do.
        self._client_feed: ClientFeed | None = None
        self._client_waiting = False  # the pump waits with nothing to do: the callback relays
        self._client_wake: asyncio.Future[None] | None = None
        self._client_left: Handoff | None = None
        self._client_news = False  # bytes (or the end) came while the pump was busy
        self._client_gone: Exception | None = None
        self._client_paused = False  # reading paused: the busy pump has enough to frame
        self._client_line = b""
        # A whole client line waits for a hook (``_frame_client``): for the upstream the
        # client is in the middle of a command, as while its framer is inside a message.
        self._line_waits = False
        self._release_now = False  # release_held: the held responses go with this one
        # Held responses are read as every response is (the machine and hooks), but after
        # ``hold_answer``: back to True whenever forwarding resumes (``_forwarding``).
        self._read_held = True
        self._closing = False
        self._closed: asyncio.Future[tuple[None, None]] | None = None  # closing both links, once

    def __str__(self) -> str:
        return f"imap#{self.id}"

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until either side closes; never raises for a peer's misbehaviour."""
        log.info("%s: client %s connected", self, self.peer)
        if self._parts.answers_prelogin:
            self._client.write_now(self.state.greeting())
            self._start(self._client_pump(), "client")
        elif (reader := await self._connect_now()) is not None and not self._closing:
            self._start(self._client_pump(), "client")
            self._start(self._upstream_pump(reader), "upstream")
        try:
            if self._tasks and not any(task.done() for task in self._tasks):
                self._pump_over = asyncio.get_running_loop().create_future()
                await self._pump_over  # the first pump to end ends the session
        finally:
            await self._close_all()
        s = self.state
        log.info(
            "%s: closed (user %s, %d commands, %d bytes in, %d bytes out)",
            self, s.user or "-", s.commands, self._client.bytes_in, self._client.bytes_out,
        )  # fmt: skip

    def _start(self, pump: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(pump, name=f"{self}-{name}")
        task.add_done_callback(self._pump_ended)
        self._tasks.append(task)
        if name == "upstream":
            self._upstream_task = task

    def _pump_ended(self, task: asyncio.Task[None]) -> None:
        """Every pump's end is looked at, also one cancelled later by ``_close_all``."""
        if self._pump_over is not None and not self._pump_over.done():
            self._pump_over.set_result(None)
        if task.cancelled() or (err := task.exception()) is None:
            return
        if isinstance(err, DISCONNECTS):
            log.debug("%s: connection lost: %r", self, err)
        else:
            log.error("%s: relay error", self, exc_info=err)

    async def _connect_now(self) -> asyncio.StreamReader | None:
        server = self._server
        try:
            reader, hello = await server.connect(server.server, greeting=False)
        except UpstreamError as err:
            log.error("%s: %s", self, err)
            await self._bye_and_close(f"[UNAVAILABLE] commsproxy: {err}")
            return None
        if hello is not None:
            self._client.write_now(hello)  # one upstream for every client: it greets
        up = server.endpoint
        log.info("%s: upstream %s connected (%s)", self, up, up.security.value)
        return reader

    async def _routed_login(self, login: ev.ClientLogin) -> None:
        """Connect to ``login.user``'s server and log in there; the client gets the answer, and
        after a refusal stays in the not-authenticated state, free to try again."""
        machine, reader = self.state, None
        routes = self._parts.routes
        server = routes.server_for(login.user) if routes else self._server.server
        try:
            if server is None:
                log.info("%s: LOGIN for %s matches no [[login]]", self, login.user)
                raise No("commsproxy: no [[login]] for this user", code="AUTHENTICATIONFAILED")
            steps = await self._upstream_login.upstream_login(login)
            async with asyncio.timeout(self.limits.login_timeout):
                reader, greeting = await self._server.connect(server, greeting=True)
                if isinstance(steps, ev.LoginSteps):
                    machine.begin_upstream_login(steps)
                    await self._upstream_pump(reader, until_answered=True)
                else:
                    await self._exchange(steps, reader, greeting or b"")
        except ImapRefusal as refusal:
            machine.login_refused(refusal)
        except (UpstreamError, TimeoutError, OSError, ssl.SSLError) as err:
            why = str(err) or f"upstream {self._server.endpoint}: no answer to LOGIN in time"
            log.error("%s: %s", self, why)
            machine.login_refused(No(f"commsproxy: {why}", code="UNAVAILABLE"))
        if reader is not None and machine.state is State.AUTHENTICATED:
            up = self._server.endpoint
            log.info("%s: upstream %s (%s)", self, up, up.security.value)
            self._start(self._upstream_pump(reader), "upstream")
            return
        machine.login_refused(No("commsproxy: the server ended the login", code="UNAVAILABLE"))
        self._server.drop()  # refused: the next attempt may name another user

    async def _exchange(
        self, exchange: LoginExchange, reader: asyncio.StreamReader, greeting: bytes
    ) -> None:
        """A login the hook runs itself; its final OK reaches the machine as the login's reply."""
        assert self._server.writer is not None
        link = UpstreamLink(reader, self._server.writer, greeting, self._server.endpoint)
        answer = self._upstream_line(await exchange.log_in(link))
        for noted in self.state.drain():
            self._note(noted)
        await self._client.write([answer])

    async def shutdown(self, reason: str = "commsproxy is shutting down") -> None:
        """Close politely: a BYE to the client (when between responses), LOGOUT upstream."""
        if self._closing:
            return
        self._closing = True
        # Both pumps are parked at an await with whole messages written, unless a framer is
        # mid-message; only then would a BYE or LOGOUT land inside someone else's bytes.
        if not self._server.framer.in_message:
            self._client.write_now(f"* BYE {reason}\r\n".encode())
        if not self._client_busy and (own := self.state.own_command("LOGOUT", anytime=True)):
            self._server.write(own[1])
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_all()

    # -- gate hook point ----------------------------------------------------------------------

    def pause_responses(self) -> None:
        """Hold upstream responses (from the next message on) instead of forwarding them."""
        self._held.pause()
        self._server.framer.passing = False  # the gate reads every held response
        self._read_held = True

    def hold_answer(self) -> None:
        """Hold upstream responses as ``pause_responses`` does, for a hook that waits for a
        tagged reply only: ``on_response`` hears tagged replies alone, and in a short read the
        lines the session machine does not read (a SELECT's FLAGS, PERMANENTFLAGS, RECENT,
        UNSEEN) are held unparsed. ``pause_responses`` makes every held response read again."""
        self.pause_responses()
        self._read_held = False

    async def resume_responses(
        self,
        rewrite: Callable[[list[list[bytes]]], list[bytes]] | None = None,
        *,
        keep_paused: bool = False,
    ) -> None:
        """Forward the held responses, in order (through ``rewrite`` if given), and go back to
        forwarding as they come (or go on holding what comes next, with ``keep_paused``)."""
        chunks = self._held.release(rewrite, keep_paused)
        if not keep_paused:
            self._forwarding()
        if chunks:
            await self._client.write(chunks)

    def _forwarding(self) -> None:
        """Responses are forwarded as they come again (no longer paused, or past the bound)."""
        self._server.framer.passing = True
        self._read_held = True

    def release_held(self) -> None:
        """From ``on_response``: forward the held responses, the one being read included, in
        the same write, and go back to forwarding as they come (no task, no second write)."""
        self._release_now = True

    @property
    def responses_paused(self) -> bool:
        return self._held.messages is not None  # ``HeldResponses.paused``, a call less

    def send_own_command(self, command: str) -> str | None:
        """Send a command of the proxy's own upstream (e.g. NOOP) between client commands.

        Returns its tag, or None where another command would corrupt the stream (the client
        mid-command, in IDLE or AUTHENTICATE). Its reply reaches the hooks, never the client.
        """
        return self._send_own(lambda: self.state.own_command(command))

    def sync_in_idle(self) -> str | None:
        """In the client's IDLE: our own NOOP inside it (see ``ImapSession.restart_idle``)."""
        return self._send_own(self.state.restart_idle)

    def _send_own(self, make: Callable[[], tuple[str, bytes] | None]) -> str | None:
        if self._server.writer is None or self._closing or self._client_busy:
            return None
        if (own := make()) is not None:
            self._server.write(own[1])
        return own[0] if own else None

    # -- client to upstream -------------------------------------------------------------------

    @property
    def _client_busy(self) -> bool:
        """The client is in the middle of a command: nothing of the proxy's own may go now."""
        return self._line_waits or self._client_framer.in_message

    async def _client_pump(self) -> None:
        framer, machine = self._client_framer, self.state
        eof = False
        while not self._closing:
            left, self._client_left = self._client_left, None
            self._client_news = False
            if left is not None and left.events is not None:
                if not await self._act(left.events):  # ``left.out`` went upstream already
                    return
                continue
            out: list[bytes] = left.out if left is not None else []
            try:
                if left is not None and left.error is not None:
                    raise left.error
                if left is not None and left.waiting is not None:
                    await left.waiting
                    out.append(left.line)
                    self._line_waits = False
                while (waiting := self._frame_client(out)) is not None:
                    await waiting
                    out.append(self._client_line)
                    self._line_waits = False
            except LiteralTooLarge as err:
                self._server.write(*out)
                if not self._literal_too_large(err):
                    return await self._bye_and_close(self._too_big(err))
                out = []
            except FramingError as err:
                self._server.write(*out)
                if (why := self._client.complaint(err, str(self))) is not None:
                    await self._bye_and_close(why)
                return
            if out and (writer := self._server.writer) is not None:
                writer.writelines(out)
                await writer.drain()
            if machine.events:
                if not await self._act(machine.drain()):
                    return
                continue
            if eof:
                log.info("%s: client closed the connection", self)
                return
            del out
            if framer.in_message:  # the client goes on without an answer: ACK what came
                self._client.quick_ack()
            await self._client_more()
            eof = framer.ended

    def _frame_client(self, out: list[bytes]) -> Awaitable[object] | None:
        """What the client framer holds, framed into ``out`` (the bytes for upstream) until it
        needs more bytes or the machine has events; or until a hook must be waited for: then
        its awaitable is returned, and the line that waits for it is ``_client_line``."""
        framer, machine, hooks = self._client_framer, self.state, self.hooks
        if machine.relaying and (data := framer.whole_line()) is not None:
            # The common case (a command in one read, no literal), in one step.
            if machine.client_command(data):
                if (command := machine.sent) is not None:
                    log.debug("%s: C: %s %s", self, command.tag, command.name)
                    waiting = hooks.before_command(self, command) if self._hooked else None
                    if waiting is not None:
                        self._client_line, self._line_waits = data, True
                        return waiting
                out.append(data)
            return None
        while (event := framer.next_event()) is not NEED_DATA:
            kind = type(event)
            if kind is Line:
                if machine.client_line(event):  # type: ignore[arg-type]
                    if (command := machine.sent) is not None:
                        log.debug("%s: C: %s %s", self, command.tag, command.name)
                        waiting = hooks.before_command(self, command) if self._hooked else None
                        if waiting is not None:
                            self._client_line = event.data  # type: ignore[union-attr]
                            return waiting
                    out.append(event.data)  # type: ignore[union-attr]
            elif kind is LiteralData:
                if machine.relaying:
                    out.append(event.data)  # type: ignore[union-attr]
            else:
                machine.client_message_end(event)  # type: ignore[arg-type]
            if machine.events:
                break
        return None

    def _literal_too_large(self, err: LiteralTooLarge) -> bool:
        log.warning(
            "%s: client announced a literal of %d bytes (limit %d)",
            self, err.spec.size, err.limit,
        )  # fmt: skip
        return self.state.client_literal_too_large(err)

    @staticmethod
    def _too_big(err: LiteralTooLarge) -> str:
        return f"[TOOBIG] literal of {err.spec.size} bytes exceeds {err.limit}"

    async def _client_more(self) -> None:
        """Until the client framer has more bytes (or the end of the stream)."""
        feed = self._client_feed
        if feed is None:  # through the stream: after STARTTLS, or before the first read
            data = await self._client.read()
            self._client_framer.receive_data(data)
            if 0 < len(data) < _READ_SIZE and not self._closing:
                self._feed_client()  # the stream holds nothing more: the feed takes over
            return
        if (gone := self._client_gone) is not None:
            raise gone
        if self._client_news:
            return  # came while the pump was busy
        if self._client_paused:
            self._client_paused = False
            self._client.reading(True)
        wake = self._client_wake = asyncio.get_running_loop().create_future()
        self._client_waiting = True
        try:
            await wake
        finally:
            self._client_waiting, self._client_wake = False, None
        if (gone := self._client_gone) is not None:
            raise gone
        if (writer := self._server.writer) is not None:
            await writer.drain()  # the feed stopped taking bytes when upstream was slow

    def _feed_client(self) -> None:
        """Let the client's bytes go to ``client_data`` (the stream's reader holds none)."""
        transport, reader = self._client.writer.transport, self._client.reader
        if reader.at_eof() or reader.exception() is not None:
            return  # the end came with the last bytes: the stream's next read says so
        stream = transport.get_protocol()
        if not isinstance(stream, ClientFeed) and not transport.is_closing():
            self._client_feed = ClientFeed(stream, self)
            transport.set_protocol(self._client_feed)

    def _unfeed_client(self) -> None:
        """Back to the stream's reader (for STARTTLS and lingering reads)."""
        feed, self._client_feed = self._client_feed, None
        if feed is not None:
            transport = self._client.writer.transport
            if transport.get_protocol() is feed:
                transport.set_protocol(feed.stream)
            if self._client_paused:
                self._client_paused = False
                self._client.reading(True)

    def client_data(self, data: bytes) -> None:
        """The client's bytes, in the transport's callback (``ClientFeed``)."""
        self._client.bytes_in += len(data)
        framer = self._client_framer
        if self._closing:
            return
        framer.receive_data(data)
        if not self._client_waiting:  # the pump is busy: it frames them when it is done
            self._client_news = True
            if framer.buffered > 2 * _READ_SIZE and not self._client_paused:
                self._client_paused = True
                self._client.reading(False)
            return
        try:
            left = self._take_client()
        except Exception as err:  # the session ends as when its pump fails
            left = None
            self._client_gone = err
        if left is not None or self._client_gone is not None:
            self._client_left = left
            self._wake_client()

    def client_ended(self, exc: Exception | None) -> None:
        if exc is not None and self._client_gone is None:
            self._client_gone = exc
        if not self._client_framer.ended:
            self._client_framer.receive_data(b"")
        self._client_news = True
        self._wake_client()

    def _wake_client(self) -> None:
        self._client_waiting = False  # from here on the pump takes what comes, in order
        if (wake := self._client_wake) is not None and not wake.done():
            wake.set_result(None)

    def _take_client(self) -> Handoff | None:
        """Relay what the client framer holds now, as the waiting pump would; what needs
        waiting for goes to the pump (the returned Handoff)."""
        machine, framer = self.state, self._client_framer
        writer = self._server.writer
        while True:
            out: list[bytes] = []
            try:
                waiting = self._frame_client(out)
            except FramingError as err:
                return Handoff(out, error=err)
            if waiting is not None:
                return Handoff(out, waiting, self._client_line)
            if out and writer is not None:
                writer.write(b"".join(out))  # as ``writelines``, a call less (every command)
            if not machine.events:
                break
            events = machine.drain()
            if any(isinstance(event, _PUMP_EVENTS) for event in events):
                return Handoff(events=events)
            for event in events:
                self._note(event)
        if framer.in_message:
            self._client.quick_ack()
        if framer.ended or (
            writer is not None
            and writer.transport.get_write_buffer_size() > self._server.high_water
        ):
            return Handoff()  # the pump ends the session, or waits for upstream to drain
        return None

    async def _act(self, events: list[ev.Event]) -> bool:
        """Do what the machine asked of the client side; False when the session is over."""
        for event in events:
            if isinstance(event, ev.Answer):
                await self._client.write([event.data])
            elif isinstance(event, ev.Hangup):
                self._unfeed_client()
                await self._client.linger()
                return False
            elif isinstance(event, ev.StartTls):
                if not await self._starttls(event):
                    return False
            elif isinstance(event, ev.ConnectUpstream):
                await self._routed_login(event.login)
                if not await self._act(self.state.drain()):
                    return False
            else:
                self._note(event)
        return True

    def _note(self, event: ev.Event) -> None:
        """Events that need no waiting: taken in the turn that produced them (``_NOTED``)."""
        if isinstance(event, ev.ToUpstream):
            self._server.write(event.data)
        elif isinstance(event, ev.CancelLiteral):
            self._client_framer.cancel_literal()
        elif isinstance(event, ev.LoggedIn):
            log.info("%s: logged in as %s", self, event.user or "(unknown)")
            if (logins := self._parts.logins) and event.user and event.secret is not None:
                logins.on_logged_in(event.user, event.secret)

    # -- upstream to client -------------------------------------------------------------------

    async def _upstream_pump(
        self, reader: asyncio.StreamReader, until_answered: bool = False
    ) -> None:
        framer, machine = self._server.framer, self.state
        if not until_answered:
            self._feed_upstream()
        eof = False
        while True:
            out: list[bytes] = []
            try:
                self._frame_upstream(out)
            except FramingError as err:
                await self._client.write(out)
                return self._server.complaint(err, str(self))
            self._note_all()
            if out:
                await self._client.write(out)
            if until_answered and machine.state is not State.LOGGING_IN:
                return
            if eof:
                if until_answered:
                    raise UpstreamError(f"upstream {self._server.endpoint} closed the connection")
                if not self._closing and machine.bye is None:
                    log.warning(
                        "%s: upstream %s closed the connection", self, self._server.endpoint
                    )
                    self._client.write_now(_UPSTREAM_GONE)
                return
            # Nothing of what was relayed stays referenced while waiting: an idle session
            # holds no copy of its last read (up to 256 KiB after a FETCH).
            del out
            self._upstream_waiting = not until_answered  # see upstream_data
            data = await reader.read(_READ_SIZE)
            self._upstream_waiting = False
            framer.receive_data(data)
            del data
            eof = framer.ended

    def _frame_upstream(self, out: list[bytes]) -> None:
        """What the upstream framer holds, framed into ``out`` (or held while paused)."""
        framer, held = self._server.framer, self._held
        if (lines := framer.short_lines()) is not None:
            self._short_lines(lines, out)
            return
        # The hottest loop of the proxy (every byte of every FETCH): kept lean. Unread (a run
        # of responses nobody reads) comes only while responses are not paused.
        while (event := framer.next_event()) is not NEED_DATA:
            kind = type(event)
            if kind is Unread:
                out.append(event.data)  # type: ignore[union-attr]
                continue
            if kind is Line and event.first:  # type: ignore[union-attr]
                first, chunk = True, self._upstream_line(event.data)  # type: ignore[union-attr]
            else:
                first, chunk = False, event.data  # type: ignore[union-attr]
            if not held.paused:
                out.append(chunk)
            elif not held.add(chunk, first, out):
                self._forwarding()
                log.warning("%s: paused responses over %d bytes; resuming", self, held.limit)
            if self._release_now:  # see release_held
                self._release_now = False
                out.extend(held.release(None, keep_paused=False))
                self._forwarding()

    def _short_lines(self, lines: list[bytes], out: list[bytes]) -> None:
        """A few whole one-line responses (``Framer.short_lines``), as ``_frame_upstream``
        handles them: unread ones pass, the machine reads the rest; once responses are paused
        (by a hook, on one of them) the machine reads every one (but after ``hold_answer``)
        and they are held. Held here in a list first: an answer held for its tagged reply
        that comes in the same read goes out with it and is never held at all."""
        held, unread = self._held, self._server.framer.unread_start
        assert unread is not None
        machine, hooks, hooked = self.state, self.hooks, self._hooked
        holding: list[bytes] = []  # paused here, in order after what ``held`` holds already
        # Looked up again only after a hook, the one thing that pauses or releases.
        paused = held.messages is not None
        read_all, take = paused and self._read_held, holding.append if paused else out.append
        for line in lines:
            if not read_all and unread.match(line) is not None:
                take(line)
                continue
            chunk, response = machine.server_line(line)  # as _upstream_line, inline
            if response is None or not hooked or not (self._read_held or response.kind is _TAGGED):
                take(chunk)
                continue
            hooks.on_response(self, response)  # may pause (or release) the responses
            paused = held.messages is not None
            (holding.append if paused else out.append)(chunk)
            if self._release_now:  # see release_held: this chunk goes with the rest
                self._release_now = False
                out.extend(held.release(None, keep_paused=False))
                out.extend(holding)
                holding.clear()
                self._forwarding()
                paused = False
            read_all, take = paused and self._read_held, holding.append if paused else out.append
        for chunk in holding:
            if held.messages is None:  # the bound was passed: what came after goes out too
                out.append(chunk)
            elif not held.add(chunk, True, out):
                self._forwarding()
                log.warning("%s: paused responses over %d bytes; resuming", self, held.limit)

    def _note_all(self) -> None:
        """The events of what the server said: those ``_note`` acts on (the rest are facts
        for other readers: a SELECT's answer alone brings three)."""
        machine = self.state
        for noted in machine.drain() if machine.events else ():
            if type(noted) in _NOTED:
                self._note(noted)

    def _feed_upstream(self) -> None:
        """Let the upstream transport hand data to ``upstream_data`` (once per connection)."""
        writer = self._server.writer
        if writer is None:
            return
        transport = writer.transport
        stream = transport.get_protocol()
        if not isinstance(stream, UpstreamFeed):
            transport.set_protocol(UpstreamFeed(stream, self))

    def stream_first(self) -> None:
        """What the server sends goes through the stream until the pump waits again."""
        self._upstream_waiting = False

    def upstream_failed(self, err: Exception) -> None:
        """What relaying in the transport's callback raised: logged as a pump's failure, and
        the session ends (its upstream pump is cancelled)."""
        self._upstream_waiting = False
        if isinstance(err, DISCONNECTS):
            log.debug("%s: connection lost: %r", self, err)
        else:
            log.error("%s: relay error", self, exc_info=err)
        if self._upstream_task is not None:
            self._upstream_task.cancel()

    def upstream_data(self, data: bytes) -> bool:
        """Relay ``data`` from the server now, as the waiting pump would; False to leave it to
        the stream (and the pump) instead."""
        if not self._upstream_waiting or self._closing or not self._client.ready_now:
            return False
        self._server.framer.receive_data(data)
        out: list[bytes] = []
        try:
            self._frame_upstream(out)
        except FramingError as err:  # as the pump: what was framed goes out, the session ends
            self._upstream_waiting = False
            self._client.write_nowait(out)
            self._server.complaint(err, str(self))
            if self._upstream_task is not None:
                self._upstream_task.cancel()
            return True
        self._note_all()
        if out and not self._client.write_nowait(out):
            self._upstream_waiting = False  # the client is slow: the pump's next write waits
        return True

    def _upstream_line(self, data: bytes) -> bytes:
        """A response's first line through the machine, and to the hooks: every one it reads,
        but only tagged replies while an answer is held for its tagged reply (``hold_answer``)."""
        out, response = self.state.server_line(data)
        if response is not None and self._hooked and (self._read_held or response.kind is _TAGGED):
            self.hooks.on_response(self, response)
        return out

    # -- writing and closing ------------------------------------------------------------------

    async def _bye_and_close(self, reason: str) -> None:
        if not self._server.framer.in_message:
            self._client.write_now(f"* BYE {reason}\r\n".encode())
        self._unfeed_client()
        await self._client.linger()
        await self._close_all()

    async def _close_all(self) -> None:
        """Close both links; runs once, later callers (a pump, then ``run``) wait for it.

        A second run would cancel the pump that is still inside the first one, and with it the
        close both wait on, so ``run`` itself would end cancelled and never log the end.
        """
        if self._closed is None:
            self._closing = True
            self.state.connection_lost()
            left, self._client_left = self._client_left, None
            if left is not None and asyncio.iscoroutine(left.waiting):
                left.waiting.close()  # a hook's wait the pump never took up
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            self._closed = asyncio.gather(self._client.close(), self._server.close())
        await asyncio.shield(self._closed)

    async def _starttls(self, event: ev.StartTls) -> bool:
        """Secure the client link; False when the session is over."""
        assert self._parts.local_tls is not None
        if self._client_framer.buffered:
            # Bytes pipelined after STARTTLS would be taken as if they came over TLS (a known
            # injection attack), so a client that sends them is disconnected.
            log.warning("%s: client pipelined data after STARTTLS; closing", self)
            await self._bye_and_close("data after STARTTLS")
            return False
        # The handshake and what follows it go through the stream; the feed comes back after
        # the first read over TLS (``_client_more``).
        self._unfeed_client()
        if await self._client.start_tls(self._parts.local_tls, event.reply, str(self)):
            self.state.tls_established()
            return True
        await self._close_all()
        return False
