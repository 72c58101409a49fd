"""The user's history with each sender as of training, saved beside the model for live triage.

Training gives every message the social features of the mail before it (social.py). Live mail
needs the same features, or the model sees every sender as new and its strongest signal --
people you answer, and answer fast -- is lost at the moment it matters. The proxy does not
re-read the mailbox for each message, so training also saves the totals as of its newest mail:
per sender and per domain the messages received, the replies and the median reply time, and
the Message-IDs the user sent (mail answering one of them is "a reply to your message").

The file is JSON, not a pickle: it is data, and loading it runs no code. It names the user's
correspondents, so it is written owner-only, next to the model in the user's data dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..models.store import write_atomically
from .features import Context
from .labels import normalise_id
from .mail import Mail
from .social import NO_HISTORY, SenderStats, SocialHistory, domain_of

__all__ = ["Contacts", "ContactsError", "contacts_path"]

FORMAT = 1
SUFFIX = ".contacts.json"


class ContactsError(ValueError):
    """A contacts file that cannot be used; the message names the file and what is wrong."""


def contacts_path(model_path: Path) -> Path:
    """``.../urgency.skops`` -> ``.../urgency.contacts.json``."""
    return model_path.with_name(model_path.stem + SUFFIX)


@dataclass(frozen=True)
class Contacts:
    login: str | None  # the IMAP login it was read from; None for mail read from files
    created: datetime
    user_addresses: frozenset[str]
    senders: Mapping[str, SenderStats]
    domains: Mapping[str, SenderStats]
    sent_ids: frozenset[str]

    @classmethod
    def from_history(
        cls,
        social: SocialHistory,
        user_addresses: Iterable[str],
        sent_ids: Iterable[str],
        *,
        login: str | None = None,
        now: datetime | None = None,
    ) -> Contacts:
        senders, domains = social.totals()
        return cls(
            login,
            now or datetime.now(UTC),
            frozenset(user_addresses),
            senders,
            domains,
            frozenset(sent_ids),
        )

    def context(self, mail: Mail, user_addresses: Iterable[str] = ()) -> Context:
        """The features' view of a new message: the history as of training."""
        sender = mail.sender.lower()
        thread = (*mail.in_reply_to, *mail.references)
        return Context(
            user_addresses=self.user_addresses | frozenset(user_addresses),
            sender=self.senders.get(sender, NO_HISTORY) if sender else None,
            domain=self.domains.get(domain_of(sender), NO_HISTORY) if sender else None,
            replies_to_user=any(normalise_id(i) in self.sent_ids for i in thread),
        )

    def save(self, path: Path) -> None:
        """Write atomically and owner-only (it lists who the user corresponds with)."""
        document = {
            "format": FORMAT,
            "login": self.login,
            "created": self.created.isoformat(),
            "user_addresses": sorted(self.user_addresses),
            "senders": _rows(self.senders),
            "domains": _rows(self.domains),
            "sent_ids": sorted(self.sent_ids),
        }
        write_atomically(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> Contacts:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ContactsError(f"{path}: cannot read the contacts file: {err}") from None
        try:
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
            return cls(
                document["login"],
                datetime.fromisoformat(document["created"]),
                frozenset(map(str, document["user_addresses"])),
                _parse_rows(document["senders"]),
                _parse_rows(document["domains"]),
                frozenset(map(str, document["sent_ids"])),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ContactsError(
                f"{path}: not a contacts file of this version ({err}); run `commsproxy train` again"
            ) from None


def _rows(stats: Mapping[str, SenderStats]) -> dict[str, list[Any]]:
    return {key: [s.received, s.replied, s.median_reply_minutes] for key, s in stats.items()}


def _parse_rows(rows: Mapping[str, Any]) -> dict[str, SenderStats]:
    parsed = {}
    for key, (received, replied, median) in rows.items():
        if not isinstance(received, int) or not isinstance(replied, int):
            raise ValueError(f"counts for {key!r} are not whole numbers")
        parsed[str(key)] = SenderStats(
            received, replied, None if median is None else float(median), None
        )
    return parsed
