"""A census of a user's mail on the test Dovecot after faults: what a crash must never change.

``Census.take`` reads every private mailbox of the user (and the account folders named) with
``doveadm``, Message-ID, UID and flags of each copy. ``Census.problems`` lists, in words, every
way the mail is not where the engine's rules put it:

- each delivered message exactly once across the user's mailboxes (none lost, none doubled);
- nothing left in a hold mailbox that was released (``released``), and no message marked
  ``$Released`` still in a hold mailbox (a release marks, then moves);
- a message back in INBOX that was held (``$Later`` or ``$Bulk``) is marked ``$Released``;
  every delivered message in INBOX is triaged (``$Triaged``);
- the digests: at most one per release in the store's release log (their Message-IDs are made
  from the release), none that no release made, and one for every release that moved mail;
- each account folder holds one copy of each filed message, and every message marked ``$Filed``
  is there.

``assert_sound`` raises with all problems at once, so one failing run says everything.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from commsproxy.imap.names import BULK_KEYWORD, DIGEST, FILED, INBOX, LATER, RELEASED, TRIAGED
from commsproxy.triage.state_store import Release, StateStore
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import fetch_fields

__all__ = ["Census", "Copy", "assert_sound", "digest_id"]

_HELD = frozenset({LATER, BULK_KEYWORD})
_NOT_THE_USERS = ("Public/", "Shared/")  # other namespaces: account folders are counted apart


@dataclass(frozen=True)
class Copy:
    mailbox: str
    uid: int
    flags: frozenset[str]


@dataclass
class Census:
    user: str
    copies: dict[str, list[Copy]] = field(default_factory=lambda: defaultdict(list))
    folders: dict[str, dict[str, int]] = field(default_factory=dict)  # folder -> id -> copies

    @classmethod
    def take(cls, dovecot: Dovecot, user: str, folders: Iterable[str] = ()) -> Census:
        census = cls(user)
        listed = dovecot.doveadm("mailbox", "list", "-u", user).split("\n")
        mailboxes = [m for m in listed if m and not m.startswith(_NOT_THE_USERS)]
        for mailbox in mailboxes:
            for record in fetch_fields(dovecot, user, mailbox, "uid flags hdr.message-id"):
                flags = frozenset(record.get("flags", "").split()) - {"\\Recent"}
                copy = Copy(mailbox, int(record.get("uid", "0")), flags)
                census.copies[record.get("hdr.message-id", "")].append(copy)
        for folder in folders:
            counts: dict[str, int] = defaultdict(int)
            for record in fetch_fields(dovecot, user, folder, "hdr.message-id"):
                counts[record.get("hdr.message-id", "")] += 1
            census.folders[folder] = dict(counts)
        return census

    def problems(
        self,
        delivered: Collection[str],
        *,
        holds: Collection[str],
        released: Collection[str] = (),
        store: Path | None = None,
        login: str | None = None,
    ) -> list[str]:
        """What is wrong; ``released``: hold mailboxes that must be empty of delivered mail;
        ``store``/``login``: the state directory and login whose release log the digests
        are checked against."""
        found: list[str] = []
        for mid in sorted(delivered):
            copies = self.copies.get(mid, [])
            if len(copies) != 1:
                found.append(f"{mid}: {len(copies)} copies {[(c.mailbox, c.uid) for c in copies]}")
        for mid, copies in sorted(self.copies.items()):
            for copy in copies:
                if copy.mailbox in holds and RELEASED in copy.flags:
                    found.append(f"{mid}: marked $Released but still in {copy.mailbox}")
                if mid in delivered and copy.mailbox in released and copy.mailbox in holds:
                    found.append(f"{mid}: still in {copy.mailbox} after its release")
                if copy.mailbox == INBOX and mid in delivered:
                    if copy.flags & _HELD and RELEASED not in copy.flags:
                        found.append(f"{mid}: held once, in INBOX without $Released")
                    if TRIAGED not in copy.flags:
                        found.append(f"{mid}: in INBOX untriaged {sorted(copy.flags)}")
        found += self._digest_problems(store, login)
        found += self._filing_problems()
        return found

    def digests(self) -> dict[str, int]:
        """Message-ID -> copies of the digests in the user's mailboxes."""
        return {
            mid: len(copies)
            for mid, copies in self.copies.items()
            if mid.startswith("<digest-") or any(DIGEST in c.flags for c in copies)
        }

    def _digest_problems(self, store: Path | None, login: str | None) -> list[str]:
        digests = self.digests()
        found = [f"digest {mid}: {n} copies" for mid, n in sorted(digests.items()) if n != 1]
        if store is None or login is None:
            return found
        with StateStore.open(store) as opened:
            releases = opened.recent_releases(login, 100_000)
            unfinished = opened.unfinished_releases(login)
        found += [f"release {r.id} of {r.batch} never finished" for r in unfinished]
        made = {digest_id(login, r): r for r in releases}
        found += [f"digest {mid}: no release made it" for mid in sorted(set(digests) - set(made))]
        for mid, release in sorted(made.items()):
            if release.moved and mid not in digests:
                found.append(f"release {release.id} of {release.batch} moved mail, no digest")
        return found

    def _filing_problems(self) -> list[str]:
        found = []
        filed = {m for m, copies in self.copies.items() if any(FILED in c.flags for c in copies)}
        for folder, counts in self.folders.items():
            found += [f"{folder}: {mid} {n} times" for mid, n in sorted(counts.items()) if n > 1]
            found += [f"{mid}: $Filed, not in {folder}" for mid in sorted(filed - set(counts))]
        return found


def digest_id(login: str, release: Release) -> str:
    """The digest Message-ID the releaser derives from a release (triage/release.py)."""
    key = f"{login}\0{release.batch}\0{release.id}\0{release.started.isoformat()}"
    return f"<digest-{hashlib.sha256(key.encode()).hexdigest()[:24]}@commsproxy.localhost>"


def assert_sound(
    census: Census,
    delivered: Collection[str],
    *,
    holds: Collection[str],
    released: Collection[str] = (),
    store: Path | None = None,
    login: str | None = None,
    context: str = "",
) -> None:
    problems = census.problems(delivered, holds=holds, released=released, store=store, login=login)
    assert not problems, f"{context}\n" + "\n".join(problems)
