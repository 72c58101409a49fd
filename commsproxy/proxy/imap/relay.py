"""One client connection relayed to its own upstream connection: the only I/O of the IMAP proxy.

Two pumps run per session. The client pump frames the client's bytes into commands (codec.py),
reads the tag and name of each (parse.py), and forwards the bytes unchanged; it answers STARTTLS
and COMPRESS itself because those concern this hop. The upstream pump frames responses, rewrites
capability lists (capability.py), tracks command completions, and forwards the rest unchanged.

Besides forwarding, a session keeps what later layers need: the logged-in user, the selected
mailbox, the commands in flight, and a pause point for upstream responses (``pause_responses``)
that the triage gate uses to keep a client from seeing mail that is about to be held.

Two pieces of IMAP state cross directions, and both are resolved here rather than in the codec:
while an AUTHENTICATE or IDLE is in flight, client lines are continuations, not commands; and when
the server answers a command instead of sending ``+`` for its synchronizing literal, the client
will not send the literal, so its framer must stop waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...endpoints import Endpoint
from ...imap.capability import rewrite_capabilities
from ...imap.framer import (
    NEED_DATA,
    Framer,
    FramingError,
    IncompleteMessage,
    Line,
    LineTooLong,
    LiteralData,
    LiteralTooLarge,
    MessageEnd,
)
from ...imap.grammar import (
    Command,
    ParseError,
    Response,
    ResponseKind,
    parse_command,
    parse_response,
    sasl_plain_credentials,
)
from ..routing import LoginRoutes
from .prelogin import Local, PreLogin, Reply, Route
from .sockopts import no_delay, quick_ack
from .upstream_link import UpstreamError, open_upstream

__all__ = ["DISCONNECTS", "RelayHooks", "RelayLimits", "Session"]

log = logging.getLogger("commsproxy.imap")

_READ_SIZE = 256 * 1024
_session_ids = itertools.count(1)
_UPSTREAM_GONE = b"* BYE [UNAVAILABLE] upstream closed the connection\r\n"
# How a peer hanging up shows while we read or write: an ordinary end, never an error.
DISCONNECTS = (ConnectionError, asyncio.IncompleteReadError)


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds that keep one misbehaving peer from taking the proxy's memory."""

    max_command_line: int = 1 << 20
    max_literal: int = 64 << 20
    max_response_line: int = 16 << 20
    max_paused_bytes: int = 32 << 20
    connect_timeout: float = 20.0
    login_timeout: float = 60.0  # a routed login: connect, log in, answer (servers delay NO)


class RelayHooks(Protocol):
    """What a later layer (the triage gate) can plug into every session."""

    async def before_command(self, session: Session, command: Command) -> None:
        """Called before a client command is forwarded; may wait, e.g. for triage to catch up."""

    def on_response(self, session: Session, response: Response) -> None:
        """Called on the first line of each upstream response, before it is forwarded."""

    def on_login(self, session: Session, user: str, password: str) -> None:
        """Called when upstream accepted a LOGIN or AUTHENTICATE PLAIN; memory only."""


class NoHooks:
    async def before_command(self, session: Session, command: Command) -> None:
        return None

    def on_response(self, session: Session, response: Response) -> None:
        return None

    def on_login(self, session: Session, user: str, password: str) -> None:
        return None


@dataclass
class SessionState:
    """Per-session facts kept for later layers; never holds a password."""

    user: str | None = None
    selected: str | None = None
    read_only: bool = False
    in_flight: dict[str, Command] = field(default_factory=dict)
    commands: int = 0
    bytes_from_client: int = 0
    bytes_to_client: int = 0


class _SessionOver(Exception):
    """Raised inside a pump when the session has been closed and the pump should stop."""


class Session:
    """A client connection relayed to one upstream connection."""

    def __init__(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        *,
        upstream: Endpoint,
        upstream_tls: ssl.SSLContext,
        local_tls: ssl.SSLContext | None,
        limits: RelayLimits,
        hooks: RelayHooks | None = None,
        routes: LoginRoutes | None = None,
    ) -> None:
        self.id = next(_session_ids)
        self.state = SessionState()
        self.limits = limits
        self.hooks: RelayHooks = hooks or NoHooks()
        self._client_reader = client_reader
        self._client_writer = client_writer
        self._client_socket = no_delay(client_writer)
        self._upstream = upstream
        self._upstream_tls = upstream_tls
        self._routes = routes  # given: connect only once LOGIN says to which server
        self._local_tls = local_tls
        self.client_tls = client_writer.get_extra_info("sslcontext") is not None
        peer = client_writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._upstream_writer: asyncio.StreamWriter | None = None
        self._client_framer = Framer(
            max_line=limits.max_command_line, max_literal=limits.max_literal
        )
        # Responses are read by their first line only, so no heads are collected for them.
        self._upstream_framer = Framer(max_line=limits.max_response_line, max_head=0)
        # Tag of the client message being received, and whether its lines are continuations.
        self._current_tag: str | None = None
        self._current_has_literal = False  # only then is the command parsed again at its end
        self._continuation_for: str | None = None  # AUTHENTICATE or IDLE in flight
        self._idle_state = ""  # "" / "asked" (IDLE sent) / "idling" (+ seen) / "done" (DONE sent)
        # Upstream replies to the proxy's own IDLE restart, removed before the client sees them.
        self._swallow_tagged: set[str] = set()
        self._swallow_plus = 0
        self._pending_user: dict[str, str] = {}
        # Passwords of logins in flight, handed to hooks.on_login on success, then forgotten.
        self._pending_secret: dict[str, str] = {}
        self._own_tags = (f"cp{n}" for n in itertools.count(1))
        self._client_writable = asyncio.Event()
        self._client_writable.set()
        self._paused: list[list[bytes]] | None = None  # whole messages, in order
        self._paused_size = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._upstream_said_bye = False

    def __str__(self) -> str:
        return f"imap#{self.id}"

    # -- life cycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until either side closes; never raises for a peer's misbehaviour."""
        log.info("%s: client %s connected", self, self.peer)
        if self._routes is not None:
            reader = await self._login_phase()
        else:
            reader = await self._connect_now()
        if reader is None or self._closing:  # refused, gone, or shut down meanwhile
            await self._close_all()
            return
        self._tasks = [
            asyncio.create_task(self._client_pump(), name=f"{self}-client"),
            asyncio.create_task(self._upstream_pump(reader), name=f"{self}-upstream"),
        ]
        for task in self._tasks:
            task.add_done_callback(self._pump_ended)
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._close_all()
        log.info(
            "%s: closed (user %s, %d commands, %d bytes in, %d bytes out)",
            self,
            self.state.user or "-",
            self.state.commands,
            self.state.bytes_from_client,
            self.state.bytes_to_client,
        )

    def _pump_ended(self, task: asyncio.Task[None]) -> None:
        """Every pump's end is looked at, also one cancelled later by ``_close_all``."""
        if task.cancelled() or (err := task.exception()) is None:
            return
        if isinstance(err, DISCONNECTS):
            log.debug("%s: connection lost: %r", self, err)
        else:
            log.error("%s: relay error", self, exc_info=err)

    async def _connect_now(self) -> asyncio.StreamReader | None:
        """One upstream for every client: connect at once and let it greet the client."""
        try:
            reader, writer, greeting = await open_upstream(
                self._upstream, self._upstream_tls, self.limits.connect_timeout
            )
        except UpstreamError as err:
            log.error("%s: %s", self, err)
            await self._bye_and_close(f"[UNAVAILABLE] commsproxy: {err}")
            return None
        self._upstream_writer = writer
        no_delay(writer)
        log.info(
            "%s: upstream %s connected (%s)", self, self._upstream, self._upstream.security.value
        )
        if greeting is not None:
            self._client_writer.write(greeting)
        return reader

    # -- before LOGIN, when the user name picks the server ------------------------------------

    async def _login_phase(self) -> asyncio.StreamReader | None:
        """Answer the client (prelogin.py) until a login succeeds on the user's own server."""
        phase = PreLogin(
            offer_starttls=self._local_tls is not None and not self.client_tls,
            local=frozenset(_LOCAL_COMMANDS),
        )
        self._write_client_now(phase.greeting())
        framer, eof = self._client_framer, False
        while not self._closing:
            try:
                event = framer.next_event()
            except LiteralTooLarge as err:
                if not await self._refuse_literal(err):
                    return None
                continue
            except FramingError as err:
                await self._client_broke(err)
                return None
            if event is NEED_DATA:
                if eof:
                    return None
                data = await self._client_reader.read(_READ_SIZE)
                quick_ack(self._client_socket)
                self.state.bytes_from_client += len(data)
                framer.receive_data(data)
                eof = not data
                continue
            action: Reply | Local | Route | None = None
            if isinstance(event, Line):
                action = phase.line(event)
            elif isinstance(event, MessageEnd):
                self.state.commands += 1
                action = phase.message(event.head, event.truncated)
            if isinstance(action, Reply):
                await self._write_client([action.data])
                if action.cancel_literal:
                    framer.cancel_literal()
                if action.close:  # the reply said BYE
                    await self._discard_client_input()
                    return None
            elif isinstance(action, Local):
                await _LOCAL_COMMANDS[action.command.name](self, action.command)
                phase.offer_starttls = self._local_tls is not None and not self.client_tls
            elif isinstance(action, Route):
                reader = await self._routed_login(action)
                if reader is not None:
                    return reader
        return None

    async def _routed_login(self, route: Route) -> asyncio.StreamReader | None:
        """Connect to ``route.user``'s server and log in there; the client gets its answer.

        Returns the upstream reader once logged in; on a refusal or an unreachable server the
        client is told and stays in the login phase, free to try again.
        """
        assert self._routes is not None
        server = self._routes.server_for(route.user)
        if server is None:
            log.info("%s: LOGIN for %s matches no [[login]]", self, route.user)
            text = "NO [AUTHENTICATIONFAILED] commsproxy: no [[login]] for this user"
            await self._write_client([f"{route.tag} {text}\r\n".encode()])
            return None
        self._upstream = server.endpoint  # for the logs from here on
        self.state.in_flight[route.tag] = Command(route.tag, "LOGIN", ())
        self._pending_user[route.tag], self._pending_secret[route.tag] = route.user, route.password
        reader = None
        try:
            async with asyncio.timeout(self.limits.login_timeout):
                reader, writer, _ = await open_upstream(
                    server.endpoint, server.tls, self.limits.connect_timeout, read_greeting=True
                )
                self._upstream_writer = writer
                no_delay(writer)
                await self._send_login(reader, writer, route.upstream)
                await self._await_answer(reader, route.tag)
        except (UpstreamError, TimeoutError, OSError, ssl.SSLError) as err:
            why = str(err) or f"upstream {server.endpoint}: no answer to LOGIN in time"
            log.error("%s: %s", self, why)
            self._forget(route.tag)
            answer = f"{route.tag} NO [UNAVAILABLE] commsproxy: {why}\r\n"
            await self._write_client([answer.encode()])
        if reader is not None and self.state.user is not None:
            log.info("%s: upstream %s (%s)", self, server.endpoint, server.endpoint.security.value)
            return reader
        # Refused: the next attempt may name another user, so this connection goes.
        if self._upstream_writer is not None:
            self._upstream_writer.close()
            self._upstream_writer = None
        self._upstream_framer = Framer(max_line=self.limits.max_response_line, max_head=0)
        return None

    async def _send_login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces: tuple[bytes, ...]
    ) -> None:
        """Send the login, waiting for ``+`` between pieces (a synchronizing literal follows)."""
        for piece in pieces[:-1]:
            writer.write(piece)
            line = await reader.readline()
            if not line.startswith(b"+"):
                self._upstream_framer.receive_data(line or b"")  # the answer, read as such
                return
        writer.write(pieces[-1])

    async def _await_answer(self, reader: asyncio.StreamReader, tag: str) -> None:
        """Forward upstream responses to the client until ``tag`` completes."""
        framer = self._upstream_framer
        while tag in self.state.in_flight:
            out: list[bytes] = []
            while tag in self.state.in_flight and (event := framer.next_event()) is not NEED_DATA:
                if isinstance(event, Line):
                    out.append(self._upstream_line(event) if event.first else event.data)
                elif isinstance(event, LiteralData):
                    out.append(event.data)
            await self._write_client(out)
            if tag in self.state.in_flight:
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise UpstreamError(f"upstream {self._upstream} closed the connection")
                framer.receive_data(data)

    async def shutdown(self, reason: str = "commsproxy is shutting down") -> None:
        """Close politely: a BYE to the client (when between responses), LOGOUT upstream."""
        if self._closing:
            return
        self._closing = True
        # Both pumps are parked at an await with whole messages written, unless a framer is
        # mid-message; only then would a BYE or LOGOUT land inside someone else's bytes.
        if not self._upstream_framer.in_message:
            self._write_client_now(f"* BYE {reason}\r\n".encode())
        if self._upstream_writer is not None and not self._client_framer.in_message:
            self._upstream_writer.write(b"cp-bye LOGOUT\r\n")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_all()

    # -- gate hook point ----------------------------------------------------------------------

    def pause_responses(self) -> None:
        """Hold upstream responses (from the next message on) instead of forwarding them."""
        if self._paused is None:
            self._paused = []
            self._paused_size = 0

    async def resume_responses(
        self,
        rewrite: Callable[[list[list[bytes]]], list[bytes]] | None = None,
        *,
        keep_paused: bool = False,
    ) -> None:
        """Forward the held responses, in order (through ``rewrite`` if given), and go back to
        forwarding as they come (or go on holding what comes next, with ``keep_paused``)."""
        held, self._paused = self._paused, ([] if keep_paused else None)
        self._paused_size = 0
        if not held:
            return
        chunks = rewrite(held) if rewrite is not None else [c for m in held for c in m]
        if chunks:
            await self._write_client(chunks)

    def sync_in_idle(self) -> str | None:
        """In the client's IDLE: end it, send our own NOOP, and IDLE again under its tag.

        Upstream then reports every pending change before the NOOP completes, as it would
        outside IDLE. The end of the first IDLE and the second ``+`` are removed here, so the
        client sees one unbroken IDLE. Returns the NOOP's tag, or None when the client is not
        idling (or already said DONE), where this would race the client.
        """
        writer = self._upstream_writer
        tag = self._continuation_for
        if (
            writer is None
            or self._closing
            or tag is None
            or self._idle_state != "idling"
            or self._client_framer.in_message
        ):
            return None
        own = next(self._own_tags)
        self._swallow_tagged.add(tag)
        self._swallow_plus += 1
        self._idle_state = "asked"
        writer.write(f"DONE\r\n{own} NOOP\r\n{tag} IDLE\r\n".encode())
        return own

    def send_own_command(self, command: str) -> str | None:
        """Send a command of the proxy's own upstream (e.g. NOOP), between client commands.

        Returns its tag, or None when the client is mid-command or in IDLE/AUTHENTICATE, where
        another command would corrupt the stream. Its responses reach the hooks like any other;
        the caller removes its tagged reply from what the client sees.
        """
        writer = self._upstream_writer
        if (
            writer is None
            or self._closing
            or self._client_framer.in_message
            or self._continuation_for is not None
        ):
            return None
        tag = next(self._own_tags)
        writer.write(f"{tag} {command}\r\n".encode())
        return tag

    @property
    def responses_paused(self) -> bool:
        return self._paused is not None

    # -- client to upstream -------------------------------------------------------------------

    async def _client_pump(self) -> None:
        with contextlib.suppress(_SessionOver):
            await self._client_pump_loop()

    async def _client_pump_loop(self) -> None:
        framer = self._client_framer
        assert self._upstream_writer is not None
        upstream = self._upstream_writer
        eof = False
        while True:
            # Events first: the login phase may have left pipelined commands in the framer.
            out: list[bytes] = []
            try:
                while (event := framer.next_event()) is not NEED_DATA:
                    if isinstance(event, Line):
                        if event.first and not await self._client_message(event):
                            continue
                        out.append(event.data)
                    elif isinstance(event, LiteralData):
                        out.append(event.data)
                    elif isinstance(event, MessageEnd):
                        self._client_message_end(event)
            except LiteralTooLarge as err:
                upstream.writelines(out)
                if not await self._refuse_literal(err):
                    return
                continue
            except FramingError as err:
                upstream.writelines(out)
                await self._client_broke(err)
                return
            if out:
                upstream.writelines(out)
                await upstream.drain()
            if eof:
                log.info("%s: client closed the connection", self)
                return
            data = await self._client_reader.read(_READ_SIZE)
            quick_ack(self._client_socket)
            self.state.bytes_from_client += len(data)
            framer.receive_data(data)
            eof = not data

    async def _client_message(self, line: Line) -> bool:
        """The first line of a client message: True to forward it, False if handled here."""
        if self._continuation_for is not None:
            # A SASL response or IDLE's DONE: never parsed as a command, never logged.
            command = self.state.in_flight.get(self._continuation_for)
            if command is not None and command.name == "AUTHENTICATE":
                self._note_sasl_user(self._continuation_for, line.data)
            elif command is not None and command.name == "IDLE":
                self._idle_state = "done"
            self._current_tag = None
            return True
        try:
            command = parse_command(line.data)
        except ParseError:
            self._current_tag = None
            log.info("%s: client sent a line that is not a command; passing it on", self)
            return True
        self._current_tag = command.tag
        self._current_has_literal = line.literal is not None
        self.state.commands += 1
        log.debug("%s: C: %s %s", self, command.tag, command.name)
        handler = _LOCAL_COMMANDS.get(command.name)
        if handler is not None and line.literal is None:
            await handler(self, command)
            return False
        self.state.in_flight[command.tag] = command
        if command.name in ("AUTHENTICATE", "IDLE"):
            self._continuation_for = command.tag
            self._idle_state = "asked" if command.name == "IDLE" else ""
            if command.name == "AUTHENTICATE" and len(command.args) > 1:
                arg = command.args[1]
                if isinstance(arg, str | bytes):
                    self._note_sasl_user(command.tag, arg.encode() if isinstance(arg, str) else arg)
        elif command.name == "LOGIN" and command.login_user:
            self._note_login(command.tag, command)
        await self.hooks.before_command(self, command)
        return True

    def _note_login(self, tag: str, command: Command) -> None:
        self._pending_user[tag] = command.login_user or ""
        password = command.args[1] if len(command.args) > 1 else None
        if isinstance(password, bytes):
            self._pending_secret[tag] = password.decode("utf-8", "replace")
        elif isinstance(password, str):
            self._pending_secret[tag] = str(password)

    def _forget(self, tag: str) -> None:
        self.state.in_flight.pop(tag, None)
        self._pending_user.pop(tag, None)
        self._pending_secret.pop(tag, None)
        if self._continuation_for == tag:
            self._continuation_for = None

    def _client_message_end(self, end: MessageEnd) -> None:
        tag = self._current_tag
        self._current_tag = None
        if tag is None or tag not in self.state.in_flight:
            return
        if not self._current_has_literal or end.truncated:
            return  # the first line was the whole command, already parsed
        try:
            command = parse_command(end.head)
        except ParseError:
            return
        if command.name == "LOGIN":
            # The user name (sent as a literal); the password only until the reply.
            if command.login_user:
                self._note_login(tag, command)
            return
        self.state.in_flight[tag] = command

    def _note_sasl_user(self, tag: str, data: bytes) -> None:
        command = self.state.in_flight.get(tag)
        mechanism = command.args[0] if command and command.args else None
        if isinstance(mechanism, str) and mechanism.upper() == "PLAIN":
            credentials = sasl_plain_credentials(data)
            if credentials:
                self._pending_user[tag], self._pending_secret[tag] = credentials

    async def _refuse_literal(self, err: LiteralTooLarge) -> bool:
        """A literal over the bound: BAD when nothing of it reached upstream, else disconnect."""
        tag = self._current_tag
        if err.first:
            try:
                tag = parse_command(err.line).tag
            except ParseError:
                tag = None
        log.warning(
            "%s: client announced a literal of %d bytes (limit %d)", self, err.spec.size, err.limit
        )
        if err.spec.synchronizing and err.first and tag is not None:
            # The client waits for "+" before sending it, so nothing is lost by refusing.
            msg = f"{tag} BAD [TOOBIG] literal of {err.spec.size} bytes exceeds {err.limit}\r\n"
            await self._write_client([msg.encode()])
            return True
        await self._bye_and_close(f"[TOOBIG] literal of {err.spec.size} bytes exceeds {err.limit}")
        return False

    async def _client_broke(self, err: FramingError) -> None:
        if isinstance(err, LineTooLong):
            log.warning("%s: client sent a line over %d bytes; closing", self, err.limit)
            await self._bye_and_close(f"command line too long (limit {err.limit} bytes)")
        elif isinstance(err, IncompleteMessage):
            log.warning("%s: client disconnected in the middle of a command", self)
        else:
            log.warning("%s: client stream error: %s", self, err)
            await self._bye_and_close(str(err))

    # -- upstream to client -------------------------------------------------------------------

    async def _upstream_pump(self, reader: asyncio.StreamReader) -> None:
        framer = self._upstream_framer
        eof = False
        while True:
            out: list[bytes] = []  # events first: the login's answer may have brought more
            try:
                # The hottest loop of the proxy (every byte of every FETCH): kept lean.
                while (event := framer.next_event()) is not NEED_DATA:
                    if type(event) is Line and event.first:
                        first, chunk = True, self._upstream_line(event)
                    else:
                        first, chunk = False, event.data  # type: ignore[union-attr]
                    if self._paused is None:
                        out.append(chunk)
                    else:
                        self._hold(chunk, first, out)
            except FramingError as err:
                await self._write_client(out)
                self._upstream_broke(err)
                return
            if out:
                await self._write_client(out)
            if eof:
                if not self._closing and not self._upstream_said_bye:
                    log.warning("%s: upstream %s closed the connection", self, self._upstream)
                    self._write_client_now(_UPSTREAM_GONE)
                return
            data = await reader.read(_READ_SIZE)
            framer.receive_data(data)
            eof = not data

    def _upstream_line(self, line: Line) -> bytes:
        try:
            response = parse_response(line.data)
        except ParseError:
            return line.data
        if response.kind is ResponseKind.CONTINUATION and self._idle_state:
            if self._swallow_plus:
                self._swallow_plus -= 1
                if self._idle_state == "asked":
                    self._idle_state = "idling"
                return b""
            if self._idle_state == "asked":
                self._idle_state = "idling"
        if response.kind is ResponseKind.TAGGED and response.tag is not None:
            if response.tag in self._swallow_tagged:
                self._swallow_tagged.discard(response.tag)
                return b""
            self._complete(response)
        elif response.kind is ResponseKind.UNTAGGED and response.name == "BYE":
            self._upstream_said_bye = True
        data = line.data
        if response.name == "CAPABILITY" or response.code == "CAPABILITY":
            offer = self._local_tls is not None and not self.client_tls
            data = rewrite_capabilities(data, offer_starttls=offer)
        self.hooks.on_response(self, response)
        return data

    def _complete(self, response: Response) -> None:
        """A tagged completion: the command is over; update what the session knows."""
        assert response.tag is not None
        command = self.state.in_flight.pop(response.tag, None)
        if command is None:
            return
        if self._continuation_for == response.tag:
            self._continuation_for = None
            self._idle_state = ""
        if self._current_tag == response.tag and self._client_framer.in_literal:
            # The server refused the command instead of inviting its literal: stop waiting.
            self._client_framer.cancel_literal()
            self._current_tag = None
        ok = response.name == "OK"
        user = self._pending_user.pop(response.tag, None)
        secret = self._pending_secret.pop(response.tag, None)
        if ok and user is not None:
            self.state.user = user
            log.info("%s: logged in as %s", self, user)
            if secret is not None:
                self.hooks.on_login(self, user, secret)
        if command.name in ("SELECT", "EXAMINE"):
            # A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
            self.state.selected = command.mailbox if ok else None
            self.state.read_only = command.name == "EXAMINE" or response.code == "READ-ONLY"
        elif command.name in ("CLOSE", "UNSELECT") and ok:
            self.state.selected = None

    def _hold(self, data: bytes, first: bool, out: list[bytes]) -> None:
        paused = self._paused
        assert paused is not None
        if first or not paused:
            paused.append([data])
        else:
            paused[-1].append(data)
        self._paused_size += len(data)
        if self._paused_size > self.limits.max_paused_bytes:
            # Fail open: a pause must never grow without bound.
            log.warning("%s: paused responses over %d bytes; resuming", self, self._paused_size)
            out.extend(chunk for message in paused for chunk in message)
            self._paused = None

    def _upstream_broke(self, err: FramingError) -> None:
        if isinstance(err, IncompleteMessage):
            log.warning("%s: upstream %s closed the connection mid-response", self, self._upstream)
        else:
            log.error("%s: upstream %s sent an unframeable stream: %s", self, self._upstream, err)

    # -- writing and closing ------------------------------------------------------------------

    async def _write_client(self, chunks: list[bytes]) -> None:
        await self._client_writable.wait()
        self._client_writer.writelines(chunks)
        self.state.bytes_to_client += sum(map(len, chunks))
        await self._client_writer.drain()

    def _write_client_now(self, data: bytes) -> None:
        if not self._client_writer.is_closing():
            self._client_writer.write(data)

    async def _bye_and_close(self, reason: str) -> None:
        if not self._upstream_framer.in_message:
            self._write_client_now(f"* BYE {reason}\r\n".encode())
        await self._discard_client_input()
        await self._close_all()

    async def _discard_client_input(self, seconds: float = 2.0) -> None:
        """Read and drop what the client is still sending, briefly, before closing.

        Closing a socket with unread input makes the kernel send a reset, which can destroy
        the BYE before the client reads it; a short lingering read lets the reason arrive.
        """
        writer = self._client_writer
        if writer.is_closing():
            return
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(seconds):
                while await self._client_reader.read(_READ_SIZE):
                    pass

    async def _close_all(self) -> None:
        self._closing = True
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        writers = [self._client_writer, self._upstream_writer]
        for writer in writers:
            if writer is not None and not writer.is_closing():
                writer.close()
        for writer in writers:
            if writer is not None:
                with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
                    await asyncio.wait_for(writer.wait_closed(), 5)

    # -- commands answered by the proxy itself ------------------------------------------------

    async def _starttls(self, command: Command) -> None:
        if self._local_tls is None or self.client_tls:
            why = "TLS is already active" if self.client_tls else "no local certificate"
            await self._write_client(
                [f"{command.tag} BAD STARTTLS not available: {why}\r\n".encode()]
            )
            return
        if self._client_framer.buffered:
            # Bytes pipelined after STARTTLS would be taken as if they came over TLS (a known
            # injection attack), so a client that sends them is disconnected.
            log.warning("%s: client pipelined data after STARTTLS; closing", self)
            await self._bye_and_close("data after STARTTLS")
            raise _SessionOver
        self._client_writable.clear()
        try:
            self._client_writer.write(f"{command.tag} OK Begin TLS negotiation now\r\n".encode())
            await self._client_writer.drain()
            await self._client_writer.start_tls(self._local_tls)
        except (ssl.SSLError, OSError) as err:
            log.warning("%s: client TLS handshake failed: %s", self, err)
            await self._close_all()
            raise _SessionOver from err
        finally:
            self._client_writable.set()
        self.client_tls = True
        log.info("%s: client link now TLS", self)

    async def _compress(self, command: Command) -> None:
        msg = f"{command.tag} NO COMPRESS is not offered through commsproxy\r\n"
        await self._write_client([msg.encode()])


# Commands about this hop, answered here and never forwarded.
_LOCAL_COMMANDS: dict[str, Callable[[Session, Command], Awaitable[None]]] = {
    "STARTTLS": Session._starttls,
    "COMPRESS": Session._compress,
}
