"""Who gets an auto-reply to held mail, and who never does (pure: a Mail and its decision).

A reply goes only to a person outside the team who wrote to the user and whose message waits in
a batch. Everything else is left alone, because a reply to a list reaches every member, a reply
to a machine starts a loop, and a colleague knows when the user reads mail:

- mail that is not held (urgent, read already, a dry run, holding stopped) or decided bulk;
- list, bulk and machine mail: the markers ``labels.bulk_reason`` reads for triage (List-*,
  Precedence, Auto-Submitted other than "no", noreply/mailer-daemon/postmaster/bounce senders,
  many recipients), plus ``Precedence: auto_reply``, ``X-Auto-Response-Suppress`` (Microsoft's
  "no auto-replies" header), an empty Return-Path (a bounce) and delivery reports;
- other auto-replies by their subject ("Auto:", "Out of office", "Automatic reply"), which
  often come without Auto-Submitted;
- mail that does not name the user in To or Cc (a list or alias the user is not addressed on);
- the user themself and colleagues: the login's own domain (not a free-mail one such as
  gmail.com) and ``[accounts] internal_domains``.

The reply goes to the Reply-To address, else the From address (RFC 3834 section 4: never to
the envelope sender, which for a list is the list), and that address must pass the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import getaddresses

from ..classifier.labels import bulk_reason
from ..classifier.mail import Mail
from ..classifier.social import FREEMAIL
from ..imap.names import BULK
from .state_store import Decision

__all__ = ["bare_address", "reply_address", "why_not"]

# Subjects of automatic answers and delivery reports, in the languages of the first users.
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort|antwoord|r[ée]ponse)"
    r"|auto\s*:|out of (?:the )?office|ooo\b|oof\b|abwesenheit|afwezig|absence"
    r"|undeliver|delivery (?:status|failure)|returned mail|mail delivery|non remis"
    r"|unzustellbar|onbestelbaar)",
    re.IGNORECASE,
)
# X-Auto-Response-Suppress values that ask for no automatic answer at all.
_SUPPRESS = frozenset({"all", "oof", "autoreply"})
# Local parts a person does not use for mail they want answered (beyond bulk_reason's list).
_MACHINE_LOCAL = re.compile(r"^(?:mailer-daemon|postmaster|bounces?|no-?reply|do-?not-?reply)\b")


def bare_address(address: str) -> str:
    """``Jan+Urgent@Acme.be`` -> ``jan@acme.be``: the same person with or without a tag."""
    local, _, domain = address.strip().lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


def reply_address(mail: Mail) -> str:
    """Where a reply goes: the first Reply-To address, else From; "" if neither is usable."""
    value = mail.headers.get("reply-to", "")
    if value:
        for _, address in getaddresses([value]):
            address = address.strip().lower()
            if _usable(address):
                return address
    return mail.sender if _usable(mail.sender) else ""


def _usable(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(local and at and "." in domain and " " not in address)


def _inside(domain: str, domains: Iterable[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def why_not(
    mail: Mail,
    decision: Decision,
    own_addresses: Iterable[str],
    internal_domains: Iterable[str] = (),
) -> str | None:
    """Why ``mail`` gets no auto-reply, in words; None when it gets one."""
    if not decision.held:
        return "not held"
    if decision.label == BULK:
        return "decided bulk"
    marker = bulk_reason(mail)
    if marker is not None:
        return marker
    headers = mail.headers
    precedence = headers.get("precedence", "").strip().lower()
    if precedence.startswith("auto"):
        return f"Precedence: {precedence}"
    suppress = {v.strip().lower() for v in headers.get("x-auto-response-suppress", "").split(",")}
    if suppress & _SUPPRESS:
        return "X-Auto-Response-Suppress"
    if "return-path" in headers and headers["return-path"].strip() in ("", "<>"):
        return "an empty Return-Path (a bounce)"
    if headers.get("content-type", "").strip().lower().startswith("multipart/report"):
        return "a delivery report"
    if _AUTOMATIC_SUBJECT.match(mail.subject):
        return "an automatic answer, by its subject"
    to = reply_address(mail)
    if not to or not mail.sender:
        return "no address to reply to"
    if _MACHINE_LOCAL.match(to.partition("@")[0]):
        return f"automated address {to}"
    own = {bare_address(a) for a in own_addresses}
    if not own:
        return "the login's own address is not known"
    if bare_address(mail.sender) in own or bare_address(to) in own:
        return "from the user"
    if not any(bare_address(a) in own for a in mail.recipients):
        return "not addressed to the user (To or Cc)"
    # The user's own domain is the team's, unless it is a free-mail one (gmail.com).
    team = ({a.rpartition("@")[2] for a in own} - FREEMAIL) | {d.lower() for d in internal_domains}
    if _inside(mail.sender.rpartition("@")[2], team) or _inside(to.rpartition("@")[2], team):
        return "from a colleague"
    return None
