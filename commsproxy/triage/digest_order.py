"""What in a released batch most likely needs the user first: likely mistakes, then rank.

Pure, no I/O. A held message is a *likely mistake* when it says it cannot wait (cues.py: urgent
wording, a deadline today, a request to call, high priority), carries no list or machine
markers, was not called bulk, and comes from someone known (mail from the sender or the domain
before, a colleague or customer; spam says "urgent" too); when it answers a message the user
sent; or when the user answers its sender (or, for a customer, the sender's colleagues)
quickly or often. The rest is ranked: people the user
writes to, then customers, then the rest, bulk last; newest first within each rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import Protocol

from ..classifier.cues import urgency_cues
from ..classifier.features import Context
from ..classifier.labels import bulk_reason
from ..classifier.mail import Mail
from ..classifier.social import SenderStats
from ..imap.names import BULK
from .plain_reasons import plain_phrase

__all__ = [
    "OFTEN_SHARE",
    "QUICK_MINUTES",
    "Ordering",
    "Rank",
    "SenderHistory",
    "likely_mistake",
    "rank_of",
    "wording_counts",
]

# "Quickly": a median answer within the hour, over at least two answers.
QUICK_MINUTES = 60.0
QUICK_ANSWERS = 2
# "Often": at least half of the sender's messages answered, over at least three answers.
OFTEN_SHARE = 0.5
OFTEN_ANSWERS = 3

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SenderHistory(Protocol):
    """The user's history with senders as the digest asks it (history.LiveHistory)."""

    def sender_stats(self, address: str) -> SenderStats: ...
    def domain_stats(self, address_or_domain: str) -> SenderStats: ...
    def relation(self, sender: str) -> str | None: ...
    def context(self, mail: Mail, user_addresses: frozenset[str]) -> Context: ...


class Rank(IntEnum):
    """The digest's order, first to last."""

    MISTAKE = 0  # perhaps should have come at once
    ANSWERED = 1  # someone the user writes to
    CUSTOMER = 2  # an [accounts] customer, or mail filed to an account
    OTHER = 3
    BULK = 4  # lists, newsletters, machines


def _minutes(minutes: float) -> str:
    if minutes < 90:
        return f"{max(minutes, 1):.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.0f} days"


def _quick_or_often(who: str, stats: SenderStats) -> str | None:
    median = stats.median_reply_minutes
    if stats.replied >= QUICK_ANSWERS and median is not None and median <= QUICK_MINUTES:
        return f"you usually answer {who} within {_minutes(median)}"
    if (
        stats.replied >= OFTEN_ANSWERS
        and stats.received
        and stats.replied / stats.received >= OFTEN_SHARE
    ):
        return f"you answered {who} {stats.replied} times in {stats.received} messages"
    return None


def _stranger(mail: Mail, history: SenderHistory | None, *, decided: bool) -> bool:
    """Nobody the user knows: no earlier mail from the sender or the domain, no colleague or
    customer. Held mail that says "urgent" from such a sender is mostly spam the model found
    likelier bulk than not (policy's veto): on 2,000 SpamAssassin messages (bundled model,
    nothing known of the user) 20 of the 22 held ones with urgent wording were spam."""
    if history is None or not mail.sender:
        return False
    if history.relation(mail.sender) is not None:
        return False
    # A message triage decided on counts as received already (history.py counts each one);
    # one put in a hold mailbox by hand does not.
    itself = 1 if decided else 0
    seen = history.sender_stats(mail.sender).received
    seen_domain = history.domain_stats(mail.sender).received
    return seen <= itself and seen_domain <= itself


def wording_counts(mail: Mail, history: SenderHistory | None, label: str | None) -> bool:
    """Whether what ``mail`` says of itself can make it a likely mistake (see the module doc);
    only then is its body worth reading."""
    if label == BULK or bulk_reason(mail) is not None:
        return False
    return not _stranger(mail, history, decided=label is not None)


def likely_mistake(
    mail: Mail, history: SenderHistory | None, label: str | None = None, *, wording: bool = True
) -> tuple[str, ...]:
    """Why holding ``mail`` was perhaps a mistake, in plain words; empty when nothing says so.

    ``label`` is triage's decision (None: none, the message was put there by hand): what it
    called bulk (spam says "urgent" too) counts by the user's history with the sender only.
    ``wording``: False leaves what the message says out (its body was not read).
    """
    why: list[str] = []
    if wording and wording_counts(mail, history, label):
        for kind, cue in urgency_cues(mail).items():
            why.append(plain_phrase(cue, "urgent") or kind)
    if history is None or not mail.sender:
        return tuple(why)
    if history.context(mail, frozenset()).replies_to_user:
        why.append("it answers a message you sent")
    person = _quick_or_often(mail.sender, history.sender_stats(mail.sender))
    if person is not None:
        why.append(person)
    elif history.relation(mail.sender) == "customer":
        domain = mail.sender.rpartition("@")[2]
        colleagues = _quick_or_often(f"people at {domain}", history.domain_stats(domain))
        if colleagues is not None:
            why.append(colleagues)
    return tuple(why)


def rank_of(
    mail: Mail,
    label: str | None,
    account: str | None,
    mistake: Sequence[str],
    history: SenderHistory | None,
) -> Rank:
    if mistake:
        return Rank.MISTAKE
    if label == BULK or bulk_reason(mail) is not None:
        return Rank.BULK
    if history is not None and mail.sender:
        if history.sender_stats(mail.sender).replied > 0:
            return Rank.ANSWERED
        if history.relation(mail.sender) == "customer":
            return Rank.CUSTOMER
    return Rank.CUSTOMER if account is not None else Rank.OTHER


@dataclass(frozen=True, slots=True)
class Ordering:
    """A digest item's place: its rank, then newest first."""

    rank: Rank
    arrived: datetime | None

    def key(self) -> tuple[int, float]:
        when = self.arrived or _EPOCH
        return (int(self.rank), -(when - _EPOCH).total_seconds())
