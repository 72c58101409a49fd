"""Follow-ups without I/O: who is outside the team, when a sent message falls due, what answers it.

Outside the team is any recipient that is not one of the login's own addresses, not in the
team's domains (the login's own domain, ``[accounts] internal_domains``; never a free-mail
domain as a whole, see account_match.py) and not a ``.invalid`` address such as the SMTP side's
``2d@followup.invalid``. A message with no such recipient is not watched, nor is an automatic
one (``Auto-Submitted`` other than ``no``: an out-of-office reply expects no answer).

The due time is, in this order: the message's own ``...@followup.invalid`` (``2d``, ``4h``,
``monday``; ``never`` or ``none``: not watched), the customer account's ``followup_days``
(0: not watched), else ``[followup] days``; days are working days (``[followup] workdays``)
counted in the user's zone.

An answer is matched the way training matches replies (classifier/labels.py): by the headers
first (In-Reply-To or References name the watched Message-ID); a message whose headers name a
parent that is not watched is trusted and matches nothing more; one without such headers
matches by its subject: a reply or forward prefix on the same thread subject, from one of the
watched recipients, not dated before the message was sent. Only mail from outside the team
answers: the user's own copy or a colleague's note in the thread does not (the team being also
the domain the watched message was sent from, unless free mail).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..classifier.labels import normalise_id, normalise_subject
from ..classifier.mail import Mail
from ..classifier.social import FREEMAIL
from ..config import AccountsConfig, FollowupConfig
from ..timespec import TimeSpecError, When, parse_when
from .account_match import AccountGuesser, AccountRules, resolve_outgoing
from .state_store import FollowUp

__all__ = [
    "NOT_WATCHED",
    "SKEW",
    "Plan",
    "Watched",
    "answered",
    "is_outsider",
    "outside_recipients",
    "plan_followup",
]

log = logging.getLogger("commsproxy.triage")

# Local parts of a follow-up address that say "do not watch this one".
NOT_WATCHED = frozenset({"never", "none", "no", "off", "0"})
# A reply's Date is its sender's clock: a subject match may seem this much older than the
# message it answers (the same allowance labels.py gives header matches).
SKEW = timedelta(minutes=10)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def is_outsider(
    address: str, rules: AccountRules, own: Collection[str], team: Collection[str]
) -> bool:
    """Neither the login, nor a colleague (the rules' internal domains or ``team``)."""
    address = address.strip().lower()
    if not address or "@" not in address or address in own:
        return False
    domain = _domain(address)
    if domain == "invalid" or domain.endswith(".invalid"):
        return False
    if any(domain == d or domain.endswith("." + d) for d in team):
        return False
    return not rules.is_internal(address)


def outside_recipients(mail: Mail, rules: AccountRules, own: Collection[str]) -> tuple[str, ...]:
    """The sent message's To and Cc outside the team, in order, each once."""
    mine = {a.lower() for a in own} | ({mail.sender} if mail.sender else set())
    # The sender's own domain is the team's too, unless it is free mail.
    team = {_domain(mail.sender)} - FREEMAIL if mail.sender else set()
    out: list[str] = []
    for address in mail.recipients:
        if address not in out and is_outsider(address, rules, mine, team):
            out.append(address)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one sent message: watch it until ``due_at``, or not (``why``)."""

    recipients: tuple[str, ...]
    due_at: datetime | None  # None: not watched
    why: str  # in words, for the log
    #: Not watched by choice (never@, an automatic message): kept as such, so that its copy
    #: found in Sent later (whose header may not say it) is not watched either.
    remember: bool = False


def plan_followup(
    mail: Mail,
    sent_at: datetime,
    followup: str | None,
    *,
    config: FollowupConfig,
    accounts: AccountsConfig,
    rules: AccountRules,
    own: Collection[str],
    zone: ZoneInfo,
    morning: time = time(8, 0),
    guesser: AccountGuesser | None = None,
) -> Plan:
    """Whether and until when a sent message is watched (see the module doc)."""
    recipients = outside_recipients(mail, rules, own)
    if not recipients:
        return Plan((), None, "no recipient outside the team")
    given = (followup or "").strip().lower()
    when: When | None = None
    if given in NOT_WATCHED:
        return Plan(recipients, None, f"{followup}@followup.invalid", remember=True)
    if mail.automatic:
        value = mail.headers["auto-submitted"].strip().lower()
        return Plan(recipients, None, f"Auto-Submitted: {value}", remember=True)
    if given:
        try:
            when = parse_when(given)
        except TimeSpecError as err:
            log.warning("follow-up address %s@followup.invalid: %s; using the default", given, err)
    why = f"{given}@followup.invalid"
    if when is None:
        days = config.days
        why = f"[followup] days = {days}"
        filing = resolve_outgoing(mail, recipients, rules, guesser)
        account = next((a for a in accounts.accounts if filing and a.name == filing.account), None)
        if account is not None and account.followup_days is not None:
            days = account.followup_days
            why = f"account {account.name}: followup_days = {days}"
        if days <= 0:
            return Plan(recipients, None, why)
        when = When(workdays=days)
    return Plan(recipients, when.after(sent_at, zone, morning, config.workdays), why)


class Watched:
    """The watched messages indexed once (by Message-ID, by thread subject), so that a chunk of
    new mail is matched in time linear in its size, however many wait (see the module doc)."""

    def __init__(
        self, watched: Sequence[FollowUp], rules: AccountRules, own: Collection[str]
    ) -> None:
        self.rules = rules
        # The user's own addresses (also as the watched mail's From) and their domains.
        self.mine = {a.lower() for a in own} | {f.sender for f in watched if f.sender}
        self.team = {_domain(a) for a in self.mine if "@" in a} - FREEMAIL
        self.by_id = {normalise_id(f.message_id): f for f in watched}
        self.by_subject: dict[str, list[FollowUp]] = {}
        for f in watched:
            self.by_subject.setdefault(normalise_subject(f.subject), []).append(f)

    def answered_by(self, mail: Mail) -> FollowUp | None:
        """The watched message ``mail`` answers, if any."""
        sender = mail.sender.lower()
        if not is_outsider(sender, self.rules, self.mine, self.team):
            return None
        if mail.message_id and normalise_id(mail.message_id) in self.by_id:
            return None  # a copy of the watched message itself
        parents = [normalise_id(p) for p in (*mail.in_reply_to, *mail.references)]
        if parents:
            return next((self.by_id[p] for p in reversed(parents) if p in self.by_id), None)
        subject = normalise_subject(mail.subject)
        if not subject or subject == " ".join(mail.subject.split()).casefold():
            return None  # no "Re:" (or "Fwd:"): a new conversation, not an answer
        found = [
            f
            for f in self.by_subject.get(subject, ())
            if sender in f.recipients and (mail.date is None or mail.date >= f.sent_at - SKEW)
        ]
        return max(found, key=lambda f: f.sent_at, default=None)  # the latest, as labels.py

    def forget(self, followup: FollowUp) -> None:
        """Answered: no later mail of the same chunk answers it again."""
        self.by_id.pop(normalise_id(followup.message_id), None)
        same = self.by_subject.get(normalise_subject(followup.subject), [])
        self.by_subject[normalise_subject(followup.subject)] = [
            f for f in same if f is not followup
        ]


def answered(
    mail: Mail, watched: Sequence[FollowUp], rules: AccountRules, own: Collection[str]
) -> FollowUp | None:
    """The watched message ``mail`` answers, if any (one message; see ``Watched``)."""
    return Watched(watched, rules, own).answered_by(mail)
