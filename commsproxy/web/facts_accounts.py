"""What the Accounts page shows, as plain data: per customer account the latest mail in and
out, who answered, and what waits for an answer.

Read from the filings in the state store (every message filed into an account folder, in or
out, with the login that filed it) and, for incoming mail, the decision that names its sender
and subject. "Waiting for an answer" is incoming mail filed after the account's latest
outgoing message, from anyone of the team: the store knows no threads, so this is the honest
reading of "nobody wrote to this customer since".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Config
from ..triage.state_store import Filed, StateStore

__all__ = ["AccountNow", "FiledMail", "accounts_facts"]

LATEST = 5  # messages shown each way per account


@dataclass(frozen=True)
class FiledMail:
    at: datetime
    login: str  # who filed it: for outgoing mail, who wrote
    message_id: str | None
    sender: str
    subject: str


@dataclass(frozen=True)
class AccountNow:
    key: str
    name: str
    owner: str | None
    incoming: tuple[FiledMail, ...]  # newest first
    outgoing: tuple[FiledMail, ...]
    answered_by: tuple[str, ...]  # logins that wrote to the account, latest first
    waiting: tuple[FiledMail, ...]  # incoming mail since the latest outgoing


def accounts_facts(config: Config, store: StateStore) -> tuple[AccountNow, ...]:
    """Every account with filed mail, plus the configured ones. Blocking: call from a thread."""
    by_account: dict[str, list[Filed]] = {}
    for filed in store.recent_filings(1000):
        by_account.setdefault(filed.account, []).append(filed)
    configured = {a.key: a for a in config.accounts.accounts}
    names = {a.name: a for a in config.accounts.accounts}
    keys = list(dict.fromkeys([*configured, *by_account]))
    accounts = []
    for key in keys:
        account = configured.get(key) or names.get(key)
        filings = by_account.get(key, [])
        if account is not None and account.name in by_account and account.name != key:
            filings = sorted([*filings, *by_account.pop(account.name)],
                             key=lambda f: f.filed_at, reverse=True)  # fmt: skip
        accounts.append(_account(store, key, account.name if account else key,
                                 account.owner if account else None, filings))  # fmt: skip
    return tuple(a for a in accounts if a.key in configured or a.incoming or a.outgoing)


def _account(
    store: StateStore, key: str, name: str, owner: str | None, filings: list[Filed]
) -> AccountNow:
    incoming = [_mail(store, f) for f in filings if f.direction == "incoming"]
    outgoing = [_mail(store, f) for f in filings if f.direction == "outgoing"]
    last_out = outgoing[0].at if outgoing else None
    waiting = [m for m in incoming if last_out is None or m.at > last_out]
    answered = tuple(dict.fromkeys(m.login for m in outgoing))
    return AccountNow(key, name, owner, tuple(incoming[:LATEST]), tuple(outgoing[:LATEST]),
                      answered, tuple(waiting))  # fmt: skip


def _mail(store: StateStore, filed: Filed) -> FiledMail:
    sender = subject = ""
    if filed.message_id is not None and filed.direction == "incoming":
        decisions = store.decisions_for_message_id(filed.message_id)
        if decisions:
            sender, subject = decisions[0].sender, decisions[0].subject
    return FiledMail(filed.filed_at.astimezone(), filed.login, filed.message_id, sender, subject)
