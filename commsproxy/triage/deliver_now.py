"""``commsproxy deliver MESSAGE-ID``: one held message back to INBOX now, through ``run`` or not.

The user says a held message should have come at once. That is a release of one message and a
correction at the same time: it is marked ``$Released`` like a release (so it is never triaged
again) and moved back to INBOX, and the same correction as a drag out of a hold mailbox
(``rescue``, urgent) is recorded for ``commsproxy train``.

Order, for crash safety, as everywhere in triage: the request is queued in the state store
first; whoever serves it finds the message in a hold mailbox (by Message-ID, checked exactly),
marks the request started with that mailbox, records the correction (once), writes
``$Released`` and only then moves it (``UID MOVE``, never a delete or a plain EXPUNGE). A cut
anywhere leaves the request pending; the next try finds the message still held (and moves it)
or, the request being started, in INBOX with ``$Released`` (done already). A message that is
not held -- in INBOX already, or unknown -- gets a clear refusal and nothing changes.

A running ``run`` (it holds the run lock) serves the request through the login's own engine,
between two of its steps (hub.py), so it never races the worker; without ``run`` the request is
served here over the login's own connection, which needs its ``password_command``. The wait for
``run`` is asynchronous, so the local page, on ``run``'s own loop, can await it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..classifier.mail import MailParseError, parse_mail
from ..config import Config
from ..imap.commands import quote_string
from ..imap.names import HELD_AS, INBOX, NORMAL, RELEASED, URGENT
from .runlock import running_pid
from .state_store import Correction, DeliverRequest, StateStore, StoreError
from .status_report import login_keys
from .upstream import Upstream

__all__ = [
    "DeliverNowError",
    "Delivered",
    "NotHeld",
    "bring_back",
    "deliver_held",
    "deliver_now",
    "deliver_without_run",
    "held_here",
    "normalize_message_id",
    "resolve_login",
]

log = logging.getLogger("commsproxy.triage")

#: How long to wait for a running ``run`` to serve the request, and how often to look.
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2

#: Serving a request without ``run``: ``(config, request)`` to what happened, in words.
DirectDeliver = Callable[[Config, DeliverRequest], Awaitable[str]]


class DeliverNowError(Exception):
    """The message was not delivered; the message says why and what becomes of the request."""


class NotHeld(Exception):
    """The message is not held (in INBOX already, or unknown): nothing was changed."""


@dataclass(frozen=True)
class Delivered:
    request: int
    by: Literal["run", "direct"]
    detail: str  # what happened, in words
    #: The message's sender and subject as triage saw them; "" when the store has no decision.
    sender: str = ""
    subject: str = ""


def normalize_message_id(text: str) -> str:
    """A Message-ID as the store keeps it (without <>), or ValueError saying what is wrong."""
    value = text.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    if not value:
        raise ValueError("the Message-ID is empty: give it as <id@host> or id@host")
    if len(value) > 900 or any(not 33 <= ord(c) <= 126 for c in value) or "<" in value:
        raise ValueError(
            f"{text!r} is not a Message-ID: expected printable ASCII without spaces, "
            "as in <id@host> (the message's Message-ID header)"
        )
    return value


def resolve_login(config: Config, store: StateStore | None, login: str | None, mid: str) -> str:
    """The login key a request for ``mid`` belongs to; ValueError when it cannot be told."""
    keys = login_keys(config)
    if login is not None:
        wanted = login.strip().lower()
        for key in keys:
            if key.lower() == wanted:
                return key
        raise ValueError(f"no [[login]] with username {login!r} (logins: {', '.join(keys)})")
    if len(keys) == 1:
        return keys[0]
    if store is not None:
        found = {d.login for d in store.decisions_for_message_id(mid) if d.login in keys}
        if len(found) == 1:
            return found.pop()
    raise ValueError(
        f"several logins ({', '.join(keys)}): say which with --login"
        + ("" if store is None else f"; the state file does not tell for <{mid}>")
    )


async def deliver_held(
    worker: Upstream,
    store: StateStore,
    request: DeliverRequest,
    holds: Sequence[str],
    clock: Callable[[], datetime],
    fresh: Collection[str] = frozenset(),
) -> str:
    """Serve ``request`` over ``worker`` (logged in as its login): find the message in one of
    ``holds`` (server names), then record, mark and move it -- or, from the ``fresh`` ones
    (batches with ``reappend``), append it to INBOX as a fresh arrival and expunge exactly the
    original, as their releases do. Returns what happened in words; raises NotHeld when it is
    not held. Leaves INBOX selected."""
    try:
        detail = await _find_and_move(worker, store, request, holds, clock, fresh)
    except NotHeld:
        await _back_to_inbox(worker)
        raise
    await _back_to_inbox(worker)
    return detail


async def _back_to_inbox(worker: Upstream) -> None:
    """The engine's worker keeps INBOX selected between its steps."""
    if worker.selected != INBOX:
        await worker.select(INBOX)


async def _find_and_move(
    worker: Upstream,
    store: StateStore,
    request: DeliverRequest,
    holds: Sequence[str],
    clock: Callable[[], datetime],
    fresh: Collection[str],
) -> str:
    mid = request.message_id
    criterion = f"HEADER Message-ID {quote_string('<' + mid + '>')}"
    for mailbox in dict.fromkeys(holds):
        if not await worker.list_mailboxes(mailbox):
            continue  # never created: nothing is held there
        await worker.select(mailbox)
        found = await _exactly(worker, await worker.search(criterion), mid)
        live = {uid: held for uid, held in found.items() if not held.deleted}
        # Originals this request marked deleted after appending their copy (a re-append cut
        # before its UID EXPUNGE): only those, never the user's own deleted mail.
        left = [u for u, h in found.items() if h.deleted and h.released and request.started]
        if live or left:
            return await _move_back(
                worker, store, request, mailbox, live, left, clock, mailbox in fresh
            )
    await worker.select(INBOX)
    in_inbox = await _exactly(worker, await worker.search(criterion), mid)
    if in_inbox and request.started is not None:
        # A redo after a cut: the move this request started has happened.
        return f"<{mid}> delivered to INBOX (from {request.mailbox})"
    if in_inbox:
        raise NotHeld(f"<{mid}> is in INBOX already: it is not held")
    raise NotHeld(f"no held message has Message-ID <{mid}> (login {request.login})")


@dataclass(frozen=True)
class _Held:
    label: str  # the label it was held as
    sender: str
    subject: str
    deleted: bool = False
    released: bool = False


async def _exactly(worker: Upstream, uids: list[int], mid: str) -> dict[int, _Held]:
    """Of ``uids`` (a SEARCH matches substrings), those whose Message-ID is exactly ``mid``."""
    if not uids:
        return {}
    found: dict[int, _Held] = {}
    for fetched in await worker.fetch(uids, "(UID FLAGS BODY.PEEK[HEADER])"):
        try:
            mail = parse_mail(fetched.header)
        except MailParseError:
            continue
        if (mail.message_id or "").strip("<> ") == mid:
            label = next((HELD_AS[k] for k in fetched.flags if k in HELD_AS), NORMAL)
            deleted, released = "\\Deleted" in fetched.flags, RELEASED in fetched.flags
            found[fetched.uid] = _Held(label, mail.sender, mail.subject, deleted, released)
    return found


async def _move_back(
    worker: Upstream,
    store: StateStore,
    request: DeliverRequest,
    mailbox: str,
    live: dict[int, _Held],
    left: list[int],
    clock: Callable[[], datetime],
    reappend: bool,
) -> str:
    mid = request.message_id
    store.start_delivery(request.id, mailbox, clock())
    if live and not store.has_correction(request.login, mid, "rescue"):
        held = live[min(live)]
        store.record_correction(
            Correction(
                login=request.login, message_id=mid, kind="rescue", label=URGENT,
                previous=held.label, sender=held.sender, subject=held.subject, at=clock(),
            )
        )  # fmt: skip
    await bring_back(worker, mailbox, sorted(live), left, mid, clock, reappend)
    log.info("triage[%s]: delivered <%s> from %s on request", request.login, mid, mailbox)
    return f"<{mid}> delivered to INBOX (from {mailbox})"


async def held_here(worker: Upstream, mid: str) -> tuple[list[int], list[int]]:
    """The message ``mid`` (without <>) in the selected hold mailbox: the UIDs still held, and
    those marked ``$Released`` and deleted (their copy went to INBOX before a cut)."""
    criterion = f"HEADER Message-ID {quote_string('<' + mid + '>')}"
    found = await _exactly(worker, await worker.search(criterion), mid)
    live = sorted(uid for uid, held in found.items() if not held.deleted)
    return live, sorted(uid for uid, held in found.items() if held.deleted and held.released)


async def bring_back(
    worker: Upstream,
    mailbox: str,
    live: list[int],
    left: list[int],
    mid: str,
    clock: Callable[[], datetime],
    reappend: bool,
) -> None:
    """``live`` (held in the selected ``mailbox``) marked ``$Released`` and moved to INBOX --
    or, with ``reappend``, appended as fresh arrivals -- and ``left`` (originals whose copy is
    in INBOX already) expunged by UID. NotHeld when another program took all of it first."""
    uids = sorted(live)
    if uids:
        await worker.add_flags(uids, [RELEASED])
    if uids and reappend:
        await _append_copies(worker, mailbox, uids, mid, clock)
        left = [*left, *uids]
    elif uids:
        moved = await worker.move(uids, INBOX)
        if len(moved.gone) == len(uids) and not left:
            raise NotHeld(f"<{mid}> left {mailbox} meanwhile (another mail program moved it)")
    if left:
        await worker.expunge_uids(left)  # exactly the originals whose copy is in INBOX


async def _append_copies(
    worker: Upstream, mailbox: str, uids: list[int], mid: str, clock: Callable[[], datetime]
) -> None:
    """A fresh copy of each original in INBOX (new arrival date, ``$Released`` kept), unless
    an interrupted try appended it already; the originals are then marked deleted."""
    await worker.select(INBOX)
    criterion = f"KEYWORD {RELEASED} HEADER Message-ID {quote_string('<' + mid + '>')}"
    copied = await _exactly(worker, await worker.search(criterion), mid)
    await worker.select(mailbox)
    if not copied:
        for message in await worker.fetch(uids, "(UID FLAGS BODY.PEEK[])"):
            flags = [f for f in message.flags if f.lower() not in ("\\recent", "\\deleted")]
            await worker.append(INBOX, message.text, flags, clock())
    await worker.add_flags(uids, ["\\Deleted"])


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def deliver_without_run(config: Config, request: DeliverRequest) -> str:
    """Serve ``request`` without a running proxy, over the login's own connection (it needs
    the login's ``password_command``: the proxy is not there to lend the client's password)."""
    from .own_connection import own_connection

    entries = [e for e in config.logins if (e.username or "default") == request.login]
    if not entries:
        raise DeliverNowError(f"no [[login]] {request.login!r} in {config.path}")
    async with own_connection(entries[0], "delivering", DeliverNowError) as worker:
        names = {batch.name: await worker.server_name(batch.mailbox) for batch in config.batches}
        fresh = {names[batch.name] for batch in config.batches if batch.reappend}
        with StateStore.open(config.proxy.state_dir) as store:
            holds = [*names.values(), *store.hold_mailboxes(request.login)]  # and old ones
            return await deliver_held(worker, store, request, holds, _utcnow, fresh)


def _direct() -> DirectDeliver:
    return deliver_without_run


async def deliver_now(
    config: Config,
    login: str | None,
    message_id: str,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    direct: Callable[[], DirectDeliver] = _direct,
    wait: float | None = None,
    poll: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Callable[[], datetime] = _utcnow,
) -> Delivered:
    """Deliver the held message ``message_id`` (with or without <>) of ``login`` (None: the
    only one, or the one the state file knows it for) to INBOX now.

    Raises DeliverNowError when it was not delivered: bad input, not held (nothing changed),
    or not done yet (the message says whether the request stays queued).
    """
    wait = WAIT_SECONDS if wait is None else wait
    poll = POLL_SECONDS if poll is None else poll
    try:
        mid = normalize_message_id(message_id)
    except ValueError as err:
        raise DeliverNowError(str(err)) from None
    directory = (state_dir or config.proxy.state_dir).expanduser()
    try:
        with StateStore.open(directory) as store:
            try:
                key = resolve_login(config, store, login, mid)
            except ValueError as err:
                raise DeliverNowError(str(err)) from None
            seen = store.latest_decision_by_message_id(key, mid)
            sender, subject = (seen.sender, seen.subject) if seen else ("", "")
            request_id = store.request_delivery(key, mid, clock())
            pid = running_pid(directory)
            if pid is not None:
                who = f"commsproxy run (pid {pid})" if pid else "commsproxy run"
                on_waiting(who)
                deadline = monotonic() + wait
                while True:
                    request = store.delivery(request_id)
                    if request is None or request.completed is not None:
                        break
                    if monotonic() >= deadline:
                        raise DeliverNowError(
                            f"{who} has not delivered <{mid}> within {wait:g} s; the request "
                            "stays queued and it will deliver it when it gets to it"
                        )
                    await sleep(poll)
                return replace(_outcome(request, request_id, "run"), sender=sender, subject=subject)
            request = store.delivery(request_id)
            assert request is not None
            if state_dir is not None:
                config = _with_state_dir(config, directory)
            try:
                detail = await direct()(config, request)
            except NotHeld as err:
                store.complete_delivery(request_id, "refused", str(err), clock())
                raise DeliverNowError(str(err)) from None
            except DeliverNowError as err:
                store.complete_delivery(request_id, "refused", str(err), clock())
                raise
            except Exception as err:  # a cut link, a refused login: try again later
                raise DeliverNowError(
                    f"delivering <{mid}> failed: {err}; the request stays queued for "
                    "`commsproxy run`"
                ) from None
            store.complete_delivery(request_id, "delivered", detail, clock())
            return Delivered(request_id, "direct", detail, sender, subject)
    except StoreError as err:
        raise DeliverNowError(str(err)) from None


def _outcome(request: DeliverRequest | None, request_id: int, by: Literal["run"]) -> Delivered:
    if request is None or request.outcome is None:
        raise DeliverNowError(f"deliver request {request_id} is gone from the state file")
    if request.outcome != "delivered":
        raise DeliverNowError(request.detail or f"<{request.message_id}> was not delivered")
    return Delivered(request_id, by, request.detail or "delivered")


def _with_state_dir(config: Config, directory: Path) -> Config:
    import dataclasses

    return dataclasses.replace(config, proxy=dataclasses.replace(config.proxy, state_dir=directory))
