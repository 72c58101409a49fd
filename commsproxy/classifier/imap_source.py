"""Reading the configured login's mail over IMAP, for ``commsproxy train``.

Training runs as a batch command, so this uses the blocking stdlib ``imaplib`` over one
connection (never the proxy's asyncio machinery). It is strictly read-only: every folder is
opened with EXAMINE and messages are fetched with ``BODY.PEEK``, so nothing is marked ``\\Seen``;
only the first ``max_bytes`` of each message travel (``BODY.PEEK[]<0.N>``), so a 100 MB
attachment costs no more than a short message. Certificates are verified (system CAs plus an
optional CA file), as for every upstream link.

Folders come from LIST with RFC 6154 special-use attributes where the server has them. By
default the login's own folders are read (INBOX, Sent, archives and ordinary folders) and not
Junk, Trash, Drafts, Gmail's "All Mail" (a copy of everything) or other users' and public
namespaces; callers that want those (the shared account folders) name them or a LIST pattern.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

from commsproxy.classifier.dataset import ReadStats
from commsproxy.classifier.mail import MAX_MESSAGE_BYTES, Mail, MailParseError, parse_mail
from commsproxy.endpoints import Security, client_tls_context
from commsproxy.imap.mailbox_names import decode_name, encode_name
from commsproxy.imap.names import INBOX

__all__ = [
    "FETCH_BATCH",
    "ImapFolder",
    "ImapSourceError",
    "read_imap",
]

FETCH_BATCH = 200  # messages per UID FETCH: few round trips, bounded memory
_TIMEOUT = 60.0  # seconds per socket operation

# Attributes (lower-case) of folders not read by default: nothing to learn, or copies.
_SKIP_ATTRIBUTES = frozenset(
    {"\\noselect", "\\nonexistent", "\\junk", "\\trash", "\\drafts", "\\all", "\\flagged"}
)
# The same folders by name, for servers without SPECIAL-USE (last component, lower-case).
_SKIP_NAMES = frozenset(
    {"junk", "junk e-mail", "junk email", "spam", "bulk mail", "trash", "deleted items"}
    | {"deleted messages", "drafts", "outbox", "templates", "all mail", "starred"}
)
_SPECIAL_USE = frozenset(
    {"\\all", "\\archive", "\\drafts", "\\flagged", "\\junk", "\\sent", "\\trash", "\\important"}
)

_LIST_LINE = re.compile(rb'\(([^)]*)\) (?:"((?:[^"\\]|\\.)*)"|NIL) ?(.*)', re.DOTALL)
_FETCH_START = re.compile(rb"\d+ \(")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class ImapSourceError(Exception):
    """The server could not be reached, refused the login, or broke off; the message says which."""


@dataclass(frozen=True, slots=True)
class ImapFolder:
    """A mailbox as LIST reported it."""

    name: str  # as the user sees it (decoded from modified UTF-7)
    wire_name: str  # as the server spells it, for commands
    attributes: frozenset[str]  # as sent ("\\HasNoChildren", "\\Sent"...)
    delimiter: str | None

    @property
    def special_use(self) -> frozenset[str]:
        return frozenset(a for a in self.attributes if a.lower() in _SPECIAL_USE)


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
    try:
        conn = _connect(host, port, security, cafile, timeout)
    except (OSError, imaplib.IMAP4.error) as err:
        raise ImapSourceError(f"cannot connect to IMAP server {where}: {err}") from err
    try:
        try:
            _login(conn, username, password)
        except imaplib.IMAP4.error as err:
            raise ImapSourceError(f"login as {username!r} at {where} refused: {err}") from err
        chosen = _choose_folders(conn, folders, stats)
        for folder in chosen:
            stats.special_use[folder.name] = folder.special_use
        url = _base_url(username, host, port, security)
        for folder in chosen:
            yield from _read_folder(conn, folder, url, max_bytes, stats)
    except (OSError, imaplib.IMAP4.error) as err:  # broken link, or a reply we cannot use
        raise ImapSourceError(f"reading mail from {where} failed: {err}") from err
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):  # already gone: nothing to tidy
            conn.logout()


# -- session ---------------------------------------------------------------------------------


def _connect(
    host: str, port: int, security: Security, cafile: Path | None, timeout: float
) -> imaplib.IMAP4:
    if security is Security.IMPLICIT_TLS:
        return imaplib.IMAP4_SSL(
            host, port, ssl_context=client_tls_context(cafile), timeout=timeout
        )
    conn = imaplib.IMAP4(host, port, timeout=timeout)
    if security is Security.STARTTLS:
        try:
            conn.starttls(ssl_context=client_tls_context(cafile))
        except BaseException:
            conn.shutdown()
            raise
    return conn


def _login(conn: imaplib.IMAP4, username: str, password: str) -> None:
    if username.isascii() and password.isascii():
        conn.login(username, password)
    else:
        # LOGIN arguments are ASCII in imaplib; SASL PLAIN carries UTF-8 (RFC 4616).
        secret = f"\0{username}\0{password}".encode()
        conn.authenticate("PLAIN", lambda _challenge: secret)


def _capabilities(conn: imaplib.IMAP4) -> frozenset[str]:
    """Capabilities after login: servers announce more once the user is known."""
    _, data = conn.capability()
    words = b" ".join(item for item in data if isinstance(item, bytes)).decode("ascii", "replace")
    return frozenset(words.upper().split())


def _choose_folders(
    conn: imaplib.IMAP4, patterns: Sequence[str] | None, stats: ReadStats
) -> list[ImapFolder]:
    capabilities = _capabilities(conn)
    extended = "SPECIAL-USE" in capabilities or "LIST-EXTENDED" in capabilities
    if patterns is not None:
        chosen: dict[str, ImapFolder] = {}
        for pattern in patterns:
            found = [f for f in _list(conn, pattern, extended) if _selectable(f)]
            if not found:
                stats.skip(f"folder {pattern!r}", "no such folder")
            chosen.update((f.name, f) for f in found)
        return list(chosen.values())
    foreign = _other_namespaces(conn) if "NAMESPACE" in capabilities else ()
    chosen_default = [
        folder
        for folder in _list(conn, "*", extended)
        if _selectable(folder) and _wanted(folder) and not folder.wire_name.startswith(foreign)
    ]
    # INBOX first, then by name: a deterministic order for a deterministic training set.
    return sorted(chosen_default, key=lambda f: (f.name.upper() != INBOX, f.name))


def _list(conn: imaplib.IMAP4, pattern: str, extended: bool) -> list[ImapFolder]:
    quoted = _quote(encode_name(pattern))
    typ, data = conn.list('""', f"{quoted} RETURN (SPECIAL-USE)" if extended else quoted)
    if typ != "OK":
        raise imaplib.IMAP4.error(f"LIST {pattern!r} failed: {data!r}")
    folders = []
    for item in data:
        folder = _parse_list_item(item)
        if folder is not None:
            folders.append(folder)
    return folders


def _parse_list_item(item: object) -> ImapFolder | None:
    """One LIST response: ``(\\HasNoChildren \\Sent) "/" Sent``; a name may be a literal."""
    head, literal = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
    if not isinstance(head, bytes):
        return None
    match = _LIST_LINE.match(head)
    if match is None:
        return None
    raw_attributes, raw_delimiter, raw_name = match.groups()
    if isinstance(literal, bytes):
        raw_name = literal
    else:
        raw_name = raw_name.strip()
        if raw_name.startswith(b'"') and raw_name.endswith(b'"') and len(raw_name) >= 2:
            raw_name = re.sub(rb"\\(.)", rb"\1", raw_name[1:-1])
    wire_name = raw_name.decode("utf-8", "replace")
    delimiter = None
    if raw_delimiter is not None:
        delimiter = re.sub(rb"\\(.)", rb"\1", raw_delimiter).decode("ascii", "replace")
    return ImapFolder(
        name=decode_name(wire_name),
        wire_name=wire_name,
        attributes=frozenset(raw_attributes.decode("ascii", "replace").split()),
        delimiter=delimiter,
    )


def _selectable(folder: ImapFolder) -> bool:
    return not {a.lower() for a in folder.attributes} & {"\\noselect", "\\nonexistent"}


def _wanted(folder: ImapFolder) -> bool:
    if {a.lower() for a in folder.attributes} & _SKIP_ATTRIBUTES:
        return False
    last = folder.name.rsplit(folder.delimiter, 1)[-1] if folder.delimiter else folder.name
    return last.lower() not in _SKIP_NAMES


def _other_namespaces(conn: imaplib.IMAP4) -> tuple[str, ...]:
    """Prefixes of the other-users and shared namespaces (``Shared/``, ``Public/``)."""
    typ, data = conn.namespace()
    if typ != "OK" or not data or not isinstance(data[0], bytes):
        return ()
    groups = _parse_sexp(data[0].decode("utf-8", "replace"))
    prefixes = []
    for group in groups[1:3]:  # personal, other users', shared
        for namespace in group if isinstance(group, list) else ():
            if isinstance(namespace, list) and namespace and isinstance(namespace[0], str):
                prefixes.append(namespace[0])
    return tuple(prefix for prefix in prefixes if prefix)


_SEXP_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')
_SExp: TypeAlias = "str | list[_SExp] | None"


def _parse_sexp(text: str) -> list[_SExp]:
    """A parenthesised IMAP response (NAMESPACE) as nested lists; NIL is None."""
    stack: list[list[_SExp]] = [[]]
    for match in _SEXP_TOKEN.finditer(text):
        opened, closed, quoted, atom = match.groups()
        if opened:
            stack.append([])
        elif closed:
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif quoted is not None:
            stack[-1].append(re.sub(r"\\(.)", r"\1", quoted))
        elif atom is not None:
            stack[-1].append(None if atom.upper() == "NIL" else atom)
    return stack[0]


# -- messages --------------------------------------------------------------------------------


def _read_folder(
    conn: imaplib.IMAP4, folder: ImapFolder, url: str, max_bytes: int, stats: ReadStats
) -> Iterator[Mail]:
    try:
        typ, data = conn.select(_quote(folder.wire_name), readonly=True)  # EXAMINE
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as err:  # BAD: a name this server will not take
        typ, data = "BAD", [str(err).encode()]
    if typ != "OK":
        stats.skip(f"folder {folder.name!r}", f"EXAMINE refused: {_text(data)}")
        return
    if _text(data) in ("", "0"):  # EXISTS 0: nothing to fetch
        return
    _, validity = conn.response("UIDVALIDITY")
    uidvalidity = _text(validity) or "0"
    # One short line per message; a UID SEARCH answer is one line, which imaplib refuses past
    # 1 MB (about 150,000 messages).
    typ, data = conn.uid("FETCH", "1:*", "(UID)")
    uids = _uids(data) if typ == "OK" else []
    folder_url = f"{url}/{quote(folder.name)};UIDVALIDITY={uidvalidity}"
    for start in range(0, len(uids), FETCH_BATCH):
        batch = ",".join(uids[start : start + FETCH_BATCH])
        typ, data = conn.uid("FETCH", batch, f"(UID RFC822.SIZE BODY.PEEK[]<0.{max_bytes}>)")
        if typ != "OK":
            stats.skip(f"folder {folder.name!r}", f"FETCH refused: {_text(data)}")
            continue
        for uid, size, body in _fetched(data):
            where = f"{folder_url}/;UID={uid}"
            try:
                mail = parse_mail(body, folder=folder.name, path=where, size=size)
            except MailParseError as err:
                stats.skip(where, str(err))
                continue
            stats.read += 1
            yield mail


def _uids(data: list[Any]) -> list[str]:
    """The UIDs of a ``FETCH (UID)`` answer, ascending."""
    found = set()
    for item in data:
        match = _FETCH_UID.search(item) if isinstance(item, bytes) else None
        if match is not None:
            found.add(int(match.group(1)))
    return [str(uid) for uid in sorted(found)]


def _fetched(data: list[Any]) -> Iterator[tuple[str, int | None, bytes]]:
    """(UID, RFC822.SIZE, body) from imaplib's FETCH data.

    imaplib gives each message as a tuple (text up to the literal, literal bytes) followed by
    the rest of the line as bytes; servers may put UID or RFC822.SIZE in either part.
    """
    records: list[tuple[bytes, bytes]] = []
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            head, body = item
            if isinstance(head, bytes) and isinstance(body, bytes):
                records.append((head, body))
        elif isinstance(item, bytes) and records and not _FETCH_START.match(item):
            head, body = records[-1]
            records[-1] = (head + b" " + item, body)
    for meta, body in records:
        uid = _FETCH_UID.search(meta)
        size = _FETCH_SIZE.search(meta)
        if uid is not None:
            yield uid.group(1).decode(), int(size.group(1)) if size else None, body


# -- names -----------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: list[Any] | None) -> str:
    return " ".join(
        item.decode("utf-8", "replace") for item in data or () if isinstance(item, bytes)
    ).strip()


def _base_url(username: str, host: str, port: int, security: Security) -> str:
    default = 993 if security is Security.IMPLICIT_TLS else 143
    netloc = host if port == default else f"{host}:{port}"
    return f"imap://{quote(username, safe='')}@{netloc}"
