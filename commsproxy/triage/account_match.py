"""Which customer account a message belongs to: the config's rules first, then the model.

Pure logic, no I/O. Rules: an exact address, then a domain (subdomains included). Free-mail
domains never match as a whole — one gmail customer does not make every gmail sender a
customer — so those customers are listed by address. Mail between colleagues (the team's own
domains) is internal and filed only when it names a customer in To or Cc. What the rules do not
settle goes to the accounts model, which answers only above its precision threshold; a message
may well belong to no account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..classifier.mail import Mail
from ..classifier.social import FREEMAIL
from ..config import AccountConfig, AccountsConfig

__all__ = [
    "FREEMAIL",
    "AccountGuesser",
    "AccountRules",
    "Filing",
    "ModelGuesser",
    "resolve_incoming",
    "resolve_outgoing",
]


@dataclass(frozen=True, slots=True)
class Filing:
    account: str  # the folder name under the accounts root
    reason: str  # in words, for the log and `explain`


class AccountGuesser(Protocol):
    """The accounts model as triage sees it: (folder name, confidence) or None per message."""

    def guess(self, mails: Sequence[Mail]) -> list[tuple[str, float] | None]: ...


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


class AccountRules:
    def __init__(self, config: AccountsConfig, own_addresses: Sequence[str] = ()) -> None:
        self.config = config
        self._by_address = {a: acc for acc in config.accounts for a in acc.addresses}
        self._by_domain = {d: acc for acc in config.accounts for d in acc.domains}
        own = [a.lower() for a in own_addresses]
        self._internal = set(config.internal_domains) | {_domain(a) for a in own if "@" in a}
        self._internal -= FREEMAIL  # a colleague on gmail must not make gmail internal

    def match(self, address: str) -> tuple[AccountConfig, str] | None:
        """The account an address belongs to, and the rule that said so."""
        address = address.strip().lower()
        if not address:
            return None
        account = self._by_address.get(address)
        if account is not None:
            return account, address
        domain = _domain(address)
        if domain in FREEMAIL:
            return None
        parts = domain.split(".")
        for i in range(len(parts) - 1):  # acme.com, then eu.acme.com's parents
            account = self._by_domain.get(".".join(parts[i:]))
            if account is not None:
                return account, ".".join(parts[i:])
        return None

    def is_internal(self, address: str) -> bool:
        domain = _domain(address.strip())
        return any(domain == d or domain.endswith("." + d) for d in self._internal)

    def first_match(self, addresses: Sequence[str], role: str) -> Filing | None:
        for address in addresses:
            found = self.match(address)
            if found is not None:
                account, rule = found
                return Filing(account.name, f"{role} {address} ({rule})")
        return None


def resolve_incoming(
    mails: Sequence[Mail], rules: AccountRules, guesser: AccountGuesser | None
) -> list[Filing | None]:
    """The account of each received message, or None."""
    out: list[Filing | None] = []
    ask: list[int] = []
    for i, mail in enumerate(mails):
        filing = rules.first_match([mail.sender], "from")
        if filing is None:
            filing = rules.first_match([*mail.to, *mail.cc], "to")
        out.append(filing)
        # Only an outsider's mail is the model's to guess: internal mail without a customer
        # address, or mail without a sender, stays unfiled.
        if filing is None and mail.sender and not rules.is_internal(mail.sender):
            ask.append(i)
    _ask_model(mails, ask, out, guesser)
    return out


def resolve_outgoing(
    mail: Mail, recipients: Sequence[str], rules: AccountRules, guesser: AccountGuesser | None
) -> Filing | None:
    """The account of a sent message: its first customer recipient, else the model's guess."""
    everyone = [*mail.to, *mail.cc, *(r.lower() for r in recipients)]
    filing = rules.first_match(everyone, "to")
    outsiders = [a for a in everyone if a and not rules.is_internal(a)]
    if filing is None and outsiders:
        out: list[Filing | None] = [None]
        _ask_model([mail], [0], out, guesser)
        filing = out[0]
    return filing


def _ask_model(
    mails: Sequence[Mail], ask: list[int], out: list[Filing | None], guesser: AccountGuesser | None
) -> None:
    if guesser is None or not ask:
        return
    for i, guess in zip(ask, guesser.guess([mails[i] for i in ask]), strict=True):
        if guess is not None:
            out[i] = Filing(guess[0], f"accounts model, confidence {guess[1]:.2f}")


class ModelGuesser:
    """Adapts a loaded accounts model (classifier.predict.Classifier) to ``AccountGuesser``.

    The classifier applies the model's own threshold: below it, ``account`` is None.
    """

    def __init__(self, classifier: object) -> None:
        self._classifier = classifier

    def guess(self, mails: Sequence[Mail]) -> list[tuple[str, float] | None]:
        # Imported here so that triage stays free of scikit-learn until a model is used.
        from ..classifier.features import Sample

        verdicts = self._classifier.classify([Sample(mail) for mail in mails])  # type: ignore[attr-defined]
        return [
            (v.account, float(v.account_score or 0.0)) if v.account is not None else None
            for v in verdicts
        ]
