"""Reading the configured login's mail over IMAP, for ``commsproxy train``.

Training runs as a batch command: this is a plain iterator that drives the asynchronous IMAP
client (commsproxy/upstream) on an event loop in a thread of its own, one connection, one
batch at a time. It is strictly read-only: every folder is opened with EXAMINE and messages are
fetched with ``BODY.PEEK``, so nothing is marked ``\\Seen``; only the first ``max_bytes`` of each
message travel (``BODY.PEEK[]<0.N>``), so a 100 MB attachment costs no more than a short
message. Certificates are verified (system CAs plus an optional CA file), as for every upstream
link.

Folders come from LIST with RFC 6154 special-use attributes where the server has them. By
default the login's own folders are read (INBOX, Sent, archives and ordinary folders) and not
Junk, Trash, Drafts, Gmail's "All Mail" (a copy of everything) or other users' and public
namespaces; callers that want those (the shared account folders) name them or a LIST pattern.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from commsproxy.classifier.dataset import ReadStats
from commsproxy.classifier.mail import MAX_MESSAGE_BYTES, Mail, MailParseError, parse_mail
from commsproxy.endpoints import Endpoint, Security, client_tls_context
from commsproxy.imap.commands import quote_mailbox, quote_string, uid_set
from commsproxy.imap.names import INBOX
from commsproxy.imap.responses import (
    Fetched,
    Reply,
    parse_fetch,
    parse_foreign_namespaces,
    parse_list,
    parse_select,
)
from commsproxy.upstream import (
    CommandError,
    ImapClient,
    ImapError,
    connect,
)
from commsproxy.upstream.blocking import LoopThread

__all__ = [
    "FETCH_BATCH",
    "ImapFolder",
    "ImapSourceError",
    "read_imap",
]

FETCH_BATCH = 200  # messages per UID FETCH: few round trips, bounded memory
_TIMEOUT = 60.0  # seconds per command

# Attributes (lower-case) of folders not read by default: nothing to learn, or copies.
_SKIP_ATTRIBUTES = frozenset(
    {"\\noselect", "\\nonexistent", "\\junk", "\\trash", "\\drafts", "\\all", "\\flagged"}
)
# The same folders by name, for servers without SPECIAL-USE (last component, lower-case).
_SKIP_NAMES = frozenset(
    {"junk", "junk e-mail", "junk email", "spam", "bulk mail", "trash", "deleted items"}
    | {"deleted messages", "drafts", "outbox", "templates", "all mail", "starred"}
)
# RFC 6154 and RFC 8457 special-use attributes, lower-case to their spelling.
_SPECIAL_USE = {
    name.lower(): name
    for name in (
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    )
}


class ImapSourceError(Exception):
    """The server could not be reached, refused the login, or broke off; the message says which."""


@dataclass(frozen=True, slots=True)
class ImapFolder:
    """A mailbox as LIST reported it."""

    name: str  # as the user sees it (decoded from modified UTF-7)
    wire_name: str  # as the server spells it, for commands
    attributes: frozenset[str]  # lower-case ("\\hasnochildren", "\\sent"...)
    delimiter: str | None

    @property
    def special_use(self) -> frozenset[str]:
        """Its special-use attributes, spelled as RFC 6154 does (``\\Sent``)."""
        return frozenset(_SPECIAL_USE[a] for a in self.attributes if a in _SPECIAL_USE)


def read_imap(
    host: str,
    port: int,
    security: Security,
    username: str,
    password: str,
    *,
    cafile: Path | None = None,
    folders: Sequence[str] | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    stats: ReadStats | None = None,
    timeout: float = _TIMEOUT,
) -> Iterator[Mail]:
    """Every message of the chosen folders, read-only, folder by folder in UID order.

    ``folders`` are mailbox names or LIST patterns as the user sees them (``"Public/Accounts/*"``);
    by default the login's own folders except Junk, Trash and Drafts, INBOX first.

    ``Mail.folder`` is the decoded folder name and ``Mail.path`` an RFC 5092 URL
    (``imap://user@host/INBOX;UIDVALIDITY=7/;UID=42``). Which folders are sent mail: pass
    ``stats`` and, once the first message has arrived, ask ``stats.is_sent(mail.folder)``;
    ``stats.special_use`` maps each chosen folder to its special-use attributes (``\\Sent``...),
    which :func:`~commsproxy.classifier.dataset.is_sent_folder` takes as its second argument.

    The connection opens when iteration starts and closes when it ends. A message that cannot
    be parsed, or a folder that cannot be opened, is skipped and counted in ``stats``; failing
    to connect or log in, or a connection that breaks, raises :class:`ImapSourceError`.
    """
    stats = ReadStats() if stats is None else stats
    where = f"{host}:{port}"
    with LoopThread("imap-source") as loop:
        client = _open(loop, host, port, security, cafile, timeout, max_bytes)
        try:
            try:
                loop.run(client.login(username, password))
            except CommandError as err:
                raise ImapSourceError(f"login as {username!r} at {where} refused: {err}") from err
            chosen = loop.run(_choose_folders(client, folders, stats))
            for folder in chosen:
                stats.special_use[folder.name] = folder.special_use
            url = _base_url(username, host, port, security)
            for folder in chosen:
                yield from _read_folder(loop, client, folder, url, max_bytes, stats)
        except ImapError as err:  # broken link, or a reply we cannot use
            raise ImapSourceError(f"reading mail from {where} failed: {err}") from err
        finally:
            loop.run(client.logout())


# -- session ---------------------------------------------------------------------------------


def _open(
    loop: LoopThread,
    host: str,
    port: int,
    security: Security,
    cafile: Path | None,
    timeout: float,
    max_bytes: int,
) -> ImapClient:
    endpoint = Endpoint(f"{host}:{port}", host, port, security)
    try:
        tls = client_tls_context(cafile)
        # A whole batch of partial messages comes as one answer; each message is bounded.
        return loop.run(
            connect(endpoint, tls, seconds=timeout, max_message=max(64 << 20, 2 * max_bytes))
        )
    except (ImapError, OSError) as err:
        raise ImapSourceError(f"cannot connect to IMAP server {host}:{port}: {err}") from err


async def _choose_folders(
    client: ImapClient, patterns: Sequence[str] | None, stats: ReadStats
) -> list[ImapFolder]:
    extended = client.has("SPECIAL-USE") or client.has("LIST-EXTENDED")
    if patterns is not None:
        chosen: dict[str, ImapFolder] = {}
        for pattern in patterns:
            found = [f for f in await _list(client, pattern, extended) if _selectable(f)]
            if not found:
                stats.skip(f"folder {pattern!r}", "no such folder")
            chosen.update((f.name, f) for f in found)
        return list(chosen.values())
    foreign = await _other_namespaces(client) if client.has("NAMESPACE") else ()
    chosen_default = [
        folder
        for folder in await _list(client, "*", extended)
        if _selectable(folder) and _wanted(folder) and not folder.name.startswith(foreign)
    ]
    # INBOX first, then by name: a deterministic order for a deterministic training set.
    return sorted(chosen_default, key=lambda f: (f.name.upper() != INBOX, f.name))


async def _list(client: ImapClient, pattern: str, extended: bool) -> list[ImapFolder]:
    args = ['""', quote_mailbox(pattern), *(("RETURN", "(SPECIAL-USE)") if extended else ())]
    reply = await client.command("LIST", *args, what=f"LIST {pattern!r}")
    return [
        ImapFolder(listed.name, listed.wire_name, listed.attributes, listed.delimiter)
        for listed in parse_list(reply.untagged)
    ]


def _selectable(folder: ImapFolder) -> bool:
    return not folder.attributes & {"\\noselect", "\\nonexistent"}


def _wanted(folder: ImapFolder) -> bool:
    if folder.attributes & _SKIP_ATTRIBUTES:
        return False
    last = folder.name.rsplit(folder.delimiter, 1)[-1] if folder.delimiter else folder.name
    return last.lower() not in _SKIP_NAMES


async def _other_namespaces(client: ImapClient) -> tuple[str, ...]:
    """Prefixes of the other-users and shared namespaces (``Shared/``, ``Public/``)."""
    try:
        reply = await client.command("NAMESPACE")
    except CommandError:
        return ()
    return parse_foreign_namespaces(reply.untagged)


# -- messages --------------------------------------------------------------------------------


def _read_folder(
    loop: LoopThread,
    client: ImapClient,
    folder: ImapFolder,
    url: str,
    max_bytes: int,
    stats: ReadStats,
) -> Iterator[Mail]:
    try:
        reply = loop.run(client.command("EXAMINE", quote_string(folder.wire_name)))
    except CommandError as err:  # NO, or BAD for a name this server will not take
        stats.skip(f"folder {folder.name!r}", f"EXAMINE refused: {err.text}")
        return
    info = parse_select(reply.untagged)
    if info.exists == 0:
        return
    # One short answer per message: a UID SEARCH answer is one line, which could exceed the
    # client's line bound for a folder of 150,000 messages.
    reply = loop.run(client.command("UID FETCH", "1:*", "(UID)"))
    uids = sorted({fetched.uid for fetched in parse_fetch(reply.untagged)})
    folder_url = f"{url}/{quote(folder.name)};UIDVALIDITY={info.uidvalidity}"
    items = f"(UID RFC822.SIZE BODY.PEEK[]<0.{max_bytes}>)"
    batches = [uid_set(uids[i : i + FETCH_BATCH]) for i in range(0, len(uids), FETCH_BATCH)]
    # The next batch is asked for before this one is parsed, so the server's and the network's
    # time overlap the caller's. At most two batches are held.
    ahead: Future[Reply] | None = None
    for index, batch in enumerate(batches):
        current = ahead or loop.submit(client.command("UID FETCH", batch, items))
        ahead = None
        if index + 1 < len(batches):
            ahead = loop.submit(client.command("UID FETCH", batches[index + 1], items))
        try:
            reply = current.result()
        except CommandError as err:
            stats.skip(f"folder {folder.name!r}", f"FETCH refused: {err.text}")
            continue
        for fetched in sorted(parse_fetch(reply.untagged), key=_uid):
            where = f"{folder_url}/;UID={fetched.uid}"
            try:
                mail = parse_mail(fetched.text, folder=folder.name, path=where, size=fetched.size)
            except MailParseError as err:
                stats.skip(where, str(err))
                continue
            stats.read += 1
            yield mail


def _uid(fetched: Fetched) -> int:
    return fetched.uid


# -- names -----------------------------------------------------------------------------------


def _base_url(username: str, host: str, port: int, security: Security) -> str:
    default = 993 if security is Security.IMPLICIT_TLS else 143
    netloc = host if port == default else f"{host}:{port}"
    return f"imap://{quote(username, safe='')}@{netloc}"
