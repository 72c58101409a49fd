"""The user's other addresses: aliases their mail arrives at but they never send from.

The user's addresses come from the From of their sent mail (labels.infer_user_addresses), yet
mail often reaches them at an older or shorter form of their name: ``mcuilla@enron.com`` and
``mcuilla@ect.enron.com`` for ``martin.cuilla@enron.com``. Without them such mail reads as "not
addressed to you", the mark of list and broadcast mail. In one of the four complete Enron
mailboxes a fifth of the received mail is addressed that way, two of its six urgent messages
among it.

An address counts as the user's when all three hold:

- it is at one of the user's own domains, a subdomain of one or a parent of one (never at a
  free mail provider, where the same name is someone else's account);
- its local part spells the user's name as their own address does: the surname last, before
  it only the first name or initials (``m.cuilla``, ``w..delainey``), or run together with the
  first name or its initial (``mcuilla``, ``cuillam``, ``martincuilla``);
- mail arrived in the mailbox addressed to it and to none of the user's known addresses (how
  else would it be in this mailbox): a colleague of the same surname is named beside the user
  on the mail they share, never instead of them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

from .freemail import FREEMAIL
from .mail import Mail

__all__ = ["aliases_of", "find_aliases", "is_alias"]

_SEPARATORS = re.compile(r"[._-]+")
# A surname shorter than this is too common a string to match a name on.
MIN_SURNAME = 3


def _tokens(local: str) -> list[str]:
    return [token for token in _SEPARATORS.split(local.split("+", 1)[0]) if token]


def _related(domain: str, own: str) -> bool:
    return domain == own or domain.endswith("." + own) or own.endswith("." + domain)


def _spells(local: str, first: str, last: str) -> bool:
    """Whether ``local`` writes the name first ... last as an address does."""
    tokens = _tokens(local)
    if not tokens:
        return False
    if len(tokens) >= 2:
        if tokens[-1] == last:
            return all(t == first or len(t) == 1 for t in tokens[:-1])
        # "cuilla.martin", "cuilla.m"
        return len(tokens) == 2 and tokens[0] == last and tokens[1] in (first, first[0])
    word = tokens[0]
    return word in (first[0] + last, first + last, last + first[0], last + first)


def is_alias(address: str, users: Collection[str]) -> bool:
    """Whether ``address`` spells one of ``users``' names at their domain (module doc)."""
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or domain in FREEMAIL or address in users:
        return False
    for user in users:
        own_local, _, own_domain = user.rpartition("@")
        if own_domain in FREEMAIL or not _related(domain, own_domain):
            continue
        name = _tokens(own_local)
        if len(name) < 2 or len(name[-1]) < MIN_SURNAME:
            continue  # no first name and surname to spell
        if _spells(local, name[0], name[-1]):
            return True
    return False


def find_aliases(users: Collection[str], received: Iterable[Mail]) -> frozenset[str]:
    """The user's aliases among the recipients of ``received`` mail (module doc)."""
    users = frozenset(u.strip().lower() for u in users)
    if not users:
        return frozenset()
    found: set[str] = set()
    for mail in received:
        found.update(aliases_of(mail.to, mail.cc, users))
    return frozenset(found)


def aliases_of(to: Sequence[str], cc: Sequence[str], users: Collection[str]) -> list[str]:
    """The aliases one message's recipients show: none when it names a known address."""
    recipients = (*to, *cc)
    if not recipients or any(a in users for a in recipients):
        return []
    return [a for a in recipients if is_alias(a, users)]
