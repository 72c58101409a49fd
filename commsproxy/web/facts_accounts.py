"""What the Accounts page shows, as plain data: per customer account the latest mail in and
out, who answered, and what waits for an answer.

Read from the filings in the state store: every message filed into an account folder, in or
out, with the login that filed it, and what was kept of it when it was filed (the sender of
mail in, the recipients of mail out, the subject; ``triage/filed_about.py``). Rows filed before
that was kept have neither, and say so. "Waiting for an answer" is incoming mail filed after
the account's latest outgoing message, from anyone of the team: the store knows no threads, so
this is the honest reading of "nobody wrote to this customer since". By the same reading a
message in was answered by whoever filed the first message out after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Config
from ..triage.state_store import Filed, StateStore

__all__ = ["AccountNow", "FiledMail", "accounts_facts", "waited"]

LATEST = 5  # messages shown each way per account


@dataclass(frozen=True)
class FiledMail:
    at: datetime
    login: str  # who filed it: for outgoing mail, who wrote
    message_id: str | None
    direction: str  # incoming or outgoing
    peer: str | None  # in: the sender; out: the first recipient (and N more); None: not kept
    subject: str | None  # None: filed before subjects were kept
    answered_by: str | None = None  # in: who filed the first message out after it
    answered_at: datetime | None = None

    @property
    def kept(self) -> bool:
        """Whether the filing kept who and what (rows filed before that have neither)."""
        return self.peer is not None or self.subject is not None

    def waited(self, now: datetime) -> str:
        return waited(self.at, now)


@dataclass(frozen=True)
class AccountNow:
    key: str
    name: str
    owner: str | None
    incoming: tuple[FiledMail, ...]  # newest first
    outgoing: tuple[FiledMail, ...]
    answered_by: tuple[str, ...]  # logins that wrote to the account, latest first
    waiting: tuple[FiledMail, ...]  # incoming mail since the latest outgoing, newest first

    @property
    def all_kept(self) -> bool:
        """Whether every message shown kept who and what when it was filed."""
        return all(m.kept for m in (*self.incoming, *self.outgoing, *self.waiting))


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
        accounts.append(_account(key, account.name if account else key,
                                 account.owner if account else None, filings))  # fmt: skip
    return tuple(a for a in accounts if a.key in configured or a.incoming or a.outgoing)


def _account(key: str, name: str, owner: str | None, filings: list[Filed]) -> AccountNow:
    """``filings`` newest first."""
    outgoing = [_mail(f) for f in filings if f.direction == "outgoing"]
    incoming: list[FiledMail] = []
    answer: FiledMail | None = None  # the earliest message out after the one looked at
    for filed in filings:
        if filed.direction == "outgoing":
            answer = _mail(filed)
        elif filed.direction == "incoming":
            mail = _mail(filed)
            if answer is not None:
                mail = _answered(mail, answer)
            incoming.append(mail)
    waiting = [m for m in incoming if m.answered_by is None]
    answered = tuple(dict.fromkeys(m.login for m in outgoing))
    return AccountNow(key, name, owner, tuple(incoming[:LATEST]), tuple(outgoing[:LATEST]),
                      answered, tuple(waiting))  # fmt: skip


def _mail(filed: Filed) -> FiledMail:
    return FiledMail(filed.filed_at.astimezone(), filed.login, filed.message_id,
                     filed.direction, filed.peer, filed.subject)  # fmt: skip


def _answered(mail: FiledMail, answer: FiledMail) -> FiledMail:
    return FiledMail(mail.at, mail.login, mail.message_id, mail.direction, mail.peer,
                     mail.subject, answer.login, answer.at)  # fmt: skip


def waited(since: datetime, now: datetime) -> str:
    """How long from ``since`` to ``now``, in the words the page uses ("2 h 05 min")."""
    minutes = max(0, int((now - since).total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"
