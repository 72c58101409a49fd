"""Deciding a message's label: the user's rules first, then the model.

The engine sees only this small interface (``Decider``), never scikit-learn: the model adapter
is built by the service from the model store, and tests can hand the engine a rule-only decider.
Every decision carries its reason in words, because it is shown in the digest and by
``commsproxy explain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..classifier.mail import Mail

if TYPE_CHECKING:
    from ..classifier.contacts import Contacts

__all__ = ["Decider", "Decision", "ModelDecider", "RuleDecider", "vip_match"]

URGENT, NORMAL, BULK = "urgent", "normal", "bulk"


@dataclass(frozen=True, slots=True)
class Decision:
    label: str
    score: float | None  # p(urgent) when a model produced it
    reason: str


class Decider(Protocol):
    def decide(self, mails: Sequence[Mail]) -> list[Decision]: ...


class Model(Protocol):
    """What the engine needs from the classifier: labels with p(urgent) and a few reasons."""

    def label(self, mails: Sequence[Mail]) -> list[tuple[str, float | None, list[str]]]: ...


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


class RuleDecider:
    """VIP rules; what they do not decide goes to ``fallback`` (or counts as normal)."""

    def __init__(self, vip: Sequence[str], fallback: Model | None = None) -> None:
        self.vip = tuple(p.lower() for p in vip)
        self.fallback = fallback

    def decide(self, mails: Sequence[Mail]) -> list[Decision]:
        out: list[Decision | None] = []
        rest: list[int] = []
        for i, mail in enumerate(mails):
            pattern = vip_match(mail.sender, self.vip) if mail.sender else None
            if pattern is not None:
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
                for i, (label, score, reasons) in zip(rest, labelled, strict=True):
                    out[i] = Decision(label, score, _reason(label, score, reasons))
        return [d for d in out if d is not None]


def _reason(label: str, score: float | None, reasons: Sequence[str]) -> str:
    if label == BULK:
        head = "newsletter or notification"
    elif label == URGENT:
        head = "likely urgent" if score is None else f"urgency {score:.2f}"
    else:
        head = "can wait" if score is None else f"low urgency {score:.2f}"
    detail = "; ".join(reasons[:2])
    return f"{head} ({detail})" if detail else head


class ModelDecider:
    """Adapts a loaded urgency model (classifier.predict.Classifier) to ``Model``.

    ``contacts`` (saved by training beside the model) gives each message the user's history
    with its sender, as the model saw it in training; without them every sender looks new.
    """

    def __init__(
        self,
        classifier: object,
        user_addresses: frozenset[str],
        contacts: Contacts | None = None,
    ) -> None:
        self._classifier = classifier
        self._user = user_addresses
        self._contacts = contacts

    def label(self, mails: Sequence[Mail]) -> list[tuple[str, float | None, list[str]]]:
        # Imported here so that triage stays free of scikit-learn until a model is used.
        from ..classifier.features import Context, Sample

        contacts = self._contacts
        if contacts is None:
            context = Context(user_addresses=self._user)
            samples = [Sample(mail, context) for mail in mails]
        else:
            samples = [Sample(mail, contacts.context(mail, self._user)) for mail in mails]
        verdicts = self._classifier.classify(samples, explain=True)  # type: ignore[attr-defined]
        return [(v.label or NORMAL, v.p_urgent, list(v.reasons or [])) for v in verdicts]
