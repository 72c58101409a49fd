"""From the model's probabilities to a label, failing safe when evidence is thin.

The model alone is a poor judge of the first day: on mail from a new user it has no history to
go on, and a corpus of spam teaches it that strangers write bulk. So the label follows these
rules, in order, each with its reason in words:

1. **bulk** when p(bulk) reaches the cut where at least 97% of the model's bulk calls were
   right on validation: spam and machine mail it is sure of, whatever else it scores -- but
   never for a sender the user has answered before, nor a colleague or customer by the
   config (rules 1 to 3 take no bulk score from the model then: that sender is a person);
2. **urgent** when p(urgent) reaches the threshold chosen at training, the one measured for the
   mode at hand: with the user's history with senders (warm) or without it (cold), unless the
   model finds bulk likelier than the rest together (``CUE_VETO``; not for a known person), or
   the user never answered this sender in ``NEVER_ANSWERED_AFTER`` or more messages
   (``never_answered``: history says it can wait, though the words and the sender's
   colleagues score high; a colleague by domain is held to it too, a customer is not), or it
   is list, machine or mass mail (labels.bulk_reason) from a sender the user never answered
   (``marked_bulk``: an all-staff announcement from a colleague scores like their mail);
3. **urgent** when the message itself says it cannot wait (cues.py) or answers a message the
   user sent (its thread headers, or the user's own message quoted under its text:
   ``cues.answers_you``), and nothing says it is bulk: no bulk markers, and no veto as in 2
   (spam says "urgent" and "call me" too);
4. **bulk** on list, marketing or machine markers (labels.bulk_reason);
5. **normal** otherwise: a message from a person waits for the next batch, never in Bulk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..imap.names import BULK, NORMAL, URGENT
from .cues import answers_you, urgency_cues
from .features import Sample
from .labels import bulk_reason

__all__ = [
    "BULK",
    "CUE_VETO",
    "NEVER_ANSWERED_AFTER",
    "NORMAL",
    "URGENT",
    "Judgement",
    "Thresholds",
    "bulk_wins",
    "judge",
    "known_person",
    "marked_bulk",
    "never_answered",
    "rule_delivers",
]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The cuts chosen at training (None: not measured; that rule is then left out)."""

    urgent: float | None = None  # p(urgent), with the user's history
    urgent_cold: float | None = None  # p(urgent), nothing known of the user's past
    bulk: float | None = None  # p(bulk) where bulk precision reached its target

    @classmethod
    def from_mapping(cls, values: Mapping[str, float], fallback: float | None) -> Thresholds:
        """From a model sidecar's ``thresholds``; ``fallback`` is its single older threshold."""
        urgent = values.get("urgent", fallback)
        return cls(urgent, values.get("urgent_cold", urgent), values.get("bulk"))

    def as_dict(self) -> dict[str, float]:
        pairs = (("urgent", self.urgent), ("urgent_cold", self.urgent_cold), ("bulk", self.bulk))
        return {name: value for name, value in pairs if value is not None}

    def urgent_for(self, sample: Sample) -> float | None:
        return self.urgent if sample.context.history_known else self.urgent_cold


@dataclass(frozen=True, slots=True)
class Judgement:
    label: str
    threshold: float | None  # the urgent cut this message was held to
    rule: str  # the deciding rule in words ("" when the model's score decided)


def _cues(sample: Sample) -> dict[str, str]:
    cues = urgency_cues(sample.mail)
    context = sample.context
    if context.replies_to_user or answers_you(sample.mail, context.user_addresses):
        cues["reply"] = "a reply to a message you sent"
    return cues


# Rules 2 and 3 are vetoed from this p(bulk) on: the model finds bulk likelier than not.
CUE_VETO = 0.5


def known_person(sample: Sample) -> bool:
    """A sender the user has answered, or a colleague or customer by the config.

    The model's bulk score reads text and addressing, and a long legal thread can look like
    a newsletter to it; a spammer or a list is never answered, nor named in the config.
    """
    context = sample.context
    if context.relation in ("colleague", "customer"):
        return True
    history = context.sender
    return context.history_known and history is not None and history.replied > 0


# A sender who wrote the user this many times or more, and was never answered, writes mail
# that can wait: in each of the four Enron mailboxes, none of the 206 such messages from a
# person (no bulk label, no cue) was answered within 4 hours; after one unanswered message, 2
# of 290 were. Two is the smallest count with none in every three of the four mailboxes (each
# first-day fold's training users). The cuts are chosen without this rule (train.py): it only
# holds more of what the score delivers, and counted in the cut it lets the hold cap
# (recipe.MAX_HELD) lower the cut for everyone else, spam included.
NEVER_ANSWERED_AFTER = 2


def never_answered(sample: Sample) -> bool:
    """With history: the sender wrote ``NEVER_ANSWERED_AFTER`` times or more, never answered.

    A customer by the config is exempt: the config names them, so they count. A colleague is
    not: "colleague" is everyone at the user's own (or an internal) domain, and an all-staff
    sender the user never answers is the mail this rule is for. In the four Enron mailboxes,
    none of the 187 messages from colleagues never answered in two or more messages was
    answered within 4 hours.
    """
    context = sample.context
    if not context.history_known or context.relation == "customer":
        return False
    history = context.sender
    return history is not None and history.received >= NEVER_ANSWERED_AFTER and not history.replied


def marked_bulk(sample: Sample) -> str | None:
    """The bulk marker (labels.bulk_reason) of mail from a sender the user never answered.

    Such mail is not urgent on the model's score: in the four Enron mailboxes none of the 348
    messages as they arrived with a list or machine sender or more than 15 recipients was
    answered within 4 hours, yet a colleague's scores high (no bulk veto for colleagues), as
    an announcement from an internal address does. A sender the user has answered keeps it.
    Like ``never_answered``, the cuts are chosen without this rule: it only holds more of what
    the score delivers.
    """
    marker = bulk_reason(sample.mail)
    if marker is None:
        return None
    context = sample.context
    history = context.sender
    answered = context.history_known and history is not None and history.replied > 0
    return None if answered else marker


def bulk_wins(sample: Sample, p_bulk: float, cut: float | None) -> str:
    """ "confident" (rule 1), "veto" (no urgent rule applies) or "" for this p(bulk)."""
    if known_person(sample):
        return ""
    if cut is not None and p_bulk >= cut:
        return "confident"
    return "veto" if p_bulk >= CUE_VETO else ""


def rule_delivers(sample: Sample, p_bulk: float, bulk_cut: float | None) -> bool:
    """Whether rule 3 delivers this message whatever its p(urgent)."""
    if bulk_wins(sample, p_bulk, bulk_cut) or bulk_reason(sample.mail) is not None:
        return False
    return bool(_cues(sample))


def judge(sample: Sample, p: Mapping[str, float], thresholds: Thresholds) -> Judgement:
    """The label of one message from its class probabilities ``p`` (see the module doc)."""
    cut = thresholds.urgent_for(sample)
    p_urgent = p.get(URGENT, 0.0)
    wins = bulk_wins(sample, p.get(BULK, 0.0), thresholds.bulk)
    if wins == "confident":
        return Judgement(BULK, cut, f"reads like bulk or spam to the model ({p[BULK]:.2f})")
    vetoed = wins == "veto" or marked_bulk(sample) is not None
    unanswered = never_answered(sample)
    if cut is not None and p_urgent >= cut and not vetoed and not unanswered:
        return Judgement(URGENT, cut, "")
    marker = bulk_reason(sample.mail)
    if marker is None and not vetoed and (cues := _cues(sample)):
        return Judgement(URGENT, cut, "; ".join(cues.values()))
    if marker is not None:
        return Judgement(BULK, cut, marker)
    likeliest = cut is None and p_urgent >= max(p.values())  # no measured cut
    if unanswered and not vetoed and (likeliest or (cut is not None and p_urgent >= cut)):
        # The score alone would have delivered it; said as wording.history_phrase says it.
        received = sample.context.sender.received if sample.context.sender else 0
        who = sample.mail.sender
        return Judgement(NORMAL, cut, f"you never answered {who} ({received} messages before)")
    if likeliest:
        return Judgement(URGENT, cut, "")  # no measured cut: the likeliest label
    return Judgement(NORMAL, cut, "")
