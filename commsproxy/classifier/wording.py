"""Reasons in a person's words: which way each signal pushed, never an internal feature name.

Every reason starts with where it pushed the message, "urgent:" (deliver now) or "held:" (wait
for the batch), and says what was seen: "urgent: you answered ann@acme.com 9 times, median
40 min", "held: has List-Unsubscribe", "urgent: words outage, invoice". The verdict's own side
comes first. ``classify --explain``, ``explain MESSAGE-ID`` and the digest all show these.
"""

from __future__ import annotations

from collections.abc import Mapping

from .features import Sample, SenderHistory
from .policy import URGENT
from .stop_words import ENGLISH_STOP_WORDS

__all__ = ["Reasons", "history_phrase", "score_words"]

# Reasons per side: the verdict's side gets more room than the other.
FOR_VERDICT = 4
AGAINST_VERDICT = 2
WORDS_SHOWN = 4

# Function words say nothing a person can act on ("words: the, and"); the first users write
# English, Dutch, French and German.
_FUNCTION_WORDS = """
de het een en van ik je jij u we wij ze zij dat die dit deze is zijn was op aan met voor
niet ook als maar om dan nog wel naar bij uit tot kan over er al of heb hebben wordt worden
le la les un une des du et est en que qui pour dans ce cette sur pas par au aux avec il
elle nous vous ils sont mais ou donc sa son ses leur vos votre nos notre je tu der die das
ein eine und ist nicht mit von zu den dem des sie wir ihr ich auf für im bei auch als aus
hat haben wird werden oder aber noch nur wie so dass sind war kann
"""
_STOPWORDS = ENGLISH_STOP_WORDS | frozenset(_FUNCTION_WORDS.split())

_SENDER_HISTORY = (
    "new sender",
    "sender mails before",
    "you replied to sender",
    "sender reply speed",
)
_DOMAIN_HISTORY = (
    "new domain",
    "domain mails before",
    "you replied to domain",
    "domain reply speed",
)
_SIGNALS = {
    "no-reply sender": "a no-reply sender",
    "to you": "sent to you alone",
    "to you and others": "sent to you and others",
    "cc to you": "you are in cc",
    "not addressed to you": "not addressed to you (a list or bcc)",
    "from you": "sent by you",
    "has list-id": "has List-Id",
    "has list-unsubscribe": "has List-Unsubscribe",
    "has list-post": "has List-Post",
    "auto-submitted": "sent automatically (Auto-Submitted)",
    "a reply": "a reply",
    "a forward": "a forward",
    "in a thread": "part of a thread",
    "reply to your message": "a reply to a message you sent",
    "has attachments": "has attachments",
    "html only": "HTML only",
}


def score_words(p_urgent: float | None, threshold: float | None) -> str:
    """'0.04, urgent from 0.03' (three decimals where two would read as equal)."""
    if p_urgent is None:
        return "no score"
    if threshold is None:
        return f"{p_urgent:.2f}"
    digits = 3 if f"{p_urgent:.2f}" == f"{threshold:.2f}" else 2
    return f"{p_urgent:.{digits}f}, urgent from {threshold:.{digits}f}"


def history_phrase(who: str, history: SenderHistory | None) -> str:
    """What the user did with ``who``'s mail before, in words."""
    if history is None or history.received == 0:
        return f"first mail from {who}"
    if history.replied == 0:
        return f"you never answered {who} ({_times(history.received, 'message')} before)"
    phrase = f"you answered {who} {_times(history.replied, 'time')}"
    if history.median_reply_minutes is not None:
        phrase += f", median {_duration(history.median_reply_minutes)}"
    return phrase


def _times(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.0f} days"


class Reasons:
    """Collects a verdict's reasons, each with its direction, and words them."""

    def __init__(self, sample: Sample, label: str) -> None:
        self.sample = sample
        self.urgent = label == URGENT
        self._rule = ""
        self._pushes: dict[str, float] = {}  # phrase -> push towards urgent (+) or held (-)
        self._words: dict[str, float] = {}

    def rule(self, text: str) -> None:
        """The rule that decided (policy.py), which leads the reasons."""
        self._rule = text

    def add_contributions(self, contributions: Mapping[str, float]) -> None:
        for name, value in contributions.items():
            if name.startswith("word:"):
                word = name[5:]
                if len(word) > 2 and word not in _STOPWORDS and not word.isdigit():
                    self._words[word] = self._words.get(word, 0.0) + value
                continue
            phrase = self._signal(name)
            if phrase and phrase != self._rule:
                self._pushes[phrase] = self._pushes.get(phrase, 0.0) + value

    def before_words(self) -> int:
        """How many reasons come before the words on the verdict's side (see ``phrases``)."""
        sign = 1.0 if self.urgent else -1.0
        mine = sum(1 for v in self._pushes.values() if v * sign > 0)
        return (1 if self._rule else 0) + min(mine, FOR_VERDICT)

    def phrases(self) -> list[str]:
        mine, theirs = ("urgent", "held") if self.urgent else ("held", "urgent")
        out = [f"{mine}: {self._rule}"] if self._rule else []
        for side, limit in ((mine, FOR_VERDICT), (theirs, AGAINST_VERDICT)):
            sign = 1.0 if side == "urgent" else -1.0
            pushes = sorted(
                ((v * sign, k) for k, v in self._pushes.items() if v * sign > 0), reverse=True
            )
            out += [f"{side}: {phrase}" for _, phrase in pushes[:limit]]
            words = sorted(
                ((v * sign, k) for k, v in self._words.items() if v * sign > 0), reverse=True
            )
            if words and side == mine:
                out.append(f"{side}: words " + ", ".join(w for _, w in words[:WORDS_SHOWN]))
        return out

    def _signal(self, name: str) -> str | None:
        """A named signal (features.py) in words; history signals become one phrase."""
        context, mail = self.sample.context, self.sample.mail
        key = name.partition("~")[0]
        if key in (
            "new sender",
            "sender mails before",
            "you replied to sender",
            "sender reply speed",
        ):
            return history_phrase(mail.sender or "this sender", context.sender)
        if key in (
            "new domain",
            "domain mails before",
            "you replied to domain",
            "domain reply speed",
        ):
            domain = mail.sender.rpartition("@")[2] or "this domain"
            return history_phrase(f"people at {domain}", context.domain)
        if key in ("recipients", "size"):
            return None  # true of most mail either way: nothing a person can act on
        if name.startswith("from domain="):
            return f"from {name.partition('=')[2]}"
        if name.startswith("from="):
            return f"from {name.partition('=')[2]}"
        if name.startswith(("to=", "cc=")):
            address = name.partition("=")[2]
            if address in context.user_addresses:
                return None  # "sent to you alone", "you are in cc" say it in words
            return f"{'also to' if name.startswith('to=') else 'cc'} {address}"
        if name.startswith("precedence "):
            return f"Precedence: {name.partition(' ')[2]}"
        return _SIGNALS.get(name, name)
