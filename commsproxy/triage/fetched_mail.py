"""A message fetched from INBOX as a Mail, or an empty Mail when it cannot be parsed."""

from __future__ import annotations

from ..classifier.mail import Mail, MailParseError, parse_mail
from ..imap.names import INBOX
from ..imap.responses import Fetched

__all__ = ["mail_of"]


def mail_of(fetched: Fetched) -> Mail:
    try:
        return parse_mail(fetched.raw, folder=INBOX, size=fetched.size)
    except MailParseError:
        return Mail(
            message_id=None,
            in_reply_to=(),
            references=(),
            date=None,
            sender="",
            sender_name="",
            to=(),
            cc=(),
            subject="",
            body="",
        )
