"""Putting mail into the shared account folders: once per message, whoever files it first.

Received mail is copied (``UID COPY``) during triage, before the engine tags or holds it, so the
team's copy carries none of this user's keywords. Sent mail and filings that failed wait in the
store's queue and are appended (``\\Seen $Sent`` for sent mail) with retries.

"Once" across a team: before copying, the folder is searched for the Message-ID, and a copy
found there counts only if its body is the same (``body_digest.py``): a second message with the
same Message-ID and another body is a message of its own and is filed too. Two colleagues'
proxies can still both miss each other's copy and copy at the same instant; so after copying,
each looks again and, among copies with the same Message-ID and body, keeps the one with the
lowest UID, removing the others (``UID EXPUNGE`` of exactly those UIDs). Every proxy picks the
same copy, so they never disagree, and a race cut short by a crash is repaired the next time the
message is filed. This is the one removal commsproxy does outside a move: of a second copy of a
message that stays in the folder.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import AccountsConfig
from ..imap.commands import quote_string
from ..imap.names import INBOX
from .account_match import AccountGuesser, AccountRules, Filing
from .body_digest import message_digest, text_digest
from .filed_about import HEADER_FIELDS, filed_about
from .state_store import Filed, QueuedFiling, StateStore
from .upstream import CommandRefused, Upstream

__all__ = [
    "Filer",
    "FilingSetup",
    "accounts_root",
    "message_id_of",
    "search_message_ids",
]

log = logging.getLogger("commsproxy.filing")

_SEARCH_CHUNK = 50  # Message-IDs per SEARCH (nested ORs)
_MAX_QUEUED = 25 << 20  # a received message larger than this is not queued for a retry
_RETRY = (60, 300, 1800, 3600, 6 * 3600)  # seconds before the next attempt
_MESSAGE_ID = re.compile(
    rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(?:<([^>\r\n]*)>|([^\s<>]+))",  # may be folded
    re.IGNORECASE | re.MULTILINE,
)


def message_id_of(header: bytes) -> str | None:
    """The Message-ID as ``<id>``, also when the header lacks the brackets (as parse_mail)."""
    match = _MESSAGE_ID.search(header)
    if match is None:
        return None
    return "<" + (match.group(1) or match.group(2)).decode("ascii", "replace").strip() + ">"


def _bracketed(message_id: str | None) -> str | None:
    """A Message-ID as ``<id>``, as message_id_of gives it (the store keeps it bare)."""
    bare = (message_id or "").strip().strip("<>").strip()
    return f"<{bare}>" if bare else None


async def search_message_ids(up: Upstream, message_ids: Iterable[str]) -> list[int]:
    """UIDs in the selected mailbox whose Message-ID header contains one of these."""
    wanted = sorted(set(message_ids))
    uids: set[int] = set()
    for start in range(0, len(wanted), _SEARCH_CHUNK):
        # Without the brackets: SEARCH HEADER matches substrings, so a header written without
        # them matches too; callers compare the exact Message-ID afterwards.
        chunk = wanted[start : start + _SEARCH_CHUNK]
        keys = [f"HEADER Message-ID {quote_string(mid.strip('<>'))}" for mid in chunk]
        uids.update(await up.search("OR " * (len(keys) - 1) + " ".join(keys)))
    return sorted(uids)


async def accounts_root(up: Upstream, configured: str | None) -> str:
    """The accounts root in the server's syntax: configured, else the public namespace's
    prefix + ``Accounts``, else a private ``Accounts``."""
    if configured is None:
        configured = ((await up.public_prefix()) or "") + "Accounts"
    return await up.server_name(configured.strip("/"))


@dataclass(frozen=True)
class FilingSetup:
    """What a login's filing needs besides a connection; shared by the engine and the SMTP side."""

    rules: AccountRules
    guesser: AccountGuesser | None = None

    @property
    def config(self) -> AccountsConfig:
        return self.rules.config


class Filer:
    """Filing on one upstream connection (the engine's worker, which has INBOX selected)."""

    def __init__(
        self,
        upstream: Upstream,
        store: StateStore,
        login: str,
        setup: FilingSetup,
        clock: Callable[[], datetime],
    ) -> None:
        self.up = upstream
        self.store = store
        self.login = login
        self.setup = setup
        self.clock = clock
        self.root = ""  # the accounts root in the server's syntax, set by prepare()
        self._delimiter = "/"
        self._known: set[str] = set()  # folders seen to exist

    def __str__(self) -> str:
        return f"filing[{self.login}]"

    async def prepare(self) -> None:
        """Find the accounts root and carry out renames of configured accounts."""
        self._delimiter = await self.up.delimiter()
        self.root = await accounts_root(self.up, self.setup.config.root)
        for account in self.setup.config.accounts:
            before = self.store.account_folder(self.login, account.key)
            if before is not None and before != account.name:
                await self._rename(before, account.name)
            self.store.set_account_folder(self.login, account.key, account.name)

    def folder(self, account: str) -> str:
        return f"{self.root}{self._delimiter}{account}"

    async def _rename(self, old: str, new: str) -> None:
        source, target = self.folder(old), self.folder(new)
        if not await self.up.list_mailboxes(source) or await self.up.list_mailboxes(target):
            return  # a colleague's proxy renamed it already, or it never existed
        try:
            await self.up.rename(source, target)
            log.info("%s: renamed account folder %s to %s", self, source, target)
        except CommandRefused as err:
            log.error("%s: cannot rename %s to %s: %s", self, source, target, err)

    async def _ensure(self, folder: str) -> None:
        if folder in self._known:
            return
        if await self.up.ensure_mailbox(folder):
            await self._share(folder)
        self._known.add(folder)

    async def _share(self, folder: str) -> None:
        config = self.setup.config
        if not config.share_with or not self.up.has("ACL"):
            return
        for who in config.share_with:
            try:
                await self.up.set_acl(folder, who, config.share_rights)
            except CommandRefused as err:
                log.warning("%s: cannot give %s rights on %s: %s", self, who, folder, err)

    # -- received mail ------------------------------------------------------------------------

    async def file_incoming(
        self,
        items: Sequence[tuple[int, str | None, Filing]],
        direction: str = "incoming",
        about: Mapping[int, tuple[str, str]] | None = None,
    ) -> set[int]:
        """Copy INBOX messages ``(uid, message_id, filing)`` to their folders.

        Returns the UIDs now in their folder (copied, or a colleague's copy found), which get
        ``$Filed``. Leaves INBOX selected. A refusal is logged and queued for a retry.
        ``about``: UID → (peer, subject) kept with each filing (``filed_about.mail_about`` of
        the parsed message); without it, they are read from the server with one FETCH.
        """
        by_account: dict[str, list[tuple[int, str | None, Filing]]] = {}
        for item in items:
            by_account.setdefault(item[2].account, []).append(item)
        done: set[int] = set()
        records: list[Filed] = []
        try:
            if about is None:
                about = await self._about([uid for uid, _, _ in items], direction)
            for account, group in by_account.items():
                folder = self.folder(account)
                try:
                    done |= await self._copy_group(folder, group, records, direction, about)
                except CommandRefused as err:
                    log.error(
                        "%s: cannot file %d message(s) into %s: %s (the mail itself is fine; "
                        "filing is retried later)", self, len(group), folder, err,
                    )  # fmt: skip
                    await self.up.select(INBOX)
                    await self._queue_failed(group, str(err))
        finally:
            if self.up.selected != INBOX:
                await self.up.select(INBOX)
            self.store.record_filings(records)
        return done

    async def _about(self, uids: Sequence[int], direction: str) -> dict[int, tuple[str, str]]:
        """UID → (peer, subject) in INBOX, for the page; refused, the filing goes on without."""
        try:
            fetched = await self.up.fetch(uids, f"(UID {HEADER_FIELDS})") if uids else []
        except CommandRefused as err:
            log.warning("%s: cannot read the senders and subjects of %d message(s) to file: %s",
                        self, len(uids), err)  # fmt: skip
            return {}
        return {f.uid: filed_about(direction, f.header) for f in fetched}

    async def _copy_group(
        self,
        folder: str,
        group: list[tuple[int, str | None, Filing]],
        records: list[Filed],
        direction: str,
        about: Mapping[int, tuple[str, str]],
    ) -> set[int]:
        await self._ensure(folder)
        present = await self._present(folder, [mid for _, mid, _ in group if mid])
        filed = await self._digests([uid for uids in present.values() for uid in uids])
        await self._keep_one(folder, present, filed)  # repairs a race a crash cut short
        await self.up.select(INBOX)
        same_id = [uid for uid, mid, _ in group if mid in present]
        mine = await self._digests(same_id)
        todo: list[int] = []
        for uid, mid, _ in group:
            if mid is None or mid not in present:
                todo.append(uid)
            elif mine.get(uid) in {filed.get(copy) for copy in present[mid]}:
                log.info("%s: uid %d %s is in %s already (same body); not filed again",
                         self, uid, mid, folder)  # fmt: skip
            else:
                log.info("%s: uid %d has the Message-ID %s of a message in %s but another body; "
                         "filing it too", self, uid, mid, folder)  # fmt: skip
                todo.append(uid)
        copied = await self.up.copy(todo, folder) if todo else {}
        ids = {uid: mid for uid, mid, _ in group if mid}
        await self._settle(folder, [ids[uid] for uid in copied if uid in ids])
        now = self.clock()
        for uid, mid, filing in group:
            outcome = "copied" if uid in todo else "present"
            peer, subject = about.get(uid, ("", ""))
            records.append(Filed(self.login, mid, filing.account, direction, outcome,
                                 filing.reason, now, peer, subject))  # fmt: skip
            log.info("%s: uid %d %s %s (%s)", self, uid, outcome, folder, filing.reason)
        return {uid for uid, _, _ in group}

    async def _queue_failed(self, group: list[tuple[int, str | None, Filing]], error: str) -> None:
        """Keep the message for a later APPEND; the INBOX copy may be held or moved by then."""
        fetched = await self.up.fetch([uid for uid, _, _ in group], "(UID RFC822.SIZE BODY.PEEK[])")
        by_uid = {f.uid: f for f in fetched}
        now = self.clock()
        for uid, mid, filing in group:
            message = by_uid.get(uid)
            if message is None or len(message.text) > _MAX_QUEUED:
                continue
            row = self.store.queue_filing(
                self.login, filing.account, mid, message.text, "", "incoming", filing.reason, now
            )
            self.store.filing_failed(row, error, now + timedelta(seconds=_RETRY[0]))

    # -- the queue: sent mail and retries -----------------------------------------------------

    async def drain(self, *, everything: bool = False) -> None:
        """Append what is due in the queue (``everything``: all of it, as after a restart,
        when the cause may be fixed); on refusal, try again later, backing off."""
        now = self.clock()
        due = self.store.due_filings(self.login, now + timedelta(days=3650) if everything else now)
        try:
            for queued in due:
                await self._append_one(queued)
        finally:
            if due and self.up.selected != INBOX:
                await self.up.select(INBOX)

    async def _append_one(self, queued: QueuedFiling) -> None:
        folder = self.folder(queued.account)
        try:
            await self._ensure(folder)
            duplicate = await self._filed_already(folder, queued)
            outcome = "present"
            if not duplicate:
                flags = queued.flags.split()
                uid = await self.up.append(folder, queued.content, flags, self.clock())
                mid = _bracketed(queued.message_id)
                if mid and uid is not None:
                    await self._settle(folder, [mid])
                outcome = "appended"
        except CommandRefused as err:
            delay = _RETRY[min(queued.attempts, len(_RETRY) - 1)]
            log.error(
                "%s: cannot file %s into %s: %s; trying again in %d min (the message was "
                "sent and is fine)", self, queued.message_id or "a message", folder, err,
                delay // 60,
            )  # fmt: skip
            self.store.filing_failed(queued.id, str(err), self.clock() + timedelta(seconds=delay))
            return
        peer, subject = filed_about(queued.direction, queued.content)
        self.store.record_filings(
            [Filed(self.login, queued.message_id, queued.account, queued.direction, outcome,
                   queued.reason, self.clock(), peer, subject)]
        )  # fmt: skip
        self.store.filing_done(queued.id)
        log.info("%s: %s %s %s (%s)", self, queued.message_id, outcome, folder, queued.reason)

    # -- once per folder ----------------------------------------------------------------------

    async def _filed_already(self, folder: str, queued: QueuedFiling) -> bool:
        """Whether the folder has this message: its Message-ID with the same body."""
        mid = _bracketed(queued.message_id)
        if not mid:
            return False
        copies = (await self._present(folder, [mid])).get(mid, [])
        if not copies:
            return False
        if message_digest(queued.content) in (await self._digests(copies)).values():
            log.info("%s: %s is in %s already (same body); not filed again", self, mid, folder)
            return True
        log.info("%s: %s is the Message-ID of a message in %s with another body; filing this "
                 "one too", self, mid, folder)  # fmt: skip
        return False

    async def _digests(self, uids: Sequence[int]) -> dict[int, str]:
        """UID → body digest, in the selected (or examined) mailbox."""
        if not uids:
            return {}
        fetched = await self.up.fetch(uids, "(UID BODY.PEEK[TEXT])")
        return {f.uid: text_digest(f.text) for f in fetched}

    async def _present(self, folder: str, message_ids: Iterable[str]) -> dict[str, list[int]]:
        """Which of these Message-IDs the folder has, with their UIDs (ascending)."""
        wanted = set(message_ids)
        found: dict[str, list[int]] = {}
        if not wanted:
            return found
        await self.up.examine(folder)
        uids = await search_message_ids(self.up, wanted)
        # SEARCH HEADER matches substrings: read each candidate's own Message-ID.
        for fetched in await self.up.fetch(uids, "(UID BODY.PEEK[HEADER])") if uids else []:
            mid = message_id_of(fetched.header)
            if mid in wanted:
                found.setdefault(mid, []).append(fetched.uid)
        return {mid: sorted(uids) for mid, uids in found.items()}

    async def _settle(self, folder: str, message_ids: list[str]) -> None:
        """After copying: if a colleague's copy got there too, keep only the earliest."""
        if message_ids:
            await self._keep_one(folder, await self._present(folder, message_ids))

    async def _keep_one(
        self, folder: str, present: dict[str, list[int]], digests: dict[int, str] | None = None
    ) -> None:
        """One copy per Message-ID and body: the lowest UID stays. Every proxy picks the same
        one, and removing a copy another proxy removed already is a no-op, so they never
        disagree. The folder is selected or examined; ``digests`` when known already."""
        several = [uid for uids in present.values() if len(uids) > 1 for uid in uids]
        if not several:
            return
        if digests is None or any(uid not in digests for uid in several):
            digests = await self._digests(several)
        extra: list[int] = []
        for uids in present.values():
            seen: set[str] = set()
            for uid in uids:  # ascending: the earliest copy of each body stays
                digest = digests.get(uid)
                if digest is None:
                    continue  # gone meanwhile
                if digest in seen:
                    extra.append(uid)
                seen.add(digest)
        extra.sort()
        if not extra:
            return
        await self.up.select(folder)
        await self.up.add_flags(extra, ["\\Deleted"])
        await self.up.expunge_uids(extra)
        log.info("%s: %d copies filed twice at once removed from %s", self, len(extra), folder)
