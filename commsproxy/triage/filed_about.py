"""What the Accounts page shows of a filed message, read from its header when it is filed:
who it is from (mail in) or to (mail out), and its subject.

Kept in the store with the filing, so the page needs neither the server nor the decision (sent
mail has none) to say what the team wrote to whom.
"""

from __future__ import annotations

import re

from ..classifier.mail import Mail, MailParseError, parse_mail

__all__ = ["HEADER_FIELDS", "MAX_CHARS", "filed_about", "header_of", "mail_about"]

MAX_CHARS = 200  # of each value: a subject is for reading in one line, not for storing mail
# What filed_about reads, for a FETCH of only these fields.
HEADER_FIELDS = "BODY.PEEK[HEADER.FIELDS (FROM SENDER TO CC SUBJECT)]"
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def header_of(message: bytes) -> bytes:
    """The header block of a whole message (a sent one can be large: its body is not read)."""
    end = _HEADER_END.search(message)
    return message if end is None else message[: end.end()]


def filed_about(direction: str, header: bytes) -> tuple[str, str]:
    """(peer, subject): for incoming mail the sender, for outgoing mail the first recipient
    (To, then Cc) with "and N more"; the subject decoded. Empty when the header has none."""
    try:
        mail = parse_mail(header_of(header))
    except MailParseError:
        return "", ""
    return mail_about(direction, mail)


def mail_about(direction: str, mail: Mail) -> tuple[str, str]:
    """As :func:`filed_about`, of a message parsed already."""
    if direction == "outgoing":
        recipients = list(dict.fromkeys(mail.recipients))
        peer = recipients[0] if recipients else ""
        if len(recipients) > 1:
            peer += f" and {len(recipients) - 1} more"
    elif mail.sender_name and mail.sender and mail.sender_name != mail.sender:
        peer = f"{mail.sender_name} <{mail.sender}>"
    else:
        peer = mail.sender or mail.sender_name
    return _bounded(peer), _bounded(mail.subject)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
