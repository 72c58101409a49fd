"""A per-login cap on the upstream IMAP connections commsproxy opens, for providers that set one.

Gmail allows 15 simultaneous IMAP connections per user and answers the next login with
``NO [ALERT] Too many simultaneous connections``, which mail programs show as a password
problem. (15: Lifewire's "Know the Simultaneous Gmail IMAP Connection Limit" and Canary Mail's
help on the error; Google's own help page, support.google.com/mail/answer/97150, said 10 when it
was written in 2008.) commsproxy counts the sessions it relays for a login and keeps room for
triage's own connections (its engine holds a watcher and a worker; a release or an account
listing may open one more), so a mail program beyond the cap gets a refusal that says why.

A login is checked twice: ``full`` before connecting (the common refusal costs no connection
and no token), and ``take`` once the link exists, which counts it only if there is still room
(two logins racing for the last place cannot both have it). A counted connection is its
upstream writer: it stops counting when that writer closes, which the relay does when the
session ends or its login fails. A login whose connection never came about was never counted.
"""

from __future__ import annotations

import asyncio

__all__ = ["GMAIL_IMAP_CONNECTIONS", "TRIAGE_CONNECTIONS", "ConnectionCap"]

GMAIL_IMAP_CONNECTIONS = 15
TRIAGE_CONNECTIONS = 3


class ConnectionCap:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, list[asyncio.StreamWriter]] = {}

    def open(self, key: str) -> int:
        """How many upstream connections of ``key`` are open now."""
        writers = [w for w in self._open.get(key, []) if not w.is_closing()]
        self._open[key] = writers
        return len(writers)

    def full(self, key: str) -> bool:
        return self.open(key) >= self.limit

    def take(self, key: str, writer: asyncio.StreamWriter) -> bool:
        """Count ``writer`` as one of ``key``'s connections; False (not counted) at the cap."""
        if self.full(key):
            return False
        self._open[key].append(writer)
        return True
