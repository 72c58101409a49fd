"""Social history: how often and how fast the user answered a sender, strictly from the past.

In Priority Inbox the strongest signal is social: people you answer, and answer fast, write mail
that matters to you. For a message received at time ``t`` these features may use only what had
happened before ``t`` -- a reply sent after ``t`` is the future, and a model trained with it learns
to "predict" what it was shown (and then fails on new mail, whose replies do not exist yet).

:class:`SocialHistory` keeps, per sender and per sender domain, the sorted times of received
messages and of replies, plus the running median reply latency, so ``stats(sender, before)`` is
two bisects and a lookup. The domain view matters because a new contact at a known customer
domain is as important as the old one. Replies come from
:func:`commsproxy.classifier.labels.match_replies`: one matcher for labels and features.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from commsproxy.classifier.labels import LabelResult, ReplyEvent, match_replies
from commsproxy.classifier.mail import Mail

from .freemail import FREEMAIL

__all__ = ["FREEMAIL", "NO_HISTORY", "ReplyEvent", "SenderStats", "SocialHistory", "domain_of"]


@dataclass(frozen=True, slots=True)
class SenderStats:
    """What the user did with one sender's (or domain's) mail before a moment."""

    received: int  # messages received before the moment
    replied: int  # replies (or forwards) sent before the moment
    median_reply_minutes: float | None  # over those replies; None without any
    last_reply_days_ago: float | None  # since the latest of them; None without any

    @property
    def reply_rate(self) -> float:
        """Replies per received message (0 when nothing was received)."""
        return min(1.0, self.replied / self.received) if self.received else 0.0


NO_HISTORY = SenderStats(0, 0, None, None)


def domain_of(address: str) -> str:
    """``"Ann@Mail.Acme.com"`` -> ``"mail.acme.com"`` (the whole domain; no public-suffix guess)."""
    return address.rpartition("@")[2].strip().lower()


class _Timeline:
    """One sender's (or domain's) received and reply times, sorted, with prefix medians."""

    __slots__ = ("latencies", "medians", "received", "replied")

    def __init__(self) -> None:
        self.received: list[datetime] = []
        self.replied: list[datetime] = []  # added in reply order
        self.latencies: list[float] = []  # minutes, parallel to replied; dropped by finish()
        self.medians: list[float] = []  # medians[k]: median latency of the first k+1 replies

    def finish(self) -> None:
        self.received.sort()
        # Running median with two heaps: the lower half as a max-heap (negated), the upper half
        # as a min-heap; O(n log n) once, then every query is O(log n).
        low: list[float] = []
        high: list[float] = []
        for latency in self.latencies:
            if low and latency > -low[0]:
                heapq.heappush(high, latency)
            else:
                heapq.heappush(low, -latency)
            if len(low) > len(high) + 1:
                heapq.heappush(high, -heapq.heappop(low))
            elif len(high) > len(low):
                heapq.heappush(low, -heapq.heappop(high))
            median = -low[0] if len(low) > len(high) else (-low[0] + high[0]) / 2
            self.medians.append(median)
        self.latencies = []

    def total(self) -> SenderStats:
        """Everything the timeline holds (the history as of its newest event)."""
        median = self.medians[-1] if self.medians else None
        return SenderStats(len(self.received), len(self.replied), median, None)

    def stats(self, before: datetime) -> SenderStats:
        received = bisect_left(self.received, before)
        replied = bisect_left(self.replied, before)
        if not replied:
            return SenderStats(received, 0, None, None)
        last = self.replied[replied - 1]
        return SenderStats(
            received,
            replied,
            self.medians[replied - 1],
            (before - last).total_seconds() / 86400,
        )


class SocialHistory:
    """Per-sender and per-domain reply history, queried as of a moment.

    ``events`` are the user's replies (and forwards) to received mail; ``received`` is the
    ``(sender address, date)`` of every received message. Only what happened strictly before
    the ``before`` of a query counts.
    """

    def __init__(
        self, events: Iterable[ReplyEvent], received: Iterable[tuple[str, datetime]]
    ) -> None:
        senders: dict[str, _Timeline] = {}
        domains: dict[str, _Timeline] = {}
        for sender, date in received:
            sender = sender.lower()
            senders.setdefault(sender, _Timeline()).received.append(date)
            domains.setdefault(domain_of(sender), _Timeline()).received.append(date)
        for event in sorted(events, key=lambda event: event.replied):
            minutes = event.latency.total_seconds() / 60
            sender = event.sender.lower()
            for timeline in (
                senders.setdefault(sender, _Timeline()),
                domains.setdefault(domain_of(sender), _Timeline()),
            ):
                timeline.replied.append(event.replied)
                timeline.latencies.append(minutes)
        for timeline in (*senders.values(), *domains.values()):
            timeline.finish()
        self._senders = senders
        self._domains = domains

    @classmethod
    def from_result(cls, result: LabelResult) -> SocialHistory:
        """From :func:`~commsproxy.classifier.labels.derive_labels`' output (no second match)."""
        received = [(i.mail.sender, i.mail.date) for i in result.labelled if i.mail.date]
        return cls(result.reply_events, received)

    @classmethod
    def from_mails(
        cls,
        mails: Iterable[Mail],
        *,
        is_sent: Callable[[Mail], bool],
        user_addresses: Collection[str] | None = None,
    ) -> SocialHistory:
        """Match replies in a mailbox (with its sent folders) and build the history."""
        matching = match_replies(mails, is_sent=is_sent, user_addresses=user_addresses)
        received = [(m.sender, m.date) for m in matching.received if m.date is not None]
        return cls(matching.reply_events, received)

    def stats(self, sender: str, before: datetime) -> SenderStats:
        """The user's history with ``sender`` before ``before`` (which must be timezone-aware)."""
        timeline = self._senders.get(sender.lower())
        return timeline.stats(_aware(before)) if timeline is not None else NO_HISTORY

    def stats_domain(self, domain: str, before: datetime) -> SenderStats:
        """The same for everyone at ``domain`` (an address is accepted too)."""
        timeline = self._domains.get(domain_of(domain) if "@" in domain else domain.lower())
        return timeline.stats(_aware(before)) if timeline is not None else NO_HISTORY

    def totals(self) -> tuple[dict[str, SenderStats], dict[str, SenderStats]]:
        """Per sender and per domain, the whole history (for live mail, newer than all of it)."""
        return (
            {sender: t.total() for sender, t in self._senders.items()},
            {domain: t.total() for domain, t in self._domains.items()},
        )

    def __len__(self) -> int:
        """How many senders the history knows."""
        return len(self._senders)


def _aware(moment: datetime) -> datetime:
    # Mail dates are aware (UTC); comparing with a naive one would raise deep inside bisect.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"'before' must be timezone-aware, got {moment.isoformat()}")
    return moment
