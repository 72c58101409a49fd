"""An asynchronous IMAP client: tagged commands in, typed replies and typed refusals out.

Theory of operation. One reader task owns the receiving side: it feeds every byte to a
:class:`~commsproxy.imap.framer.Framer` (bounded: a line over ``max_line`` or a response over
``max_message`` closes the link with :class:`ProtocolError`, nothing is buffered first) and
dispatches each whole response:

    ``+ ...``      a continuation, handed to the command waiting for one (a synchronizing
                   literal, AUTHENTICATE, IDLE)
    ``* ...``      untagged: collected for the command in flight; mailbox changes (EXISTS,
                   EXPUNGE, VANISHED, RECENT, a FETCH the command did not ask for) and
                   everything that comes while no command runs or during IDLE also go to
                   :attr:`events`, a bounded queue (``events_dropped`` counts what it lost)
    ``tag ...``    the completion: the command's :class:`Reply`

One command runs at a time (a lock; the engine never pipelines), so the completion always
belongs to it. Commands are written with commsproxy/imap/commands.py: a synchronizing literal
waits for ``+`` (or for the refusal that comes instead), LITERAL+ and LITERAL- send at once.
``NO`` and ``BAD`` raise :class:`CommandNo`/:class:`CommandBad` with the response code. A
timeout, a cancelled command, ``* BYE`` or a reset closes the link (the server's state is then
unknown) and every waiter gets :class:`ConnectionLost` saying why.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..imap.commands import Arg, astring, command_chunks
from ..imap.framer import NEED_DATA, Framer, FramingError, IncompleteMessage, MessageEnd
from ..imap.responses import Reply, parse_capabilities, read_completion, untagged_name
from .errors import (
    CommandBad,
    CommandNo,
    ConnectionLost,
    ImapTimeout,
    ProtocolError,
)

__all__ = ["MAX_LINE", "MAX_MESSAGE", "Challenge", "ImapClient"]

log = logging.getLogger("commsproxy.upstream")

# Answers a server challenge (decoded) with the client's response, or None to cancel.
Challenge = Callable[[bytes], Awaitable[bytes | None]]

_READ_SIZE = 256 * 1024
# The longest line: a UID SEARCH answer is one line, about 8 bytes per message (1M messages).
MAX_LINE = 8 << 20
# The largest response (a FETCH with whole messages): callers fetching whole mail raise it.
MAX_MESSAGE = 64 << 20
_MAILBOX_CHANGES = frozenset({"EXISTS", "EXPUNGE", "VANISHED", "RECENT"})
_STATUS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH", "CAPABILITY"})


@dataclass(slots=True)
class _Pending:
    """The command in flight."""

    tag: str
    what: str
    done: asyncio.Future[Reply]
    asks_fetch: bool = False  # FETCH/STORE: its FETCH responses are answers, not news
    idle: bool = False
    untagged: list[bytes] = field(default_factory=list)
    continuation: asyncio.Future[bytes] | None = None


class ImapClient:
    """One connection, after the greeting (and STARTTLS): see the module docstring."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        greeting: bytes = b"",
        timeout: float = 30.0,
        max_line: int = MAX_LINE,
        max_message: int = MAX_MESSAGE,
        max_events: int = 10_000,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.capabilities: frozenset[str] = parse_capabilities(greeting) or frozenset()
        self.events: deque[bytes] = deque(maxlen=max_events)
        self.events_dropped = 0
        self._reader = reader
        self._writer = writer
        self._framer = Framer(max_line=max_line, max_literal=max_message, max_head=max_message)
        self._lock = asyncio.Lock()
        self._new_events = asyncio.Event()
        self._current: _Pending | None = None
        self._idle: _Pending | None = None
        self._tags = 0
        self._lost: str | None = None
        self._bye: str | None = None
        # Sees every untagged response once, in the order received (a mailbox's EXISTS and
        # EXPUNGE, which a caller may count), besides where the response goes anyway.
        self.on_untagged: Callable[[int | None, str], None] | None = None
        self._read_task = asyncio.create_task(self._read_loop(), name=f"imap-read {name}")

    # -- state ----------------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    @property
    def closed(self) -> bool:
        return self._lost is not None

    @property
    def lost_reason(self) -> str | None:
        """Why the link closed ("closed by the server: BYE ..."), or None while it is open."""
        return self._lost

    def take_events(self) -> list[bytes]:
        """The unsolicited responses so far (whole messages, ``* 3 EXISTS\\r\\n``), oldest first."""
        out = list(self.events)
        self.events.clear()
        self._new_events.clear()
        return out

    # -- commands -------------------------------------------------------------------------------

    async def command(
        self,
        name: str,
        *args: Arg,
        seconds: float | None = None,
        what: str | None = None,
    ) -> Reply:
        """Send one command and return its OK reply; raises CommandNo/CommandBad on a refusal.

        ``what`` names the command in error messages (default: its name), so a password in an
        argument never reaches a log.
        """
        what = what or name
        async with self._lock:
            reply = await self._run(name, args, what, seconds)
        return self._ok(reply, what)

    async def authenticate(
        self,
        mechanism: str,
        initial_response: bytes | None = None,
        on_challenge: Challenge | None = None,
        *,
        seconds: float | None = None,
    ) -> Reply:
        """``AUTHENTICATE mechanism`` (RFC 3501 6.2.2, SASL-IR RFC 4959 where offered).

        ``initial_response`` goes on the command line with SASL-IR, else as the answer to the
        first (empty) challenge. Every other challenge is decoded and given to ``on_challenge``,
        whose answer is sent encoded; None (or no handler) cancels with ``*``.
        """
        args: list[Arg] = [mechanism]
        first: bytes | None = None
        if initial_response is not None:
            if self.has("SASL-IR"):
                args.append(base64.b64encode(initial_response).decode() or "=")
            else:
                first = initial_response

        async def answer(challenge: bytes) -> bytes | None:
            nonlocal first
            if first is not None:
                response, first = first, None
                return response
            return await on_challenge(challenge) if on_challenge is not None else None

        what = f"AUTHENTICATE {mechanism}"
        async with self._lock:
            reply = await self._run("AUTHENTICATE", args, what, seconds, answer)
        self._ok(reply, what)
        await self._refresh_capabilities(reply)
        return reply

    async def login(self, user: str, password: str, *, seconds: float | None = None) -> Reply:
        """LOGIN, or AUTHENTICATE PLAIN where LOGIN cannot carry the name or password (8-bit)
        or the server disables it; capabilities are read again afterwards."""
        if self.has("LOGINDISABLED") or not (user.isascii() and password.isascii()):
            # RFC 4616: authzid NUL authcid NUL password, UTF-8.
            secret = b"\0" + user.encode() + b"\0" + password.encode()
            return await self.authenticate("PLAIN", secret, seconds=seconds)
        async with self._lock:
            reply = await self._run(
                "LOGIN", (astring(user), astring(password)), f"LOGIN {user}", seconds
            )
        self._ok(reply, f"LOGIN {user}")
        await self._refresh_capabilities(reply)
        return reply

    async def _refresh_capabilities(self, reply: Reply) -> None:
        """Servers announce more once the user is known; most say so in the OK already."""
        if reply.code != "CAPABILITY":
            await self.command("CAPABILITY")

    # -- IDLE (RFC 2177) --------------------------------------------------------------------------

    async def idle_start(self, *, seconds: float | None = None) -> None:
        """Enter IDLE; until :meth:`idle_done` other commands wait. News goes to :attr:`events`."""
        await self._lock.acquire()
        try:
            pending = self._start("IDLE", asks_fetch=False)
            pending.idle = True
            async with self._deadline("IDLE", seconds):
                self._writer.write(f"{pending.tag} IDLE\r\n".encode())
                if await self._continuation(pending) is None:
                    self._current = None
                    self._ok(await pending.done, "IDLE")
                    raise ConnectionLost(f"{self.name}: IDLE: the server ended it at once")
            self._idle = pending
        except BaseException:
            self._current = None
            self._lock.release()
            raise

    async def idle_wait(self, seconds: float) -> list[bytes]:
        """Untagged responses pushed since the last look (``[]`` when ``seconds`` passed
        quietly); raises ConnectionLost when the link is gone."""
        if not self.events and not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._new_events.wait()
        if not self.events and self.closed:
            raise self._lost_error("IDLE")
        return self.take_events()

    async def idle_done(self, *, seconds: float | None = None) -> Reply:
        """Leave IDLE (``DONE``) and wait for its completion."""
        pending, self._idle = self._idle, None
        if pending is None:
            raise RuntimeError("idle_done without idle_start")
        try:
            async with self._deadline("DONE", seconds):
                if self.closed:
                    raise self._lost_error("DONE")
                self._writer.write(b"DONE\r\n")
                reply = await pending.done
        finally:
            self._current = None
            self._lock.release()
        return self._ok(reply, "IDLE")

    @property
    def idling(self) -> bool:
        return self._idle is not None

    # -- ending ---------------------------------------------------------------------------------

    async def logout(self, *, seconds: float = 5.0) -> None:
        """LOGOUT politely (ending IDLE first), then close; never raises.

        With a command still in flight (its caller was interrupted) the link just closes:
        LOGOUT would have to wait for that answer first.
        """
        if not self.closed and (self._idle is not None or not self._lock.locked()):
            with contextlib.suppress(Exception):
                if self._idle is not None:
                    await self.idle_done(seconds=min(seconds, 2.0))
                async with self._lock:
                    await self._run("LOGOUT", (), "LOGOUT", seconds)
        await self.close()

    async def close(self) -> None:
        """Drop the connection at once (no LOGOUT)."""
        self._fail("closed by us")
        if not self._read_task.done():
            self._read_task.cancel()
        await asyncio.wait([self._read_task])  # ended, whatever it ended with
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()

    # -- the sending side -----------------------------------------------------------------------

    def _start(self, name: str, *, asks_fetch: bool) -> _Pending:
        if self._lost is not None:
            raise self._lost_error(name)
        self._tags += 1
        pending = _Pending(
            f"t{self._tags}", name, asyncio.get_running_loop().create_future(), asks_fetch
        )
        self._current = pending
        return pending

    async def _run(
        self,
        name: str,
        args: Sequence[Arg],
        what: str,
        seconds: float | None,
        on_continuation: Callable[[bytes], Awaitable[bytes | None]] | None = None,
    ) -> Reply:
        upper = name.upper()
        pending = self._start(what, asks_fetch="FETCH" in upper or "STORE" in upper)
        chunks = command_chunks(
            pending.tag,
            name,
            args,
            literal_plus=self.has("LITERAL+"),
            literal_minus=self.has("LITERAL-"),
        )
        try:
            async with self._deadline(what, seconds):
                for chunk in chunks:
                    self._writer.write(chunk.data)
                    if chunk.wait and await self._continuation(pending) is None:
                        break  # refused instead of "+": the rest is never sent
                while on_continuation is not None:
                    challenge = await self._continuation(pending)
                    if challenge is None:
                        break
                    response = await on_continuation(_decode_challenge(challenge))
                    line = b"*" if response is None else base64.b64encode(response)
                    self._writer.write(line + b"\r\n")
                await self._writer.drain()
                return await pending.done
        finally:
            self._current = None

    async def _continuation(self, pending: _Pending) -> bytes | None:
        """The next ``+`` line, or None when the command completed instead."""
        await self._writer.drain()
        waiter = pending.continuation = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((waiter, pending.done), return_when=asyncio.FIRST_COMPLETED)
        finally:
            pending.continuation = None
        if waiter.done():
            line: bytes = waiter.result()
            return line
        waiter.cancel()
        if pending.done.done() and pending.done.exception() is not None:
            raise pending.done.exception()  # type: ignore[misc]
        return None

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str, seconds: float | None) -> AsyncIterator[None]:
        """Within the time limit, or the link closes: after a timeout or a cancelled command the
        server's answer would be read as the next command's."""
        limit = self.timeout if seconds is None else seconds
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            reason = f"no answer to {what} within {limit:g} s"
            self._fail(reason)
            raise ImapTimeout(f"{self.name}: {reason}") from None
        except asyncio.CancelledError:
            self._fail(f"{what} was cancelled")
            raise
        except (ConnectionError, OSError) as err:
            self._fail(f"write failed: {err}")
            raise self._lost_error(what) from None

    def _ok(self, reply: Reply, what: str) -> Reply:
        if reply.status == "OK":
            return reply
        code = f"[{reply.code}] " if reply.code else ""
        message = f"{self.name}: {what}: {reply.status} {code}{reply.text}"
        refusal = CommandBad if reply.status == "BAD" else CommandNo
        raise refusal(message, status=reply.status, code=reply.code, text=reply.text)

    def _lost_error(self, what: str) -> ConnectionLost:
        return ConnectionLost(f"{self.name}: {what}: connection lost ({self._lost})", self._bye)

    # -- the receiving side ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "closed by the server"
        framer = self._framer
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                framer.receive_data(data)
                while (event := framer.next_event()) is not NEED_DATA:
                    if type(event) is MessageEnd:
                        if event.truncated:
                            raise ProtocolError(f"a response over {framer.max_head} bytes")
                        self._dispatch(event.head)
                if not data:
                    break
        except IncompleteMessage:
            reason = "closed by the server in the middle of a response"
        except (FramingError, ProtocolError) as err:
            reason = f"the server sent {err}" if isinstance(err, FramingError) else str(err)
            self._fail(reason, protocol=True)
            return
        except (ConnectionError, OSError) as err:
            reason = f"connection broken: {err}"
        except Exception as err:  # a bug here must end this link loudly, not hang its waiters
            log.exception("%s: reading the server's responses failed", self.name)
            reason = f"client error: {err!r}"
        if self._bye:
            reason = f"{reason}: BYE {self._bye}"
        self._fail(reason)

    def _dispatch(self, message: bytes) -> None:
        first = message[:1]
        current = self._current
        if first == b"+":
            if current is not None and current.continuation is not None:
                if not current.continuation.done():
                    current.continuation.set_result(message)
            else:
                log.debug("%s: continuation nobody asked for: %r", self.name, message[:80])
            return
        if first == b"*":
            kind = untagged_name(message)
            name = kind[1] if kind is not None else ""
            if self.on_untagged is not None and kind is not None:
                self.on_untagged(*kind)
            if name in _STATUS:
                self._status(name, message)
            if current is not None and not current.idle:
                current.untagged.append(message)
                news = name in _MAILBOX_CHANGES or (name == "FETCH" and not current.asks_fetch)
            else:
                news = name != "BYE"
            if news:
                if len(self.events) == self.events.maxlen:
                    self.events_dropped += 1
                self.events.append(message)
                self._new_events.set()
            return
        if current is not None and message.startswith(current.tag.encode() + b" "):
            reply = read_completion(message.rstrip(b"\r\n"), current.untagged)
            if reply.status == "OK":
                self._status("OK", message)
            if not current.done.done():
                current.done.set_result(reply)
        else:
            log.debug("%s: a completion nobody waits for: %r", self.name, message[:80])

    def _status(self, name: str, message: bytes) -> None:
        if name == "BYE":
            self._bye = message[6:].strip().decode("utf-8", "replace")[:200]
            return
        capabilities = parse_capabilities(message)
        if capabilities is not None:
            self.capabilities = capabilities

    def _fail(self, reason: str, *, protocol: bool = False) -> None:
        """The link is over: say why to whoever waits, once, and close the socket."""
        if self._lost is not None:
            return
        self._lost = reason
        kind = ProtocolError if protocol else ConnectionLost
        current = self._current
        if current is not None and not current.done.done():
            what = current.what
            error = kind(f"{self.name}: {what}: connection lost ({reason})", self._bye)
            current.done.set_exception(error)
            current.done.exception()  # retrieved here too: nobody may be awaiting it any more
        self._new_events.set()
        with contextlib.suppress(Exception):
            self._writer.close()


def _decode_challenge(line: bytes) -> bytes:
    """``+ dGVzdA==`` → ``b"test"``; a challenge that is not base64 is passed on as it is."""
    text = line[1:].strip()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text
