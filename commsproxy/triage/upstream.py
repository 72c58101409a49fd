"""The engine's own link to the upstream server: the one module that talks aioimaplib.

Typed calls for what triage and release need (select, search, fetch, store, move, append, idle),
each bounded by a timeout and turned into ``UpstreamImapError`` with a one-line reason when the
server refuses or the link drops, so the engine can back off and reconnect without knowing
aioimaplib's ways. Two rules live here because they protect the user's mail: a move without the
MOVE extension expunges exactly the moved UIDs (``UID EXPUNGE``), and a plain ``EXPUNGE`` is
never sent.

Another client (a phone) may delete or move a message between our look at it and our move. The
server then refuses the whole command with ``NO [EXPUNGEISSUED]`` (``MessagesGone``), or, once
it has told us, simply skips the UID. Neither is a link failure: ``move`` and ``copy`` ask which
UIDs are still there, go on with those, and report the others as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aioimaplib

from ..endpoints import Endpoint, Security
from .imapdata import (
    Fetched,
    ListedMailbox,
    MailboxInfo,
    parse_appenduid,
    parse_copyuid,
    parse_fetch,
    parse_foreign_namespaces,
    parse_list,
    parse_namespace,
    parse_search,
    parse_select,
    parse_status,
    quote_mailbox,
    quote_string,
    uid_set,
)

__all__ = [
    "CommandRefused",
    "LoginRefused",
    "MessagesGone",
    "Moved",
    "Upstream",
    "UpstreamImapError",
    "connect",
]

log = logging.getLogger("commsproxy.triage")

T = TypeVar("T")
_CHUNK = 100  # UIDs per FETCH: bounded responses (aioimaplib parses a chunk recursively)
# Tries of one move or copy while other clients keep expunging its messages under it; each try
# learns of the expunges that refused the one before, so a second try nearly always does it.
_RACE_TRIES = 5


class UpstreamImapError(Exception):
    """The server refused a command or the link failed; the message says which and why."""


class LoginRefused(UpstreamImapError):
    """The server said no to the user name and password."""


class CommandRefused(UpstreamImapError):
    """The server answered NO or BAD: the link is fine, this one command was refused."""


class MessagesGone(CommandRefused):
    """``NO [EXPUNGEISSUED]``: another client expunged some of the messages meanwhile."""


@dataclass(frozen=True)
class Moved:
    """What a move or copy did: new UIDs where the server said (UIDPLUS), and the UIDs that
    were gone (deleted or moved by another client) before it reached them."""

    uids: dict[int, int] = field(default_factory=dict)
    gone: frozenset[int] = frozenset()


async def connect(
    endpoint: Endpoint,
    tls: ssl.SSLContext,
    username: str,
    password: str,
    *,
    seconds: float = 30.0,
) -> Upstream:
    """Log in to the upstream IMAP server; raises UpstreamImapError saying what failed."""
    where = f"upstream {endpoint}"
    lost = asyncio.Event()

    def on_lost(_exc: Exception | None) -> None:
        lost.set()

    client: Any
    timeout = seconds
    try:
        async with asyncio.timeout(timeout):
            if endpoint.security is Security.IMPLICIT_TLS:
                client = aioimaplib.IMAP4_SSL(
                    endpoint.host, endpoint.port, timeout=timeout, ssl_context=tls
                )
                client.protocol.conn_lost_cb = on_lost
            else:
                client = aioimaplib.IMAP4(
                    endpoint.host, endpoint.port, timeout=timeout, conn_lost_cb=on_lost
                )
            await client.wait_hello_from_server()
            if endpoint.security is Security.STARTTLS:
                await _starttls(client, tls, endpoint.host)
            response = await client.login(quote_string(username), password)
            if response.result != "OK":
                text = b" ".join(line for line in response.lines if isinstance(line, bytes))
                raise LoginRefused(
                    f"{where} refused the login for {username}: {text.decode(errors='replace')}"
                )
            await client.protocol.capability()
    except TimeoutError:
        raise UpstreamImapError(f"{where}: no answer within {timeout:g} s") from None
    except ssl.SSLCertVerificationError as err:
        raise UpstreamImapError(
            f"{where}: TLS certificate not trusted: {err.verify_message}"
        ) from None
    except ssl.SSLError as err:
        raise UpstreamImapError(f"{where}: TLS failed: {err.reason or err}") from None
    except OSError as err:
        raise UpstreamImapError(f"{where} unreachable: {err.strerror or err}") from None
    except aioimaplib.AioImapException as err:
        raise UpstreamImapError(f"{where}: {err}") from None
    return Upstream(client, str(endpoint), lost, timeout)


async def _starttls(client: Any, tls: ssl.SSLContext, host: str) -> None:
    """aioimaplib has no STARTTLS: upgrade its transport in place and re-read capabilities."""
    protocol = client.protocol
    response = await protocol.execute(
        aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    )
    if response.result != "OK":
        raise UpstreamImapError(f"upstream {host} refused STARTTLS")
    loop = asyncio.get_running_loop()
    protocol.transport = await loop.start_tls(
        protocol.transport, protocol, tls, server_hostname=host
    )
    await protocol.capability()


class Upstream:
    """One logged-in upstream connection."""

    def __init__(self, client: Any, name: str, lost: asyncio.Event, timeout: float) -> None:
        self._client = client
        self.name = name
        self._lost = lost
        self.timeout = timeout
        self.selected: str | None = None
        self._delimiter: str | None = None
        self._idle: asyncio.Future[Any] | None = None

    # -- plumbing -------------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return bool(self._client.has_capability(capability))

    @property
    def closed(self) -> bool:
        return self._lost.is_set()

    async def _call(self, what: str, call: Awaitable[T], limit: float | None = None) -> T:
        """Run one command, failing fast when the link drops instead of waiting forever."""
        task = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=limit or self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            reason = "connection lost" if self._lost.is_set() else "no answer in time"
            raise UpstreamImapError(f"{self.name}: {what}: {reason}")
        try:
            return task.result()
        except aioimaplib.AioImapException as err:
            raise UpstreamImapError(f"{self.name}: {what}: {err}") from None
        except (OSError, TimeoutError) as err:
            raise UpstreamImapError(f"{self.name}: {what}: {err}") from None

    async def _ok(self, what: str, call: Awaitable[Any], limit: float | None = None) -> Any:
        response = await self._call(what, call, limit)
        if response.result != "OK":
            last = response.lines[-1] if response.lines else b""
            text = bytes(last).decode(errors="replace")
            refused = MessagesGone if "[EXPUNGEISSUED]" in text.upper() else CommandRefused
            raise refused(f"{self.name}: {what}: {response.result} {text}")
        return response

    async def _simple(self, name: str, *args: str) -> Any:
        return await self._ok(
            f"{name} {' '.join(args)}", self._client.protocol.simple_command(name, *args)
        )

    # -- mailboxes ------------------------------------------------------------------------------

    async def list_mailboxes(
        self, pattern: str = "*", *, special_use: bool = False
    ) -> list[ListedMailbox]:
        """LIST; ``special_use`` asks for ``\\Sent``, ``\\Trash``... where the server has them."""
        args = ['""', quote_string(pattern)]
        if special_use and (self.has("SPECIAL-USE") or self.has("LIST-EXTENDED")):
            args += ["RETURN", "(SPECIAL-USE)"]
        response = await self._simple("LIST", *args)
        return parse_list(response.lines)

    async def delimiter(self) -> str:
        """The server's hierarchy delimiter (``/`` or ``.``), from ``LIST "" ""``."""
        if self._delimiter is None:
            response = await self._simple("LIST", '""', '""')
            listed = parse_list(response.lines)
            self._delimiter = (listed[0].delimiter if listed else None) or "/"
        return self._delimiter

    async def server_name(self, path: str) -> str:
        """A configured mailbox path (``Later/Bulk``) in the server's own hierarchy syntax."""
        return path.replace("/", await self.delimiter())

    async def ensure_mailbox(self, name: str) -> bool:
        """Create ``name`` (and its parents) unless it exists; subscribe so clients show it.

        True when it was missing at first look (created here, or by someone at the same time)."""
        if await self.list_mailboxes(name):
            return False
        response = await self._call(f"CREATE {name}", self._client.create(quote_mailbox(name)))
        if response.result != "OK":
            text = b" ".join(bytes(line) for line in response.lines)
            if b"ALREADYEXISTS" not in text.upper() and not await self.list_mailboxes(name):
                raise CommandRefused(f"{self.name}: cannot create {name}: {text.decode()}")
        else:
            log.info("%s: created mailbox %s", self.name, name)
        await self._call(f"SUBSCRIBE {name}", self._client.subscribe(quote_mailbox(name)))
        return True

    async def select(self, name: str) -> MailboxInfo:
        response = await self._ok(f"SELECT {name}", self._client.select(quote_mailbox(name)))
        self.selected = name
        return parse_select(response.lines)

    async def examine(self, name: str) -> MailboxInfo:
        """Select read-only: looking into a shared folder must not change its state."""
        response = await self._ok(f"EXAMINE {name}", self._client.examine(quote_mailbox(name)))
        # aioimaplib sends EXAMINE as a plain command and stays in the state it was in, so a
        # SEARCH or FETCH after a first EXAMINE would be refused there, never sent.
        self._client.protocol.state = aioimaplib.SELECTED
        self.selected = name
        return parse_select(response.lines)

    async def status(
        self, name: str, items: str = "(MESSAGES UIDNEXT UIDVALIDITY)"
    ) -> dict[str, int]:
        response = await self._simple("STATUS", quote_mailbox(name), items)
        return parse_status(response.lines)

    async def public_prefix(self) -> str | None:
        """The server's public namespace prefix (e.g. ``Public/``) from NAMESPACE, or None."""
        if not self.has("NAMESPACE"):
            return None
        response = await self._ok("NAMESPACE", self._client.namespace())
        return parse_namespace(response.lines)[0]

    async def foreign_namespaces(self) -> tuple[str, ...]:
        """Prefixes of other users' and shared folders (``Shared/``, ``Public/``)."""
        if not self.has("NAMESPACE"):
            return ()
        response = await self._ok("NAMESPACE", self._client.namespace())
        return parse_foreign_namespaces(response.lines)

    async def rename(self, old: str, new: str) -> None:
        await self._simple("RENAME", quote_mailbox(old), quote_mailbox(new))

    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        protocol = self._client.protocol  # aioimaplib has no SETACL method: send it as is
        args = (quote_mailbox(mailbox), quote_string(identifier), rights)
        command = aioimaplib.Command("SETACL", protocol.new_tag(), *args, loop=protocol.loop)
        await self._ok(f"SETACL {mailbox} {identifier}", protocol.execute(command))

    # -- messages in the selected mailbox -------------------------------------------------------

    async def search(self, criteria: str) -> list[int]:
        response = await self._ok(
            f"UID SEARCH {criteria}", self._client.uid_search(criteria, charset=None)
        )
        return parse_search(response.lines)

    async def fetch(self, uids: Sequence[int], items: str) -> list[Fetched]:
        """``UID FETCH`` in chunks; ``items`` e.g. ``(UID FLAGS BODY.PEEK[HEADER])``."""
        out: list[Fetched] = []
        ordered = sorted(uids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = uid_set(ordered[start : start + _CHUNK])
            response = await self._ok(
                f"UID FETCH {chunk}",
                self._client.protocol.fetch(chunk, items, by_uid=True),
                limit=self.timeout * 4,
            )
            out.extend(parse_fetch(response.lines))
        return out

    async def fetch_headers(self, uids: Sequence[int], fields: Sequence[str]) -> list[Fetched]:
        """Only these header fields, in ``Fetched.header``; BODY.PEEK: nothing is marked read."""
        return await self.fetch(uids, f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(fields)})])")

    async def add_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        flag_list = "(" + " ".join(flags) + ")"
        target = uid_set(uids)
        await self._ok(
            f"UID STORE {target} +FLAGS",
            self._client.uid("store", target, "+FLAGS.SILENT", flag_list),
        )

    async def move(self, uids: Iterable[int], mailbox: str) -> Moved:
        """Move messages; without MOVE, COPY then expunge exactly those UIDs (UIDPLUS).

        In chunks: the server answers with one EXPUNGE line per message, and aioimaplib reads
        a response's lines recursively, so thousands in one answer would overflow its stack.
        Messages another client removed meanwhile are skipped and reported in ``gone``.
        """
        ordered = sorted(uids)
        return await self._each_present(ordered, lambda chunk: self._move_chunk(chunk, mailbox))

    async def _move_chunk(self, uid_list: list[int], mailbox: str) -> dict[int, int] | None:
        target, dest = uid_set(uid_list), quote_mailbox(mailbox)
        if self.has("MOVE"):
            response = await self._ok(
                f"UID MOVE {target} {mailbox}", self._client.uid("move", target, dest)
            )
            return self._copied(response.lines)
        self._need_uidplus()  # before COPY: a copy that cannot be expunged is a duplicate
        response = await self._ok(
            f"UID COPY {target} {mailbox}", self._client.uid("copy", target, dest)
        )
        copied = self._copied(response.lines)
        done = sorted(copied) if copied is not None else uid_list
        if done:  # only what was copied: a message skipped here must not be expunged
            await self.add_flags(done, ["\\Deleted"])
            await self.expunge_uids(done)
        return copied

    def _copied(self, lines: Sequence[bytes | bytearray]) -> dict[int, int] | None:
        """Source UID -> new UID from COPYUID; None when the server does not say (no UIDPLUS)."""
        copied = parse_copyuid([line for line in lines if isinstance(line, bytes | bytearray)])
        if copied:
            return copied
        # With UIDPLUS a move that did something says so (RFC 6851): nothing was there.
        return {} if self.has("UIDPLUS") else None

    async def copy(self, uids: Iterable[int], mailbox: str) -> dict[int, int]:
        """``UID COPY`` in chunks; source UID -> new UID where the server says (UIDPLUS).

        Messages another client removed meanwhile are skipped (absent from the answer)."""
        dest = quote_mailbox(mailbox)

        async def copy_chunk(chunk: list[int]) -> dict[int, int] | None:
            target = uid_set(chunk)
            response = await self._ok(
                f"UID COPY {target} {mailbox}", self._client.uid("copy", target, dest)
            )
            return parse_copyuid(response.lines)

        return (await self._each_present(sorted(uids), copy_chunk)).uids

    async def _each_present(
        self,
        ordered: list[int],
        act: Callable[[list[int]], Awaitable[dict[int, int] | None]],
    ) -> Moved:
        """Run ``act`` on each chunk of UIDs, again on those still there after EXPUNGEISSUED.

        The server's refusal also told this session of the expunges (Dovecot sends them with
        it), so one ``UID SEARCH`` says which UIDs are left. A UID the server skipped without
        a word is gone too, when COPYUID says what was done.
        """
        done: dict[int, int] = {}
        gone: set[int] = set()
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            for _ in range(_RACE_TRIES):
                try:
                    result = await act(chunk)
                except MessagesGone:
                    here = set(await self.search(f"UID {uid_set(chunk)}"))
                    gone.update(uid for uid in chunk if uid not in here)
                    chunk = [uid for uid in chunk if uid in here]
                    if chunk:
                        continue
                    break
                if result is not None:
                    done.update(result)
                    gone.update(uid for uid in chunk if uid not in result)
                break
            else:
                raise UpstreamImapError(
                    f"{self.name}: {len(chunk)} message(s) kept being expunged by another"
                    f" client during {_RACE_TRIES} tries"
                )
        return Moved(done, frozenset(gone))

    async def expunge_uids(self, uids: Iterable[int]) -> None:
        """``UID EXPUNGE`` of exactly these messages (UIDPLUS); never a plain EXPUNGE."""
        self._need_uidplus()
        target = uid_set(uids)
        await self._ok(f"UID EXPUNGE {target}", self._client.uid("expunge", target))

    def _need_uidplus(self) -> None:
        if not self.has("UIDPLUS"):
            # The only other way to remove mail is a plain EXPUNGE, which would also destroy
            # the user's other deleted mail: refuse instead.
            raise UpstreamImapError(
                f"{self.name}: the server has neither MOVE nor UIDPLUS; cannot move mail safely"
            )

    async def append(
        self, mailbox: str, message: bytes, flags: Iterable[str], date: datetime | None = None
    ) -> int | None:
        """APPEND; the new message's UID when the server says (UIDPLUS ``APPENDUID``)."""
        flag_list = " ".join(flags) or None  # aioimaplib cannot send an empty flag list
        response = await self._ok(
            f"APPEND {mailbox}",
            self._client.append(
                message, mailbox=quote_mailbox(mailbox), flags=flag_list, date=date
            ),
            limit=self.timeout * 4,
        )
        return parse_appenduid(response.lines)

    async def noop(self) -> None:
        await self._ok("NOOP", self._client.noop())

    # -- IDLE -----------------------------------------------------------------------------------

    async def idle_start(self) -> None:
        try:
            self._idle = await self._call("IDLE", self._client.idle_start(timeout=10**9))
        except UpstreamImapError:
            self._idle = None
            raise

    async def idle_wait(self, seconds: float) -> list[bytes]:
        """Untagged lines pushed during IDLE (``[]`` when ``seconds`` passed quietly)."""
        lost = asyncio.ensure_future(self._lost.wait())
        push = asyncio.ensure_future(self._client.wait_server_push(timeout=seconds))
        try:
            done, _ = await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if push not in done:
            push.cancel()
            raise UpstreamImapError(f"{self.name}: IDLE: connection lost")
        try:
            lines = push.result()
        except TimeoutError:
            return []
        if not isinstance(lines, list):  # aioimaplib's stop marker
            return []
        return [bytes(line) for line in lines if isinstance(line, bytes | bytearray)]

    async def idle_done(self) -> None:
        idle, self._idle = self._idle, None
        if idle is None or self.closed:
            return
        self._client.idle_done()
        await self._call("DONE", asyncio.wait_for(idle, self.timeout))

    async def logout(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(TimeoutError, OSError, aioimaplib.AioImapException):
            if self._client.has_pending_idle():
                self._client.idle_done()  # LOGOUT would otherwise wait behind the IDLE
                await asyncio.wait_for(self._client.protocol.pending_sync_command.wait(), 2)
            await asyncio.wait_for(self._client.logout(), 5)
        self._lost.set()
