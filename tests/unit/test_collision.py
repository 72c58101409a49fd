"""Collision: the texts, what makes "the same reply", and the ten-minute window by the clock.

The look on the server is tested against Dovecot (tests/integration/test_collision.py); here a
fake engine with no link counts whether the check would look at all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.classifier.mail import parse_mail
from commsproxy.config import AccountConfig, AccountsConfig
from commsproxy.triage.account_match import AccountRules
from commsproxy.triage.collision import CollisionCheck, parent_of, resend_key
from commsproxy.triage.collision_notice import Answer, hold_refusal, notice_message, when
from commsproxy.triage.filer import FilingSetup
from commsproxy.triage.state_store import StateStore

ZONE = ZoneInfo("Europe/Brussels")
NOW = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)  # 14:30 in Brussels
ANNA = Answer("Anna Peeters", "anna@team.example", NOW - timedelta(minutes=28), "Re: Order")


def test_the_refusal_says_who_answered_when_and_what_to_do() -> None:
    reply = hold_refusal(ANNA, NOW, ZONE)
    assert reply == (
        "550 5.7.1 Not sent: Anna Peeters <anna@team.example> answered this thread at 14:02."
        " Your message is kept in Drafts/Collision; send it again within 10 minutes to send it"
        " anyway."
    )


def test_the_refusal_is_ascii_on_one_line() -> None:
    answer = Answer("Zoë\r\nO'Brien", "zoe@team.example", NOW - timedelta(days=3), "x")
    reply = hold_refusal(answer, NOW, ZONE)
    assert reply.isascii()
    assert "\n" not in reply
    assert "Zoe O'Brien <zoe@team.example> answered this thread on Fri 4 Dec at 14:30" in reply


def test_when_names_the_day_only_when_it_is_not_today() -> None:
    assert when(NOW, NOW, ZONE) == "at 14:30"
    assert when(NOW - timedelta(days=1), NOW, ZONE) == "on Sun 6 Dec at 14:30"


def test_the_notice_is_one_line_about_who_and_the_thread() -> None:
    mail = parse_mail(notice_message(ANNA, "Re: Order 42", NOW, ZONE))
    assert mail.subject == "Anna Peeters answered this thread too, at 14:02: Re: Order 42"
    assert mail.sender == "commsproxy@localhost"
    assert "anna@team.example" in mail.body


def test_the_parent_is_in_reply_to_else_the_last_reference() -> None:
    reply = parse_mail(b"In-Reply-To: <q@acme.example>\r\nReferences: <a@x> <b@x>\r\n\r\n")
    assert parent_of(reply) == "<q@acme.example>"
    assert parent_of(parse_mail(b"References: <a@x> <b@x>\r\n\r\n")) == "<b@x>"
    assert parent_of(parse_mail(b"Subject: new\r\n\r\n")) is None


def test_the_same_reply_is_sender_parent_and_recipients_in_any_order() -> None:
    one = resend_key("Bob@team.example", "<q@x>", ["a@acme.example", "B@acme.example"])
    assert one == resend_key("bob@team.example", "<q@x>", ["b@acme.example", "a@acme.example"])
    assert one != resend_key("bob@team.example", "<q@x>", ["a@acme.example"])
    assert one != resend_key("bob@team.example", "<r@x>", ["a@acme.example", "b@acme.example"])


# -- the window, by the engine's clock ---------------------------------------------------------


@dataclass
class _Settings:
    login: str
    filing: FilingSetup
    clock: object
    accounts: AccountsConfig
    dry_run: bool = False
    own_addresses: tuple[str, ...] = ("bob@team.example",)
    batches: tuple[object, ...] = ()


@dataclass
class _Engine:
    settings: _Settings
    ready: bool = True
    worker: None = None  # no link: a look ends at once, counted
    between_steps: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Hub:
    store: StateStore
    engines: dict[str, _Engine]

    def login_for(self, user: str) -> str | None:
        return "bob" if user == "bob" else None


@dataclass(frozen=True)
class _Outgoing:
    user: str | None
    mail_from: str
    rcpt_tos: tuple[str, ...]
    head: bytes

    def content(self) -> bytes:
        return self.head


HEAD = (
    b"From: Bob <bob@team.example>\r\nTo: ceo@acme.example\r\nSubject: Re: Order\r\n"
    b"In-Reply-To: <q1@acme.example>\r\nReferences: <q1@acme.example>\r\n\r\n"
)


@pytest.mark.parametrize(("held_ago", "looks"), [(None, 1), (9, 0), (10, 0), (11, 1)])
def test_a_reply_sent_again_within_ten_minutes_goes_without_a_look(
    tmp_path: Path, held_ago: int | None, looks: int
) -> None:
    accounts = AccountsConfig(
        accounts=(AccountConfig("acme", "Acme", ("acme.example",)),),
        internal_domains=("team.example",),
        collision="hold",
    )
    now = NOW
    settings = _Settings("bob", FilingSetup(AccountRules(accounts)), lambda: now, accounts)
    message = _Outgoing("bob", "bob@team.example", ("ceo@acme.example",), HEAD)
    with StateStore.open(tmp_path) as store:
        if held_ago is not None:
            key = resend_key("bob@team.example", "<q1@acme.example>", ["ceo@acme.example"])
            store.hold_collision("bob", key, NOW - timedelta(minutes=held_ago), NOW)
        check = CollisionCheck(_Hub(store, {"bob": _Engine(settings)}))  # type: ignore[arg-type]
        verdict = asyncio.run(check.check(message))
    assert verdict.refusal is None
    assert check.looks == looks


def test_no_look_for_a_new_message_or_with_collision_off(tmp_path: Path) -> None:
    accounts = AccountsConfig(
        accounts=(AccountConfig("acme", "Acme", ("acme.example",)),), collision="off"
    )
    settings = _Settings("bob", FilingSetup(AccountRules(accounts)), lambda: NOW, accounts)
    with StateStore.open(tmp_path) as store:
        check = CollisionCheck(_Hub(store, {"bob": _Engine(settings)}))  # type: ignore[arg-type]
        asyncio.run(check.check(_Outgoing("bob", "b@x", ("ceo@acme.example",), HEAD)))
        settings.accounts = AccountsConfig(accounts=accounts.accounts, collision="hold")
        fresh = b"From: bob@team.example\r\nTo: ceo@acme.example\r\nSubject: Hi\r\n\r\n"
        asyncio.run(check.check(_Outgoing("bob", "b@x", ("ceo@acme.example",), fresh)))
        asyncio.run(check.check(_Outgoing("carol", "c@x", ("ceo@acme.example",), HEAD)))
    assert check.looks == 0
