"""Deciding a message's label: the user's rules first, then the model.

The engine sees only this small interface (``Decider``), never scikit-learn: the model adapter
is built by the service from the model store, and tests can hand the engine a rule-only decider.
Every decision carries its reason in words, because it is shown in the digest and by
``commsproxy explain``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

from ..classifier.mail import Mail
from ..imap.names import NORMAL, URGENT

if TYPE_CHECKING:
    from ..classifier.features import Context

__all__ = [
    "Decider",
    "Decision",
    "HistoryView",
    "ModelDecider",
    "RuleDecider",
    "UrgentTag",
    "reason_words",
    "urgent_tag_reason",
    "vip_match",
]


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    score: float | None  # p(urgent) when a model produced it
    reason: str
    # The reason in full, when wording it was left for later (ModelDecider): ``reason`` is
    # then its head alone ("normal (0.02, urgent from 0.04)"). The engine asks for it while
    # the server holds the mail, so the words cost a backlog no time (new_mail.py).
    later: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def in_full(self) -> str:
        """The reason with everything it says (worded now if it was left for later)."""
        return self.reason if self.later is None else self.later()


class Decider(Protocol):
    def decide(self, mails: Sequence[Mail]) -> list[Decision]: ...


class HistoryView(Protocol):
    """The user's history with senders, as a new message's context (contacts.py, history.py)."""

    def context(self, mail: Mail, user_addresses: frozenset[str]) -> Context: ...


class Model(Protocol):
    """What the engine needs from the classifier: a decision per message, with its reason."""

    def label(self, mails: Sequence[Mail]) -> list[Decision]: ...


def vip_match(address: str, patterns: Sequence[str]) -> str | None:
    """The VIP pattern (``boss@example.com`` or ``*@bigcustomer.com``) ``address`` matches."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    for pattern in patterns:
        if pattern == address:
            return pattern
        if pattern.startswith("*@"):
            wanted = pattern[2:]
            if domain == wanted or domain.endswith("." + wanted):
                return pattern
    return None


@dataclass(frozen=True)
class UrgentTag:
    """``me+urgent@``: mail to one of the user's own addresses with the tag is urgent.

    ``addresses`` are the login's own; ``domains`` are where any local part counts as the
    user's (for a login whose user name is not an address). An empty ``tag`` matches nothing.
    """

    tag: str
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, tag: str, addresses: Sequence[str], domains: Sequence[str] = ()) -> UrgentTag:
        return cls(
            tag.lower(),
            frozenset(a.lower() for a in addresses),
            frozenset(d.lower() for d in domains),
        )

    def match(self, mail: Mail) -> str | None:
        """The tagged own address ``mail`` was sent to, or None."""
        if not self.tag:
            return None
        suffix = "+" + self.tag
        for address in (*mail.to, *mail.cc, *mail.envelope_to):
            local, at, domain = address.rpartition("@")
            if not at or not local.endswith(suffix) or len(local) == len(suffix):
                continue
            if domain in self.domains or f"{local[: -len(suffix)]}@{domain}" in self.addresses:
                return address
        return None


def urgent_tag_reason(tag: str, address: str) -> str:
    return f"sent to your +{tag} address ({address})"


class RuleDecider:
    """The user's sender rules; what they do not decide goes to ``fallback`` (or counts as
    normal).

    Mail sent to the user's tagged address (``urgent``: ``me+urgent@``) is urgent first: the
    sender asked for it through an address the user gave out, so this wins over
    ``never_urgent``. ``vip`` senders are urgent without asking the model. ``never`` senders
    (``[triage] never_urgent``) are never urgent: the model still decides between normal and
    bulk, and its urgent becomes normal. A sender on both lists is urgent (vip wins).
    """

    def __init__(
        self,
        vip: Sequence[str],
        fallback: Model | None = None,
        never: Sequence[str] = (),
        urgent: UrgentTag | None = None,
    ) -> None:
        self.vip = tuple(p.lower() for p in vip)
        self.never = tuple(p.lower() for p in never)
        self.fallback = fallback
        self.urgent = urgent

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        out: list[Decision | None] = []
        rest: list[int] = []
        for i, mail in enumerate(mails):
            tagged = self.urgent.match(mail) if self.urgent is not None else None
            pattern = vip_match(mail.sender, self.vip) if mail.sender else None
            if tagged is not None and self.urgent is not None:
                out.append(Decision(URGENT, None, urgent_tag_reason(self.urgent.tag, tagged)))
            elif pattern is not None:
                out.append(Decision(URGENT, None, f"VIP sender ({pattern})"))
            else:
                out.append(None)
                rest.append(i)
        if rest:
            if self.fallback is None:
                for i in rest:
                    out[i] = Decision(NORMAL, None, "no model: held by default")
            else:
                labelled = self.fallback.label([mails[i] for i in rest])
                for i, decision in zip(rest, labelled, strict=True):
                    out[i] = decision
            for i in rest:
                given = out[i]
                if given is None or given.label != URGENT or not mails[i].sender:
                    continue
                never = vip_match(mails[i].sender, self.never)
                if never is not None:
                    out[i] = Decision(NORMAL, given.score, f"never urgent: rule for {never}")
        return [d for d in out if d is not None]


# Reasons kept with a decision: the digest and `explain` show them, so a few, the strongest.
REASONS_KEPT = 3


def reason_words(label: str, score_words: str, reasons: Sequence[str]) -> str:
    """ "normal (0.02, urgent from 0.04): held: has List-Unsubscribe; held: ..."."""
    head = f"{label} ({score_words})"
    detail = "; ".join(reasons[:REASONS_KEPT])
    return f"{head}: {detail}" if detail else head


class ModelDecider:
    """Adapts a loaded urgency model (classifier.predict.Classifier) to ``Model``.

    ``history`` (read from the server, or saved by training beside the model) gives each
    message the user's history with its sender, as the model saw it in training; without it
    nothing is known of the user's past and the model scores the message cold.
    """

    def __init__(
        self,
        classifier: object,
        user_addresses: frozenset[str],
        history: HistoryView | None = None,
    ) -> None:
        self._classifier = classifier
        self._user = user_addresses
        self.history = history

    def label(self, mails: Sequence[Mail]) -> list[Decision]:
        # Imported here so that triage stays free of scikit-learn until a model is used.
        from ..classifier.features import Context, Sample

        history = self.history
        if history is None:
            context = Context(user_addresses=self._user, history_known=False)
            samples = [Sample(mail, context) for mail in mails]
        else:
            samples = [Sample(mail, history.context(mail, self._user)) for mail in mails]
        # Only the reasons a decision keeps: the words of a message are read only where its
        # rule and signals leave room for them, so deciding runs near the model's own speed.
        # They are worded when first asked for (Decision.later), once for the whole batch.
        verdicts, explain = self._classifier.classify_then_explain(  # type: ignore[attr-defined]
            samples, reasons_kept=REASONS_KEPT
        )
        explained: list[bool] = []

        def in_full(i: int) -> str:
            if not explained:
                explain()
                explained.append(True)
            v = verdicts[i]
            return reason_words(v.label or NORMAL, v.score_words(), v.reasons or [])

        return [
            Decision(
                v.label or NORMAL,
                v.p_urgent,
                reason_words(v.label or NORMAL, v.score_words(), []),
                later=partial(in_full, i),
            )
            for i, v in enumerate(verdicts)
        ]
