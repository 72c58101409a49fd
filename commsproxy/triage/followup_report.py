"""What the ``followups`` command, the Today page and the digest say of follow-ups, as data.

Read from the state store only (``run`` need not be running): per login, the sent messages
waiting for an answer by due time, and with ``everything`` the answered, returned and
not-watched ones too, newest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any

from .state_store import FollowUp, StateStore

__all__ = [
    "EVERY_STATE",
    "WAITING",
    "followup_json",
    "followups_by_login",
    "recipients_words",
    "when_words",
]

WAITING = ("waiting", "returning")
EVERY_STATE = (*WAITING, "returned", "answered", "cancelled")


def followups_by_login(store: StateStore, *, everything: bool = False) -> dict[str, list[FollowUp]]:
    """Each login's follow-ups: waiting first (soonest due first), then the rest (newest sent
    first) with ``everything``."""
    out: dict[str, list[FollowUp]] = {}
    for followup in store.followups(None, WAITING):
        out.setdefault(followup.login, []).append(followup)
    if everything:
        done = store.followups(None, EVERY_STATE[len(WAITING) :])
        for followup in sorted(done, key=lambda f: f.sent_at, reverse=True):
            out.setdefault(followup.login, []).append(followup)
    return out


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def followup_json(followup: FollowUp) -> dict[str, Any]:
    return {
        "message_id": followup.message_id,
        "to": list(followup.recipients),
        "subject": followup.subject,
        "sent": _iso(followup.sent_at),
        "due": _iso(followup.due_at) if followup.state != "cancelled" else None,
        "state": followup.state,
        "answered_by": followup.answered_by,
        "answered": _iso(followup.answered_at),
        "returned": _iso(followup.returned_at),
    }


def when_words(moment: datetime, zone: tzinfo, now: datetime | None = None) -> str:
    """``Wed 09 Dec 10:00`` in ``zone``; with the year when it is not ``now``'s."""
    local = moment.astimezone(zone)
    same_year = now is None or local.year == now.astimezone(zone).year
    return local.strftime("%a %d %b %H:%M" if same_year else "%a %d %b %Y %H:%M")


def recipients_words(recipients: Iterable[str]) -> str:
    people = list(recipients)
    if len(people) <= 2:
        return " and ".join(people) or "(nobody)"
    return f"{people[0]} and {len(people) - 1} more"
