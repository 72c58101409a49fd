"""The digest that comes with a release: what waited, why, what perhaps should not have.

One message per release, appended to INBOX unread and dated at the release, so it sits on top
of a date-sorted INBOX. Its order is what most likely needs the user first:

1. **Perhaps these should have come at once**: held mail that says it cannot wait (urgent
   wording, a deadline today, a request to call, high priority) from someone known, and is
   neither list or machine mail nor what triage called bulk; mail that answers a message the
   user sent; mail from someone the user answers quickly or often (digest_order.py says
   exactly when).
2. The rest, ranked: people the user writes to, then customers, then everything else, and
   newsletters, lists and machine mail last; newest first within each rank. With customer
   accounts configured it is grouped by account (a group in the order of its first message),
   with mail of no account under "Other mail" last; a group with nothing in it has no heading.

Each item says why it waited in plain words (plain_reasons.py) and how to correct it: flag it
(training learns from that), or the local page's link that always delivers that sender's mail
at once. At most ``LIMIT`` items are listed; the rest is counted. The message is
multipart/alternative: a text part, and an HTML part with inline styles only (nothing is
fetched from anywhere) rendered with autoescaping, so a subject or a name is only ever text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from typing import TYPE_CHECKING

from .digest_order import Ordering

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = [
    "LIMIT",
    "WAITING",
    "Digest",
    "DigestItem",
    "Section",
    "WaitingItem",
    "arrange",
    "digest_message",
]

LIMIT = 200  # items listed in one digest; a longer batch is summarised

MISTAKES = "Perhaps these should have come at once"
THE_REST = "The rest"
OTHER_MAIL = "Other mail"
WAITING = "Waiting for an answer"
ORDER_NOTE = (
    "Likely mistakes first, then people you write to, customers, the rest, and newsletters "
    "and machine mail last; newest first within each."
)
FLAG_HINT = "Should this have come at once? Flag it: commsproxy learns from that."
DRAG_HINT = (
    "Mail that is still waiting can be dragged from its hold folder to INBOX: it comes at "
    "once, and commsproxy learns from that too."
)


@dataclass(frozen=True, slots=True)
class DigestItem:
    sender: str  # the address, "" when the message has none
    sender_name: str
    subject: str
    account: str | None  # the customer account, None for none (or none configured)
    reason: str  # why it waited, in plain words
    mistake: tuple[str, ...]  # why holding it was perhaps a mistake; empty when nothing says so
    order: Ordering
    link: str | None = None  # the local page's "always urgent" confirmation for this sender

    @property
    def who(self) -> str:
        if self.sender_name and self.sender:
            return f"{self.sender_name} <{self.sender}>"
        return self.sender or self.sender_name or "(no sender)"

    @property
    def safe_link(self) -> str | None:
        """The link, if it is a web address (nothing else belongs in an href)."""
        link = self.link or ""
        return link if link.startswith(("http://", "https://")) else None


@dataclass(frozen=True, slots=True)
class Section:
    title: str | None  # None: the one list of a digest without headings
    kind: str  # "mistakes", "account", "other"
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    batch: str
    total: int  # messages released, listed or not
    sections: tuple[Section, ...]
    grouped: bool  # by customer account
    # Sent mail without an answer (followups.py): back since the last release, or due soon.
    waiting: tuple[WaitingItem, ...] = ()

    @property
    def shown(self) -> int:
        return sum(len(section.items) for section in self.sections)

    @property
    def left(self) -> int:
        return self.total - self.shown

    def summary(self) -> str:
        return f"{_count(self.total)} released from {self.batch}."


def _count(n: int) -> str:
    return f"{n} message{'s' if n != 1 else ''}"


def arrange(
    items: Sequence[DigestItem], batch: str, *, grouped: bool, limit: int = LIMIT
) -> Digest:
    """The items in the digest's order and sections (see the module doc), at most ``limit``."""
    ordered = sorted(items, key=lambda item: item.order.key())
    mistakes = [item for item in ordered if item.mistake]
    rest = [item for item in ordered if not item.mistake]
    sections: list[Section] = []
    if mistakes:
        sections.append(Section(MISTAKES, "mistakes", tuple(mistakes)))
    others = rest
    if grouped:
        by_account: dict[str, list[DigestItem]] = {}
        for item in rest:
            if item.account:
                by_account.setdefault(item.account, []).append(item)
        sections += [Section(name, "account", tuple(its)) for name, its in by_account.items()]
        others = [item for item in rest if not item.account]
        title = OTHER_MAIL if by_account else (THE_REST if mistakes else None)
    else:
        title = THE_REST if mistakes else None
    if others:
        sections.append(Section(title, "other", tuple(others)))
    kept: list[Section] = []
    room = limit
    for section in sections:
        if room <= 0:
            break
        listed = section.items[:room]
        room -= len(listed)
        kept.append(Section(section.title, section.kind, listed))
    return Digest(batch, len(items), tuple(kept), grouped)


def render_text(digest: Digest) -> str:
    lines = [digest.summary()]
    if digest.total:
        lines.append(ORDER_NOTE)
    for section in digest.sections:
        lines.append("")
        if section.title:
            lines += [section.title, "-" * len(section.title)]
        for item in section.items:
            lines.append(f"* {item.who}: {item.subject or '(no subject)'}")
            if digest.grouped and section.kind != "account" and item.account:
                lines.append(f"  Customer: {item.account}")
            lines.append(f"  Why it waited: {item.reason}")
            if item.mistake:
                lines.append(f"  Perhaps a mistake: {'; '.join(item.mistake)}")
            lines.append(f"  {FLAG_HINT}")
            if item.safe_link:
                lines.append(f"  Always deliver mail from {item.sender} at once: {item.safe_link}")
    if digest.left > 0:
        lines += ["", f"... and {digest.left} more."]
    if digest.waiting:
        lines += ["", WAITING, "-" * len(WAITING)]
        lines += [f"* {item.words()}" for item in digest.waiting]
    lines += ["", DRAG_HINT]
    return "\r\n".join(lines) + "\r\n"


@cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("commsproxy.triage", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(digest: Digest, subject: str) -> str:
    template = _environment().get_template("digest.html")
    return template.render(
        digest=digest,
        subject=subject,
        order_note=ORDER_NOTE,
        flag_hint=FLAG_HINT,
        drag_hint=DRAG_HINT,
        waiting_title=WAITING,
    )


def subject_of(digest: Digest) -> str:
    held = f"{digest.total} held message{'s' if digest.total != 1 else ''}"
    return f"commsproxy: {held} released ({digest.batch})"


def digest_message(
    login: str, digest: Digest, now: datetime, message_id: str | None = None
) -> bytes:
    """The digest as a message (CRLF, UTF-8): multipart/alternative, text then HTML.

    ``now`` is the release time: the Date header (and the caller's APPEND date).
    """
    subject = subject_of(digest)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address("commsproxy", "commsproxy", "localhost")
    message["To"] = _recipient(login)
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id or f"<digest-{uuid.uuid4().hex}@commsproxy.localhost>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_text(digest), cte="quoted-printable")
    message.add_alternative(render_html(digest, subject), subtype="html", cte="quoted-printable")
    return message.as_bytes()


def _recipient(login: str) -> Address | str:
    """The login as an address when it is one; else as text (a user name such as "me")."""
    local, at, domain = login.rpartition("@")
    if at and local and domain and login.isascii() and " " not in login:
        return Address(addr_spec=login)
    return login


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """A sent message still without an answer, in words (followup_digest.py makes them)."""

    subject: str
    to: str  # "bob@acme.example", or "bob@acme.example and 2 more"
    sent: str  # when it was sent, in the user's zone
    when: str  # when it came back to INBOX, or comes back
    came_back: bool  # True: back since the last release; False: due before the next

    def words(self) -> str:
        back = "came back to INBOX" if self.came_back else "comes back to INBOX"
        subject = self.subject or "(no subject)"
        return f"{subject}: sent to {self.to} on {self.sent}, {back} {self.when}"
