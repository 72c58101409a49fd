"""The engine's own link to the upstream server, on the one IMAP client (commsproxy/upstream).

Typed calls for what triage and release need (select, search, fetch, store, move, append, idle),
each bounded by a timeout and turned into ``UpstreamImapError`` with a one-line reason when the
server refuses or the link drops, so the engine can back off and reconnect without knowing the
client's ways. Two rules live here because they protect the user's mail: a move without the
MOVE extension expunges exactly the moved UIDs (``UID EXPUNGE``), and a plain ``EXPUNGE`` is
never sent.

Another client (a phone) may delete or move a message between our look at it and our move. The
server then refuses the whole command with ``NO [EXPUNGEISSUED]`` (``MessagesGone``), or, once
it has told us, simply skips the UID. Neither is a link failure: ``move`` and ``copy`` ask which
UIDs are still there, go on with those, and report the others as gone.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from ..endpoints import Endpoint
from ..imap import codes
from ..imap.commands import Arg, Literal, internal_date, quote_mailbox, quote_string, uid_set
from ..imap.grammar import decode_mailbox, tokenize
from ..imap.responses import (
    Fetched,
    ListedMailbox,
    MailboxInfo,
    Reply,
    parse_appenduid,
    parse_copyuid,
    parse_fetch,
    parse_foreign_namespaces,
    parse_list,
    parse_namespace,
    parse_search,
    parse_select,
    parse_status,
    untagged_name,
)
from ..upstream import (
    CommandError,
    ConnectError,
    ConnectionLost,
    ImapClient,
    ImapError,
    ImapTimeout,
    Login,
    password_login,
)
from ..upstream import connect as connect_client

__all__ = [
    "CommandRefused",
    "LoginRefused",
    "MessagesGone",
    "Moved",
    "Upstream",
    "UpstreamImapError",
    "connect",
    "status_each",
]

log = logging.getLogger("commsproxy.triage")

T = TypeVar("T")
# Release (re-append) and filing fetch whole messages: the largest the server may hold (most
# cap mail at 25-150 MB); a bigger answer closes the link rather than fill memory.
_MAX_MESSAGE = 256 << 20
_CHUNK = 100  # UIDs per FETCH or COPY: bounded responses, and progress between them
# UIDs per UID MOVE: a whole group of triage steps (new_mail.py) in one command. On maildir a
# MOVE costs about the same whatever its size, growing with the mailbox (about 600 ms at
# 100,000 messages), and its answer is one short EXPUNGE line per message.
_MOVE_CHUNK = 2000
# A command line stays under about 8 KB (RFC 7162 asks clients to keep to 8,192 octets, and
# some servers refuse longer lines): a UID set longer than this goes in pieces. Runs of UIDs
# are short where a backlog splits between hold mailboxes: about 1,000 six-digit UIDs fit.
_SET_CHARS = 7000
# Tries of one move or copy while other clients keep expunging its messages under it; each try
# learns of the expunges that refused the one before, so a second try nearly always does it.
_RACE_TRIES = 5


class UpstreamImapError(Exception):
    """The server refused a command or the link failed; the message says which and why."""


class LoginRefused(UpstreamImapError):
    """The server said no to the user name and password."""


class CommandRefused(UpstreamImapError):
    """The server answered NO or BAD: the link is fine, this one command was refused.

    ``code`` is the response code (``TRYCREATE``, ``ALREADYEXISTS``...), if the server gave one.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


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
    login: Login | None = None,
    refused: str | None = None,
) -> Upstream:
    """Log in to the upstream IMAP server; raises UpstreamImapError saying what failed.

    ``login`` replaces the password login (e.g. ``sasl_login("XOAUTH2", ...)``); ``username``
    then only names the login in messages. ``refused`` names what a refusal refused (default
    ``the login for USERNAME``, e.g. ``the access token of ...``).
    """
    where = f"upstream {endpoint}"
    refused = refused or f"the login for {username}"
    step = login if login is not None else password_login(username, password)
    try:
        async with asyncio.timeout(seconds):
            client = await connect_client(
                endpoint, tls, step, seconds=seconds, max_message=_MAX_MESSAGE
            )
    except TimeoutError:
        raise UpstreamImapError(f"{where}: no answer within {seconds:g} s") from None
    except CommandError as err:
        raise LoginRefused(f"{where} refused {refused}: {err.status} {err.text}") from None
    except ConnectError as err:
        raise UpstreamImapError(str(err)) from None
    except ImapError as err:
        raise UpstreamImapError(f"{where}: {err}") from None
    return Upstream(client, seconds)


class Upstream:
    """One logged-in upstream connection."""

    def __init__(self, client: ImapClient, timeout: float) -> None:
        self._client = client
        self.name = client.name
        self.timeout = timeout
        self.selected: str | None = None
        # The selected mailbox as the server last described it: SELECT's answer, and its
        # message count kept current from the EXISTS and EXPUNGE responses that come with
        # every command -- so INBOX's size is known without asking (engine.py).
        self.info: MailboxInfo | None = None
        self.exists: int | None = None
        self.arrivals = 0  # EXISTS responses heard: news of mail, even when the count is even
        # The commands sent on this link, as named in errors (no password is sent through
        # here): how many, and the latest -- what a test counts to prove a step asked nothing.
        self.sent = 0
        self.recent: deque[str] = deque(maxlen=1000)
        self._delimiter: str | None = None
        self._list_status_refused = False  # LIST-STATUS offered but refused: STATUS each
        client.on_untagged = self._heard

    # -- plumbing -------------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return self._client.has(capability)

    @property
    def closed(self) -> bool:
        return self._client.closed

    async def _run(self, what: str, call: Awaitable[T]) -> T:
        """Run one client call; a refusal or a failed link becomes our own error, in words."""
        try:
            return await call
        except CommandError as err:
            refused = MessagesGone if err.code == codes.EXPUNGEISSUED else CommandRefused
            code = f"[{err.code}] " if err.code else ""
            raise refused(f"{self.name}: {what}: {err.status} {code}{err.text}", err.code) from None
        except ImapTimeout:
            raise UpstreamImapError(f"{self.name}: {what}: no answer in time") from None
        except ConnectionLost as err:
            bye = f" (BYE {err.bye})" if err.bye else ""
            raise UpstreamImapError(f"{self.name}: {what}: connection lost{bye}") from None
        except ImapError as err:
            raise UpstreamImapError(f"{self.name}: {what}: {err}") from None

    def _heard(self, number: int | None, name: str) -> None:
        if number is None or self.exists is None:
            return
        if name == "EXISTS":
            self.exists = number
            self.arrivals += 1
        elif name == "EXPUNGE":
            self.exists = max(self.exists - 1, 0)

    async def _ok(self, what: str, name: str, *args: Arg, limit: float | None = None) -> Reply:
        """One command, its OK reply, within ``limit`` (default: the link's timeout)."""
        self.sent += 1
        self.recent.append(what)
        call = self._client.command(name, *args, seconds=limit or self.timeout, what=what)
        return await self._run(what, call)

    # -- mailboxes ------------------------------------------------------------------------------

    async def list_mailboxes(
        self, pattern: str = "*", *, special_use: bool = False
    ) -> list[ListedMailbox]:
        """LIST; ``special_use`` asks for ``\\Sent``, ``\\Trash``... where the server has them."""
        args = ['""', quote_mailbox(pattern)]
        if special_use and (self.has("SPECIAL-USE") or self.has("LIST-EXTENDED")):
            args += ["RETURN", "(SPECIAL-USE)"]
        reply = await self._ok(f"LIST {pattern}", "LIST", *args)
        return parse_list(reply.untagged)

    async def delimiter(self) -> str:
        """The server's hierarchy delimiter (``/`` or ``.``), from ``LIST "" ""``."""
        if self._delimiter is None:
            reply = await self._ok('LIST "" ""', "LIST", '""', '""')
            listed = parse_list(reply.untagged)
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
        try:
            await self._ok(f"CREATE {name}", "CREATE", quote_mailbox(name))
        except CommandRefused as err:
            if err.code != codes.ALREADYEXISTS and not await self.list_mailboxes(name):
                raise
        else:
            log.info("%s: created mailbox %s", self.name, name)
        try:
            await self._ok(f"SUBSCRIBE {name}", "SUBSCRIBE", quote_mailbox(name))
        except CommandRefused as err:  # shown unsubscribed by some clients; not worth failing
            log.debug("%s: %s", self.name, err)
        return True

    async def select(self, name: str) -> MailboxInfo:
        return await self._open("SELECT", name)

    async def examine(self, name: str) -> MailboxInfo:
        """Select read-only: looking into a shared folder must not change its state."""
        return await self._open("EXAMINE", name)

    async def _open(self, command: str, name: str) -> MailboxInfo:
        # A failed SELECT leaves nothing selected (RFC 3501 6.3.1).
        self.selected, self.info = None, None
        self.exists = 0  # counted from the answer's EXISTS on (_heard)
        try:
            reply = await self._ok(f"{command} {name}", command, quote_mailbox(name))
        except BaseException:
            self.exists = None
            raise
        self.selected, self.info = name, parse_select(reply.untagged)
        self.exists = self.info.exists
        return self.info

    async def status(
        self, name: str, items: str = "(MESSAGES UIDNEXT UIDVALIDITY)"
    ) -> dict[str, int]:
        reply = await self._ok(f"STATUS {name} {items}", "STATUS", quote_mailbox(name), items)
        return parse_status(reply.untagged)

    async def statuses(
        self, names: Sequence[str], items: str = "(MESSAGES UIDNEXT UIDVALIDITY)"
    ) -> dict[str, dict[str, int]]:
        """The STATUS of each of ``names``, by name; a mailbox the server refuses or does
        not list is left out.

        Where the server offers LIST-STATUS (RFC 5819) one ``LIST "" (names...) RETURN
        (STATUS items)`` answers for all of them in one round trip; else one STATUS each.
        """
        if not names:
            return {}
        if self.has("LIST-STATUS") and not self._list_status_refused:
            patterns = "(" + " ".join(quote_mailbox(n) for n in names) + ")"
            try:
                reply = await self._ok(
                    f"LIST-STATUS of {len(names)} mailboxes", "LIST", '""', patterns,
                    "RETURN", f"(STATUS {items})",
                )  # fmt: skip
            except CommandRefused as err:  # offered but refused: STATUS from now on
                log.info("%s: %s; asking STATUS of each mailbox instead", self.name, err)
                self._list_status_refused = True
            else:
                found = _statuses_by_name(reply.untagged)
                return {n: found[n] for n in names if n in found}
        return await status_each(self.status, names, items)

    async def public_prefix(self) -> str | None:
        """The server's public namespace prefix (e.g. ``Public/``) from NAMESPACE, or None."""
        if not self.has("NAMESPACE"):
            return None
        reply = await self._ok("NAMESPACE", "NAMESPACE")
        return parse_namespace(reply.untagged)[0]

    async def foreign_namespaces(self) -> tuple[str, ...]:
        """Prefixes of other users' and shared folders (``Shared/``, ``Public/``)."""
        if not self.has("NAMESPACE"):
            return ()
        reply = await self._ok("NAMESPACE", "NAMESPACE")
        return parse_foreign_namespaces(reply.untagged)

    async def rename(self, old: str, new: str) -> None:
        await self._ok(f"RENAME {old} {new}", "RENAME", quote_mailbox(old), quote_mailbox(new))

    async def set_acl(self, mailbox: str, identifier: str, rights: str) -> None:
        args = (quote_mailbox(mailbox), quote_string(identifier), rights)
        await self._ok(f"SETACL {mailbox} {identifier}", "SETACL", *args)

    # -- messages in the selected mailbox -------------------------------------------------------

    async def search(self, criteria: str) -> list[int]:
        reply = await self._ok(f"UID SEARCH {criteria}", "UID SEARCH", criteria)
        return parse_search(reply.untagged)

    async def fetch(
        self, uids: Sequence[int], items: str, *, per_command: int = _CHUNK
    ) -> list[Fetched]:
        """``UID FETCH`` in chunks of ``per_command`` UIDs; ``items`` e.g. ``(UID FLAGS
        BODY.PEEK[HEADER])``. A caller that knows its answers are small asks for more at once."""
        out: list[Fetched] = []
        for piece in _pieces(sorted(uids), per_command):
            chunk = uid_set(piece)
            reply = await self._ok(
                f"UID FETCH {chunk}", "UID FETCH", chunk, items, limit=self.timeout * 4
            )
            out.extend(parse_fetch(reply.untagged))
        return out

    async def fetch_headers(self, uids: Sequence[int], fields: Sequence[str]) -> list[Fetched]:
        """Only these header fields, in ``Fetched.header``; BODY.PEEK: nothing is marked read."""
        return await self.fetch(uids, f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(fields)})])")

    async def add_flags(self, uids: Iterable[int], flags: Iterable[str]) -> None:
        """``UID STORE +FLAGS.SILENT``: one command, unless its UID set is too long a line."""
        flag_list = "(" + " ".join(flags) + ")"
        ordered = sorted(set(uids))
        for piece in _pieces(ordered, len(ordered)):
            target = uid_set(piece)
            await self._ok(
                f"UID STORE {target} +FLAGS", "UID STORE", target, "+FLAGS.SILENT", flag_list
            )

    async def add_flags_to(self, target: str, flags: Iterable[str]) -> None:
        """``UID STORE`` over a UID set written out (``1:4000,4002:9000``): one command for a
        whole INBOX, however many messages it holds."""
        flag_list = "(" + " ".join(flags) + ")"
        what = f"UID STORE {target[:40]} +FLAGS"
        await self._ok(
            what, "UID STORE", target, "+FLAGS.SILENT", flag_list, limit=self.timeout * 4
        )

    async def move(self, uids: Iterable[int], mailbox: str) -> Moved:
        """Move messages; without MOVE, COPY then expunge exactly those UIDs (UIDPLUS).

        In chunks, so each answer (one EXPUNGE line per message) stays bounded. Messages
        another client removed meanwhile are skipped and reported in ``gone``.
        """
        ordered = sorted(uids)
        return await self._each_present(
            ordered, lambda chunk: self._move_chunk(chunk, mailbox), _MOVE_CHUNK
        )

    async def _move_chunk(self, uid_list: list[int], mailbox: str) -> dict[int, int] | None:
        target, dest = uid_set(uid_list), quote_mailbox(mailbox)
        if self.has("MOVE"):
            reply = await self._ok(f"UID MOVE {target} {mailbox}", "UID MOVE", target, dest)
            return self._copied(reply)
        self._need_uidplus()  # before COPY: a copy that cannot be expunged is a duplicate
        reply = await self._ok(f"UID COPY {target} {mailbox}", "UID COPY", target, dest)
        copied = self._copied(reply)
        done = sorted(copied) if copied is not None else uid_list
        if done:  # only what was copied: a message skipped here must not be expunged
            await self.add_flags(done, ["\\Deleted"])
            await self.expunge_uids(done)
        return copied

    def _copied(self, reply: Reply) -> dict[int, int] | None:
        """Source UID -> new UID from COPYUID; None when the server does not say (no UIDPLUS)."""
        copied = parse_copyuid(reply.messages)
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
            reply = await self._ok(f"UID COPY {target} {mailbox}", "UID COPY", target, dest)
            return parse_copyuid(reply.messages)

        return (await self._each_present(sorted(uids), copy_chunk)).uids

    async def _each_present(
        self,
        ordered: list[int],
        act: Callable[[list[int]], Awaitable[dict[int, int] | None]],
        size: int = _CHUNK,
    ) -> Moved:
        """Run ``act`` on each chunk of UIDs, again on those still there after EXPUNGEISSUED.

        The server's refusal also told this session of the expunges (Dovecot sends them with
        it), so one ``UID SEARCH`` says which UIDs are left. A UID the server skipped without
        a word is gone too, when COPYUID says what was done.
        """
        done: dict[int, int] = {}
        gone: set[int] = set()
        for chunk in _pieces(ordered, size):
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
        await self._ok(f"UID EXPUNGE {target}", "UID EXPUNGE", target)

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
        args: list[Arg] = [quote_mailbox(mailbox)]
        flag_list = " ".join(flags)
        if flag_list:
            args.append(f"({flag_list})")
        if date is not None:
            args.append(internal_date(date))
        args.append(Literal(message))
        reply = await self._ok(f"APPEND {mailbox}", "APPEND", *args, limit=self.timeout * 4)
        return parse_appenduid(reply.messages)

    async def noop(self) -> None:
        """NOOP: also brings the selected mailbox's news (EXISTS, EXPUNGE) into ``exists``."""
        await self._ok("NOOP", "NOOP")

    # -- IDLE -----------------------------------------------------------------------------------

    async def idle_start(self) -> None:
        await self._run("IDLE", self._client.idle_start(seconds=self.timeout))

    async def idle_wait(self, seconds: float) -> list[bytes]:
        """News of the mailbox not seen yet, whole responses (``* 4 EXISTS\\r\\n``): pushed
        during IDLE, or come with an earlier command (SELECT's EXISTS, one between DONE and
        the next IDLE), so none is lost; ``[]`` when ``seconds`` passed quietly."""
        return await self._run("IDLE", self._client.idle_wait(seconds))

    async def idle_done(self) -> None:
        if not self._client.idling or self.closed:
            return
        await self._run("DONE", self._client.idle_done(seconds=self.timeout))

    async def logout(self) -> None:
        await self._client.logout()


def _pieces(ordered: list[int], most: int) -> list[list[int]]:
    """Sorted UIDs in pieces of at most ``most`` whose UID set fits in ``_SET_CHARS``."""
    size = max(most, 1)
    todo = [ordered[start : start + size] for start in range(0, len(ordered), size)][::-1]
    out: list[list[int]] = []  # todo is a stack: its end comes first
    while todo:
        piece = todo.pop()
        if len(piece) > 1 and len(uid_set(piece)) > _SET_CHARS:
            half = len(piece) // 2
            todo += [piece[half:], piece[:half]]
        else:
            out.append(piece)
    return out


def _statuses_by_name(untagged: Sequence[bytes]) -> dict[str, dict[str, int]]:
    """Each ``* STATUS name (...)`` response of a LIST-STATUS answer, by mailbox name."""
    out: dict[str, dict[str, int]] = {}
    for line in untagged:
        kind = untagged_name(line)
        if kind is None or kind != (None, "STATUS"):
            continue
        tokens = tokenize(line)
        if len(tokens) < 4 or isinstance(tokens[2], tuple):
            continue
        name = tokens[2]
        raw = name if isinstance(name, bytes) else str(name).encode()
        out[decode_mailbox(raw)] = parse_status([line])
    return out


async def status_each(
    status: Callable[[str, str], Awaitable[dict[str, int]]], names: Sequence[str], items: str
) -> dict[str, dict[str, int]]:
    """``Upstream.statuses`` without LIST-STATUS: one ``status`` each, a refused one left out."""
    out: dict[str, dict[str, int]] = {}
    for name in names:
        try:
            out[name] = await status(name, items)
        except CommandRefused:
            continue
    return out
