"""A fake of the engine's upstream link for unit tests of the history read: folders in memory.

Only the calls history_reader.py and history_keeper.py make, answered from lists of messages
(UID = position + 1, INTERNALDATE given per message). It records the commands, so tests can
tell what was read and what was not; the real server is in tests/integration.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import cast

from commsproxy.imap.responses import Fetched, ListedMailbox, MailboxInfo
from commsproxy.triage.upstream import CommandRefused, Upstream, UpstreamImapError

_DATE = re.compile(r"(SINCE|BEFORE) (\d+)-(\w{3})-(\d{4})")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock:
    """Monotonic seconds that pass only when a fetch says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeUpstream:
    def __init__(
        self,
        folders: dict[str, list[tuple[datetime, bytes]]],
        attributes: dict[str, set[str]] | None = None,
        *,
        foreign: tuple[str, ...] = (),
        clock: Clock | None = None,
        fetch_seconds: float = 0.0,
        refuse: frozenset[str] = frozenset(),
    ) -> None:
        self.folders = folders
        self.attributes = attributes or {}
        self.foreign = foreign
        self.clock = clock
        self.fetch_seconds = fetch_seconds
        self.refuse = refuse
        self.commands: list[str] = []
        self.selected: str | None = None
        self.broken_after: int | None = None  # fetches before the link "drops"

    def as_upstream(self) -> Upstream:
        return cast(Upstream, self)

    async def foreign_namespaces(self) -> tuple[str, ...]:
        return self.foreign

    async def list_mailboxes(
        self, pattern: str = "*", *, special_use: bool = False
    ) -> list[ListedMailbox]:
        names = [*self.folders, *self.attributes]
        return [
            ListedMailbox(name, "/", frozenset(a.lower() for a in self.attributes.get(name, ())))
            for name in dict.fromkeys(names)
        ]

    async def status(self, name: str, items: str) -> dict[str, int]:
        self.commands.append(f"STATUS {name}")
        return {"UIDNEXT": len(self.folders[name]) + 1, "UIDVALIDITY": 7}

    async def examine(self, name: str) -> MailboxInfo:
        self.commands.append(f"EXAMINE {name}")
        if name in self.refuse:
            raise CommandRefused(f"fake: EXAMINE {name}: NO no such mailbox")
        self.selected = name
        return MailboxInfo(len(self.folders[name]), 7, len(self.folders[name]) + 1)

    async def select(self, name: str) -> MailboxInfo:
        self.commands.append(f"SELECT {name}")
        self.selected = name
        return MailboxInfo(len(self.folders.get(name, [])), 7, None)

    async def search(self, criteria: str) -> list[int]:
        assert self.selected is not None
        self.commands.append(f"SEARCH {self.selected} {criteria}")
        messages = self.folders[self.selected]
        uids = range(1, len(messages) + 1)
        if criteria.startswith("UID "):
            low = int(criteria.split()[1].split(":")[0])
            return [uid for uid in uids if uid >= low] or [len(messages)]  # like a server: *
        bounds = {
            kind: _day(day, month, year) for kind, day, month, year in _DATE.findall(criteria)
        }
        return [
            uid
            for uid in uids
            if ("SINCE" not in bounds or messages[uid - 1][0] >= bounds["SINCE"])
            and ("BEFORE" not in bounds or messages[uid - 1][0] < bounds["BEFORE"])
        ]

    async def fetch_headers(self, uids: list[int], fields: tuple[str, ...]) -> list[Fetched]:
        assert self.selected is not None
        self.commands.append(f"FETCH {self.selected} {min(uids)}:{max(uids)}")
        if self.broken_after is not None:
            if self.broken_after == 0:
                raise UpstreamImapError("fake: connection lost")
            self.broken_after -= 1
        if self.clock is not None:
            self.clock.now += self.fetch_seconds
        messages = self.folders[self.selected]
        return [Fetched(uid, frozenset(), header=messages[uid - 1][1]) for uid in sorted(uids)]

    def fetched(self, folder: str) -> list[str]:
        return [c for c in self.commands if c.startswith(f"FETCH {folder} ")]


def _day(day: str, month: str, year: str) -> datetime:
    return datetime(int(year), _MONTHS.index(month) + 1, int(day), tzinfo=UTC)
