"""A per-login cap on the upstream IMAP connections commsproxy opens, for providers that set one.

Gmail allows 15 simultaneous IMAP connections per user and answers the next login with
``NO [ALERT] Too many simultaneous connections``, which mail programs show as a password
problem. (15: Lifewire's "Know the Simultaneous Gmail IMAP Connection Limit" and Canary Mail's
help on the error; Google's own help page, support.google.com/mail/answer/97150, said 10 when it
was written in 2008.) commsproxy counts the sessions it relays for a login and keeps room for
triage's own connections (its engine holds a watcher and a worker; a release or an account
listing may open one more), so a mail program beyond the cap gets a refusal that says why,
before anything reaches Gmail.

A slot is taken before connecting and holds the upstream writer once the link exists; it frees
itself when that writer closes (the relay closes it when the session ends or its login fails),
or, never connected, after ``pending_for`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["GMAIL_IMAP_CONNECTIONS", "TRIAGE_CONNECTIONS", "ConnectionCap", "Slot"]

GMAIL_IMAP_CONNECTIONS = 15
TRIAGE_CONNECTIONS = 3


@dataclass
class Slot:
    deadline: float  # until then a slot without a link counts
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    released: bool = False

    def hold(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def release(self) -> None:
        self.released = True

    def open(self, now: float) -> bool:
        if self.released:
            return False
        if self.writer is None:
            return now < self.deadline
        return not self.writer.is_closing()


class ConnectionCap:
    def __init__(
        self,
        limit: int,
        *,
        pending_for: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._pending_for = pending_for
        self._clock = clock
        self._slots: dict[str, list[Slot]] = {}

    def open(self, key: str) -> int:
        """How many connections of ``key`` are open (or being opened) now."""
        now = self._clock()
        slots = [s for s in self._slots.get(key, []) if s.open(now)]
        self._slots[key] = slots
        return len(slots)

    def take(self, key: str) -> Slot | None:
        """A slot for one more connection of ``key``, or None at the cap."""
        if self.open(key) >= self.limit:
            return None
        slot = Slot(self._clock() + self._pending_for)
        self._slots[key].append(slot)
        return slot
