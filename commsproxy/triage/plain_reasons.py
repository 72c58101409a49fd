"""A stored decision's reason in words a person understands, for the digest and the local page.

The classifier words its reasons for ``explain`` (wording.py, policy.py, cues.py, decide.py):
"normal (0.02, urgent from 0.04): held: has List-Unsubscribe; urgent: says "asap"". That names
header fields, scores and model terms. Here each part becomes what it means to the reader
("a newsletter (has an unsubscribe link)"), the score is left out, and a reason this module
does not know becomes a neutral phrase, never the raw text of a feature. The classifier's own
strings stay as they are: ``explain`` and ``status`` show them to whoever wants the detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["UNKNOWN", "PlainReason", "parse_reason", "plain_phrase", "plain_reason"]

# What an unknown part of a reason becomes: a neutral phrase, never the feature's own name.
UNKNOWN = "other signs the model weighed"

_HEAD = re.compile(r"^(urgent|normal|bulk) \(([^()]*)\)(?:: (.*))?$", re.DOTALL)
_SIDE = re.compile(r"^(urgent|held): (.*)$", re.DOTALL)
_NOTES = (
    (" (already read: left in INBOX)", "you had already read it, so it stayed in INBOX"),
    (" (holding stopped: left in INBOX)", "holding was switched off, so it stayed in INBOX"),
    (" (quiet hours: held until they end)", "it came in quiet hours, so it waited for their end"),
)
# Whole reasons that are not the model's.
_WHOLE: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^VIP sender \((.+)\)$"), lambda m: f"on your always-urgent list ({m[1]})"),
    (
        re.compile(r"^sent to your \+[\w-]+ address \((.+)\)$"),
        lambda m: f"sent to your urgent address ({m[1]}), so it came through at once",
    ),
    (
        re.compile(r"^no model: held by default$"),
        lambda m: "no trained model yet, so all mail waits for the batch",
    ),
    (
        re.compile(r"^moved here by hand$"),
        lambda m: "it was moved into the hold folder by hand, not by commsproxy",
    ),
)


def _who(text: str) -> str:
    """ "people at acme.com" (wording.py's domain history) -> "anyone at acme.com"."""
    return "anyone at " + text[10:] if text.startswith("people at ") else text


def _answered(m: re.Match[str]) -> str:
    who = "someone at " + m[1][10:] if m[1].startswith("people at ") else m[1]
    if m[3]:
        return f"you usually answer {who} within {m[3]}"
    count = int(m[2])
    return f"you have answered {who} before ({count} time{'s' if count != 1 else ''})"


def _precedence(m: re.Match[str]) -> str:
    value = m[1].strip().lower()
    if value == "list":
        return "sent to a mailing list"
    if value == "junk":
        return "marked as junk by its own sender"
    return "sent as bulk mail"


def _words(m: re.Match[str], side: str) -> str:
    if side == "urgent":
        return f"words like {m[1]} are common in urgent mail"
    return f"words like {m[1]} are common in mail that can wait"


def _sender(m: re.Match[str], side: str) -> str:
    if side == "urgent":
        return f"mail from {m[1]} tends to be urgent"
    return f"mail from {m[1]} tends to be able to wait"


_Plain = Callable[[re.Match[str], str], str]


def _fixed(text: str) -> _Plain:
    return lambda m, side: text


def _each(make: Callable[[re.Match[str]], str]) -> _Plain:
    return lambda m, side: make(m)


# One row per phrase the classifier can write (wording._SIGNALS and _signal, policy.judge's
# rules, labels.bulk_reason, cues.urgency_cues, wording.history_phrase, predict's account
# words); the first full match wins, so the generic "from X" comes last.
_PHRASES: tuple[tuple[re.Pattern[str], _Plain], ...] = tuple(
    (re.compile(pattern, re.DOTALL), plain)
    for pattern, plain in (
        # list, bulk and machine mail (labels.bulk_reason, features' signals)
        (r"has List-Unsubscribe", _fixed("a newsletter (has an unsubscribe link)")),
        (r"has List-Id|has List-Post", _fixed("sent to a mailing list")),
        (r"Precedence: (.*)", _each(_precedence)),
        (
            r"Auto-Submitted: .*|sent automatically \(Auto-Submitted\)",
            _fixed("sent automatically by a machine"),
        ),
        (r"automated sender (.+)", _each(lambda m: f"from an automated address ({m[1]})")),
        (r"a no-reply sender", _fixed("from a no-reply address")),
        (r"sent to (\d+) recipients", _each(lambda m: f"sent to {m[1]} people at once")),
        (r"reads like bulk or spam to the model.*", _fixed("reads like a newsletter or spam")),
        # the user's history with the sender (wording.history_phrase, policy.judge)
        (
            r"you never answered (.+) \((\d+) messages? before\)",
            _each(lambda m: f"you never answered {_who(m[1])} (in {m[2]} earlier messages)"),
        ),
        (r"first mail from (.+)", _each(lambda m: f"the first mail from {_who(m[1])}")),
        (r"you answered (.+?) (\d+) times?(?:, median (.+))?", _each(_answered)),
        # what the message says of itself (cues.urgency_cues, policy._cues)
        (r"marked high priority", _fixed("marked high priority by its sender")),
        (r'says "(.+)"', _each(lambda m: f'it says "{m[1]}"')),
        (r'deadline "(.+)"', _each(lambda m: f'it mentions a deadline ("{m[1]}")')),
        (r'asks for a call \("(.+)"\)', _each(lambda m: f'it asks you to call ("{m[1]}")')),
        (r"a reply to a message you sent", _fixed("a reply to a message you sent")),
        # addressing and form (wording._SIGNALS)
        (r"sent to you alone", _fixed("sent to you alone")),
        (r"sent to you and others", _fixed("sent to you and others")),
        (r"you are in cc", _fixed("you are only in copy (cc)")),
        (
            r"not addressed to you \(a list or bcc\)",
            _fixed("not addressed to you (a list or a blind copy)"),
        ),
        (r"sent by you", _fixed("sent by you")),
        (r"a reply", _fixed("a reply in a conversation")),
        (r"a forward", _fixed("a forwarded message")),
        (r"part of a thread", _fixed("part of a conversation")),
        (r"has attachments", _fixed("it has attachments")),
        (r"HTML only", _fixed("formatted like a newsletter (HTML only)")),
        (r"also to (.+)", _each(lambda m: f"also sent to {m[1]}")),
        (r"cc (.+)", _each(lambda m: f"{m[1]} is in copy")),
        # the words (wording.Reasons.phrases) and the account (predict._explain)
        (r"words (.+)", _words),
        (r"account (.+?): words .*", _each(lambda m: f"it is about the customer {m[1]}")),
        (r"from (.+)", _sender),
    )
)


def plain_phrase(phrase: str, side: str) -> str | None:
    """One of the classifier's phrases in plain words; None when it is not one it writes.

    ``side`` is the way it pushed: "urgent" (deliver now) or "held" (wait for the batch).
    """
    phrase = phrase.strip()
    for pattern, plain in _PHRASES:
        if match := pattern.fullmatch(phrase):
            return plain(match, side)
    return None


@dataclass(frozen=True, slots=True)
class PlainReason:
    """A decision's reason in plain words, by the way each part pushed."""

    label: str | None  # urgent, normal or bulk; None when the reason is not the model's
    held: tuple[str, ...]  # why it waited
    urgent: tuple[str, ...]  # signs that it is urgent
    notes: tuple[str, ...] = ()  # what happened besides (already read, holding off)

    def text(self) -> str:
        """One line: what decided first, then the signs the other way after "but"."""
        if self.label == "urgent":
            main, other = self.urgent, self.held
            fallback = "the model found it urgent"
        else:
            main, other = self.held, self.urgent
            fallback = "no sign it is urgent"
        out = "; ".join(main) if main else fallback
        if other:
            out += "; but " + "; ".join(other)
        if self.notes:
            out += "; " + "; ".join(self.notes)
        return out


def parse_reason(stored: str) -> PlainReason:
    """A stored decision's reason (decide.reason_words and the rule-only reasons), in words."""
    text = stored.strip()
    notes: list[str] = []
    for suffix, note in _NOTES:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            notes.append(note)
    for pattern, make in _WHOLE:
        if match := pattern.fullmatch(text):
            label = "urgent" if text.startswith(("VIP", "sent to your +")) else None
            said = (make(match),)
            return PlainReason(label, () if label else said, said if label else (), tuple(notes))
    head = _HEAD.fullmatch(text)
    if head is None:
        return PlainReason(None, (UNKNOWN,) if text else (), (), tuple(notes))
    sides: dict[str, list[str]] = {"held": [], "urgent": []}
    side = "urgent" if head[1] == "urgent" else "held"
    for part in (head[3] or "").split("; "):
        if not part.strip():
            continue
        # A rule's cues are joined with "; " too: a part without a side continues the last.
        if on_side := _SIDE.fullmatch(part):
            side, part = on_side[1], on_side[2]
        plain = plain_phrase(part, side) or UNKNOWN
        if plain not in sides[side]:
            sides[side].append(plain)
    held, urgent = _fold_first_mail(sides["held"]), _fold_first_mail(sides["urgent"])
    return PlainReason(head[1], held, urgent, tuple(notes))


def _fold_first_mail(phrases: list[str]) -> tuple[str, ...]:
    """ "the first mail from anyone at x.org" says nothing more beside the first from a@x.org."""
    senders = {p[19:].rpartition("@")[2] for p in phrases if p.startswith("the first mail from ")}
    return tuple(
        p for p in phrases if not (p.startswith(_FIRST_AT) and p[len(_FIRST_AT) :] in senders)
    )


_FIRST_AT = "the first mail from anyone at "


def plain_reason(stored: str) -> str:
    """A stored decision's reason as one line in plain words (see ``PlainReason.text``)."""
    return parse_reason(stored).text()
