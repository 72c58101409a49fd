"""A person's everyday mail, written by the tests themselves (no corpus needed).

Every third message is from the boss and answered within minutes (urgent by behaviour), every
third is a newsletter with list headers (bulk), the rest are colleagues' notes (normal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
USER = "me@corp.example"


def render(headers: dict[str, str], body: str) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


@dataclass(frozen=True)
class Exchange:
    """One received message and, when the user answered it, the reply."""

    index: int
    received: bytes
    reply: bytes | None


def everyday_mail(
    count: int, *, every: timedelta = timedelta(hours=5), tag: str = "example.org"
) -> Iterator[Exchange]:
    for i in range(count):
        when = START + every * i
        message_id = f"<m{i}@{tag}>"
        headers = {"To": USER, "Message-ID": message_id, "Date": format_datetime(when)}
        reply = None
        if i % 3 == 0:
            headers |= {"From": "Boss <boss@acme.example>", "Subject": f"contract {i}"}
            body = "Please confirm the overdue invoice today, the customer is waiting."
            reply_headers = {
                "From": USER, "To": "boss@acme.example", "Subject": f"Re: contract {i}",
                "Message-ID": f"<r{i}@{tag}>", "In-Reply-To": message_id,
                "Date": format_datetime(when + timedelta(minutes=20)),
            }  # fmt: skip
            reply = render(reply_headers, "Confirmed.")
        elif i % 3 == 1:
            headers |= {
                "From": "news@lists.example.org", "Subject": f"Weekly digest {i}",
                "List-Id": "<weekly.lists.example.org>",
                "List-Unsubscribe": "<mailto:leave@lists.example.org>",
            }  # fmt: skip
            body = "This week: articles, events and more articles to read."
        else:
            headers |= {"From": f"colleague{i % 4}@corp.example", "Subject": f"lunch {i}"}
            body = "Shall we have lunch some day next week?"
        yield Exchange(i, render(headers, body), reply)
