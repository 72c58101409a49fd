"""Message → features, as module-level functions a saved Pipeline can refer to by name.

A sample is a parsed :class:`~commsproxy.classifier.mail.Mail` plus its :class:`Context`: who
the user is and what their history with the sender was *before* this message (how often and
how fast they replied). Two views feed the model: ``text_of`` (subject and body words, for a
HashingVectorizer: no vocabulary to grow, fixed memory) and ``meta_of`` (named signals for a
FeatureHasher: sender, domain, addressing, list headers, priority, size, social history). The
names of meta features are also what ``explain`` shows, so they read as words.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .mail import Mail

__all__ = [
    "Context",
    "Sample",
    "SenderHistory",
    "full_text_of",
    "meta_features",
    "meta_of",
    "text_of",
]

# Words beyond this many body characters add little and cost time.
TEXT_BODY_CHARS = 3000
# Recipients named as features; a message to 400 people says "list", not who they are.
MAX_NAMED_RECIPIENTS = 10

_NOREPLY = re.compile(
    r"^(no-?reply|do-?not-?reply|mailer-daemon|notifications?|newsletters?|"
    r"news|info|marketing|bounces?|postmaster)([+.-].*)?@"
)
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*(fw|fwd|wg|tr)\s*:", re.IGNORECASE)


class SenderHistory(Protocol):
    """The user's past with a sender or domain (see social.py), from before the message."""

    @property
    def received(self) -> int: ...
    @property
    def replied(self) -> int: ...
    @property
    def median_reply_minutes(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What is known about a message beyond its bytes."""

    user_addresses: frozenset[str] = frozenset()
    sender: SenderHistory | None = None
    domain: SenderHistory | None = None
    replies_to_user: bool = False  # In-Reply-To/References name a message the user sent
    # False when nothing is known of the user's past (a first start before the history is
    # read, a corpus): then no history feature at all, rather than "new sender" for everyone.
    history_known: bool = True
    # Who the sender is to the user, from the config: "colleague" (own or internal domain),
    # "customer" (an [accounts] domain or address), or None.
    relation: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    mail: Mail
    context: Context = field(default_factory=Context)
    # Made from the quote in a reply, not mail as it arrived: trained on, but never used to
    # set a threshold (it has no headers, so live mail scores differently).
    rebuilt: bool = False


def text_of(samples: Iterable[Sample]) -> list[str]:
    """Subject (twice: it carries more than its length) and the start of the body."""
    return [f"{s.mail.subject}\n{s.mail.subject}\n{s.mail.body[:TEXT_BODY_CHARS]}" for s in samples]


def full_text_of(samples: Iterable[Sample]) -> list[str]:
    """Subject and the whole kept body: foldering gains from the long tail of a message."""
    return [f"{s.mail.subject}\n{s.mail.subject}\n{s.mail.body}" for s in samples]


def meta_of(samples: Iterable[Sample]) -> list[dict[str, float]]:
    return [meta_features(s) for s in samples]


def _bucket(value: float, edges: Sequence[float]) -> int:
    """Index of the first edge above ``value``: coarse bins a linear model can weigh (a
    value no edge is above, NaN included, is in the last bin)."""
    return bisect_right(edges, value)


def meta_features(sample: Sample) -> dict[str, float]:
    """Named signals of one message; the names double as explanations."""
    mail, context = sample.mail, sample.context
    out: dict[str, float] = {}
    sender = mail.sender
    domain = sender.rpartition("@")[2]
    if sender:
        out[f"from={sender}"] = 1.0
        out[f"from domain={domain}"] = 1.0
    if _NOREPLY.match(sender):
        out["no-reply sender"] = 1.0
    me = context.user_addresses
    if me:
        if not me.isdisjoint(mail.to):
            out["to you" if len(mail.recipients) == 1 else "to you and others"] = 1.0
        elif not me.isdisjoint(mail.cc):
            out["cc to you"] = 1.0
        else:
            out["not addressed to you"] = 1.0
        if sender in me:
            out["from you"] = 1.0
    # Who else it went to says which team, list or customer thread it belongs to.
    for address in mail.to[:MAX_NAMED_RECIPIENTS]:
        out[f"to={address}"] = 1.0
    for address in mail.cc[:MAX_NAMED_RECIPIENTS]:
        out[f"cc={address}"] = 1.0
    recipients = len(mail.recipients)
    out[f"recipients~{_bucket(recipients, (1, 2, 3, 6, 11, 26))}"] = 1.0
    headers = mail.headers
    for name in ("list-id", "list-unsubscribe", "list-post"):
        if name in headers:
            out[f"has {name}"] = 1.0
    precedence = headers.get("precedence", "").strip().lower()
    if precedence:
        out[f"precedence {precedence}"] = 1.0
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto != "no":
        out["auto-submitted"] = 1.0
    if _REPLY_PREFIX.match(mail.subject):
        out["a reply"] = 1.0
    elif _FORWARD_PREFIX.match(mail.subject):
        out["a forward"] = 1.0
    if mail.in_reply_to or mail.references:
        out["in a thread"] = 1.0
    if context.replies_to_user:
        out["reply to your message"] = 1.0
    out[f"size~{_bucket(mail.size, (2_000, 8_000, 32_000, 128_000, 1_000_000))}"] = 1.0
    if mail.attachments:
        out["has attachments"] = 1.0
    if "text/html" in headers.get("content-type", "").lower():
        out["html only"] = 1.0
    if context.history_known:
        _history(out, "sender", context.sender)
        _history(out, "domain", context.domain)
    return out


def _history(out: dict[str, float], who: str, history: SenderHistory | None) -> None:
    if history is None or history.received == 0:
        out[f"new {who}"] = 1.0
        return
    out[f"{who} mails before~{_bucket(history.received, (2, 5, 20, 100))}"] = 1.0
    ratio = history.replied / history.received
    out[f"you replied to {who}~{_bucket(ratio, (0.01, 0.1, 0.3, 0.6))}"] = 1.0
    minutes = history.median_reply_minutes
    if minutes is not None:
        out[f"{who} reply speed~{_bucket(minutes, (15, 60, 240, 1440))}"] = 1.0
