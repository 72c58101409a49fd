"""Which sent message answered which received one: the matching that labels and rebuilds read.

Kept apart from labels.py so that rebuild.py, which labels.py calls, can read the matching
without importing labels back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from commsproxy.classifier.mail import Mail
from commsproxy.classifier.quotes import QuotedHeader

__all__ = ["MATCH_METHODS", "MatchMethod", "Reply", "ReplyEvent", "ReplyMatching"]

MatchMethod = Literal["header", "quote", "subject"]
MATCH_METHODS: tuple[MatchMethod, ...] = ("header", "quote", "subject")


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """The user answered (or forwarded) a message from ``sender`` received at ``received``."""

    sender: str
    received: datetime
    replied: datetime
    forwarded: bool = False

    @property
    def latency(self) -> timedelta:
        return max(self.replied - self.received, timedelta(0))


@dataclass(frozen=True, slots=True)
class Reply:
    """The first answer to a received message: which sent message, found how, how late."""

    sent: Mail
    method: MatchMethod
    forwarded: bool
    latency: timedelta


@dataclass(slots=True)
class ReplyMatching:
    """Deduplicated mail split into received and sent, and the first reply to each received one."""

    received: list[Mail]  # not sent, not from the user; dated and undated, in input order
    sent: list[Mail]  # in a sent folder, or from the user wherever it was found
    user_addresses: frozenset[str]
    duplicates: int
    # Message-ID of every received copy, dropped ones too -> index into received: Enron's copies
    # have their own Message-IDs, and a reply or an override may name any of them.
    ids: dict[str, int] = field(default_factory=dict)
    replies: dict[int, Reply] = field(default_factory=dict)  # index into received -> first reply
    # Replies whose quoted original is not in the mailbox (rebuild.py makes it from the quote),
    # and, from those whose original is, how far the quoted local time was from its Date.
    unmatched_quotes: list[tuple[Mail, QuotedHeader]] = field(default_factory=list)
    quote_offsets: Counter[timedelta] = field(default_factory=Counter)

    @property
    def matches(self) -> dict[MatchMethod, int]:
        counts = Counter(reply.method for reply in self.replies.values())
        return {method: counts[method] for method in MATCH_METHODS}

    @property
    def reply_events(self) -> list[ReplyEvent]:
        events = []
        for index, reply in self.replies.items():
            mail = self.received[index]
            # Only dated messages are ever matched.
            assert mail.date is not None
            assert reply.sent.date is not None
            events.append(ReplyEvent(mail.sender, mail.date, reply.sent.date, reply.forwarded))
        events.sort(key=lambda event: event.replied)
        return events
