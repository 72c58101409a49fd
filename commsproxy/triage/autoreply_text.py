"""The auto-reply itself: its words and the message (pure: no clock, no I/O).

The words say when the mail will be read, in the user's zone ("I read mail at 08:30, 12:30 and
16:30; yours will be read at 12:30 today"), and how to reach the user when it cannot wait: the
``[autoreply] urgent`` text, else the user's ``+urgent`` address (``[triage] urgent_tag``), else
nothing. ``[autoreply] message`` replaces the built-in words, with ``{release}`` and
``{urgent}`` filled in.

The message follows RFC 3834: ``Auto-Submitted: auto-replied``, In-Reply-To and References of
the original, "Auto: " and the original subject, and ``X-Auto-Response-Suppress: All`` so that
Exchange's own responders do not answer it. Not ``Precedence: bulk``: RFC 3834 says not to
rely on it, and it makes some servers file the reply as bulk.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from ..config import AutoreplyConfig

__all__ = [
    "REFERENCES_KEPT",
    "reply_message",
    "reply_text",
    "spoken_release",
    "spoken_times",
    "urgent_hint",
]

#: The original's last References kept in the reply (RFC 5322 3.6.4 allows trimming).
REFERENCES_KEPT = 10

_BUILT_IN = (
    "Hello,",
    "Thank you for your message. I read mail at set times: {times}; yours will be read at"
    " {release}.{urgent}",
    "This is an automatic reply, sent at most once a day.",
)
#: Lines of the built-in text are kept this short, so the reply goes as plain 7-bit text.
_WIDTH = 72
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def spoken_times(times: Sequence[time]) -> str:
    """``08:30, 12:30 and 16:30``."""
    words = [f"{t:%H:%M}" for t in sorted(times)]
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def spoken_release(release: datetime, now: datetime, zone: ZoneInfo) -> str:
    """``12:30 today``, ``08:30 tomorrow``, ``08:30 on Monday`` (within a week), else
    ``08:30 on Monday 14 December``: in the user's zone."""
    local, today = release.astimezone(zone), now.astimezone(zone).date()
    if local.second or local.microsecond:  # 10:05:37 is not by 10:05: say 10:06
        local = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
    days = (local.date() - today).days
    clock = f"{local:%H:%M}"
    if days <= 0:
        return f"{clock} today"
    if days == 1:
        return f"{clock} tomorrow"
    weekday = _WEEKDAYS[local.weekday()]
    if days < 7:
        return f"{clock} on {weekday}"
    return f"{clock} on {weekday} {local.day} {_MONTHS[local.month - 1]}"


def urgent_hint(config: AutoreplyConfig, address: str, tag: str) -> str:
    """How to reach the user at once ("write to jan+urgent@acme.be"); "" when there is none."""
    if config.urgent:
        return config.urgent.strip().rstrip(".")
    local, at, domain = address.rpartition("@")
    if not tag or not at:
        return ""
    return f"write to {local.partition('+')[0]}+{tag}@{domain}"


def reply_text(
    config: AutoreplyConfig,
    *,
    release: datetime,
    now: datetime,
    zone: ZoneInfo,
    times: Sequence[time],
    urgent: str,
) -> str:
    """The reply's words: ``config.message`` filled in, else the built-in text."""
    when = spoken_release(release, now, zone)
    if config.message is not None:
        return config.message.format(release=when, urgent=urgent)
    hint = f" If it cannot wait, {urgent}." if urgent else ""
    paragraphs = [p.format(times=spoken_times(times), release=when, urgent=hint) for p in _BUILT_IN]
    # Addresses and phone numbers are never split across lines.
    wrap = functools.partial(
        textwrap.fill, width=_WIDTH, break_long_words=False, break_on_hyphens=False
    )
    return "\n\n".join(wrap(p) for p in paragraphs) + "\n"


def reply_message(
    *,
    sender: str,
    recipient: str,
    subject: str,
    message_id: str | None,
    references: Sequence[str],
    text: str,
    now: datetime,
) -> EmailMessage:
    """The reply as a message (``bytes(message)`` gives CRLF lines), with a fresh Message-ID."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"Auto: {subject}" if subject else "Auto: your message"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("autoreply", domain=sender.rpartition("@")[2] or None)
    if message_id:
        message["In-Reply-To"] = message_id
        kept = [r for r in references if r != message_id][-(REFERENCES_KEPT - 1) :]
        message["References"] = " ".join([*kept, message_id])
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text)
    return message
