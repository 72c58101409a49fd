"""What the user reads when a colleague answered the same thread: the SMTP refusal's text
(``[accounts] collision = "hold"``) or a one-line message in INBOX (``"warn"``). Pure.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

__all__ = ["DRAFTS", "WINDOW_MINUTES", "Answer", "hold_refusal", "notice_message", "when"]

DRAFTS = "Drafts/Collision"  # where a reply kept back waits ("/": the server's own delimiter)
WINDOW_MINUTES = 10  # the same reply sent again within this goes through


@dataclass(frozen=True)
class Answer:
    """A colleague's reply to the thread, found in the account folder."""

    name: str  # the display name, decoded; "" when the From has none
    address: str
    at: datetime  # when it was sent (its Date), else when it was filed
    subject: str

    @property
    def who(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address

    @property
    def short(self) -> str:
        return self.name or self.address


def when(moment: datetime, now: datetime, zone: ZoneInfo) -> str:
    """``at 14:02`` today, ``on Fri 4 Dec at 14:02`` another day, in the user's zone."""
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    clock = local.strftime("%H:%M")
    if local.date() == today:
        return f"at {clock}"
    return f"on {local.strftime('%a')} {local.day} {local.strftime('%b')} at {clock}"


def _ascii(text: str) -> str:
    """An SMTP reply is ASCII: accents dropped, anything else left out."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(plain.replace("\r", " ").replace("\n", " ").split())


def hold_refusal(answer: Answer, now: datetime, zone: ZoneInfo) -> str:
    """The SMTP reply that keeps a reply back (end of DATA): who answered, when, what next."""
    return _ascii(
        f"550 5.7.1 Not sent: {answer.who} answered this thread {when(answer.at, now, zone)}."
        f" Your message is kept in {DRAFTS}; send it again within {WINDOW_MINUTES} minutes"
        " to send it anyway."
    )


def notice_message(answer: Answer, subject: str, now: datetime, zone: ZoneInfo) -> bytes:
    """The one-line message in INBOX when the user's reply went out beside a colleague's."""
    message = EmailMessage()
    message["From"] = "commsproxy <commsproxy@localhost>"
    message["To"] = "me"
    message["Subject"] = (
        f"{answer.short} answered this thread too, {when(answer.at, now, zone)}: {subject}"
    )
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("collision", "commsproxy.localhost")
    message.set_content(
        f"{answer.who} answered this thread {when(answer.at, now, zone)}, before your reply"
        f' "{subject}" went out. Both replies were sent.\n'
    )
    return bytes(message)
