"""Follow-ups without a server: who is outside the team, due times, what answers a sent message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from commsproxy.classifier.mail import Mail
from commsproxy.config import AccountConfig, AccountsConfig, FollowupConfig
from commsproxy.triage.account_match import AccountRules
from commsproxy.triage.followup_match import (
    Watched,
    answered,
    outside_recipients,
    plan_followup,
)
from commsproxy.triage.state_store import FollowUp

BERLIN = ZoneInfo("Europe/Berlin")
OWN = ("me@team.example",)
ACCOUNTS = AccountsConfig(
    internal_domains=("team.example", "team-eu.example"),
    accounts=(
        AccountConfig("acme", "Acme", domains=("acme.example",), followup_days=1),
        AccountConfig("quiet", "Quiet", domains=("quiet.example",), followup_days=0),
    ),
)
RULES = AccountRules(ACCOUNTS, OWN)
FRIDAY = datetime(2026, 12, 4, 10, 0, tzinfo=BERLIN)  # a Friday


def mail(
    *,
    sender: str = "me@team.example",
    to: tuple[str, ...] = ("bob@customer.example",),
    cc: tuple[str, ...] = (),
    subject: str = "Offer",
    mid: str = "<sent-1@team.example>",
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    date: datetime | None = FRIDAY,
) -> Mail:
    return Mail(
        mid, in_reply_to, references, date.astimezone(UTC) if date else None, sender, "",
        to, cc, subject, "text",
    )  # fmt: skip


def plan(m: Mail, followup: str | None = None, days: int = 3) -> datetime | None:
    return plan_followup(
        m, FRIDAY, followup, config=FollowupConfig(days=days), accounts=ACCOUNTS,
        rules=RULES, own=OWN, zone=BERLIN,
    ).due_at  # fmt: skip


def watched(**kw: object) -> FollowUp:
    values: dict[str, object] = {
        "login": "me", "message_id": "sent-1@team.example",
        "recipients": ("bob@customer.example",), "subject": "Offer",
        "sent_at": FRIDAY.astimezone(UTC), "due_at": FRIDAY + timedelta(days=5),
        "state": "waiting",
    }  # fmt: skip
    values.update(kw)
    return FollowUp(**values)  # type: ignore[arg-type]


# -- who is watched ---------------------------------------------------------------------------


def test_only_recipients_outside_the_team_are_watched() -> None:
    m = mail(
        to=("colleague@team.example", "bob@customer.example", "x@eu.team-eu.example"),
        cc=("me@team.example", "2d@followup.invalid", "ann@gmail.com", "bob@customer.example"),
    )
    assert outside_recipients(m, RULES, OWN) == ("bob@customer.example", "ann@gmail.com")


def test_mail_to_colleagues_only_is_not_watched() -> None:
    assert plan(mail(to=("colleague@team.example",), cc=("other@team-eu.example",))) is None
    assert plan(mail(to=("me@team.example",))) is None


def test_the_senders_own_domain_is_the_team_even_unconfigured() -> None:
    rules = AccountRules(AccountsConfig(), ())
    m = mail(sender="me@small.example", to=("pal@small.example", "x@outside.example"))
    assert outside_recipients(m, rules, ()) == ("x@outside.example",)
    # ... but a free-mail sender does not make all of gmail the team.
    m = mail(sender="me@gmail.com", to=("pal@gmail.com",))
    assert outside_recipients(m, rules, ()) == ("pal@gmail.com",)


# -- due times --------------------------------------------------------------------------------


def test_days_are_working_days_in_the_users_zone() -> None:
    # Friday + 3 working days: Wednesday, same local time (the weekend skipped).
    assert plan(mail()) == datetime(2026, 12, 9, 10, 0, tzinfo=BERLIN)
    assert plan(mail(), days=1) == datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)


def test_an_accounts_followup_days_wins_and_zero_means_not_watched() -> None:
    assert plan(mail(to=("ceo@acme.example",))) == datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)
    assert plan(mail(to=("ceo@quiet.example",))) is None


@pytest.mark.parametrize(
    ("given", "due"),
    [
        ("2d", datetime(2026, 12, 8, 10, 0, tzinfo=BERLIN)),
        ("4h", datetime(2026, 12, 4, 14, 0, tzinfo=BERLIN)),
        ("monday", datetime(2026, 12, 7, 8, 0, tzinfo=BERLIN)),
        ("tomorrow", datetime(2026, 12, 5, 8, 0, tzinfo=BERLIN)),
    ],
)
def test_the_messages_own_followup_address_wins(given: str, due: datetime) -> None:
    assert plan(mail(to=("ceo@acme.example",)), given) == due


@pytest.mark.parametrize("given", ["never", "none", "NEVER", "0"])
def test_never_means_not_watched(given: str) -> None:
    assert plan(mail(), given) is None


def test_an_unreadable_followup_address_falls_back_to_the_default() -> None:
    assert plan(mail(), "someday") == datetime(2026, 12, 9, 10, 0, tzinfo=BERLIN)


# -- answers ----------------------------------------------------------------------------------


def reply(**kw: object) -> Mail:
    values: dict[str, object] = {
        "sender": "bob@customer.example", "to": ("me@team.example",), "subject": "Re: Offer",
        "mid": "<reply@customer.example>", "date": FRIDAY + timedelta(days=1),
    }  # fmt: skip
    values.update(kw)
    return mail(**values)  # type: ignore[arg-type]


def test_in_reply_to_or_references_name_the_watched_message() -> None:
    w = [watched(), watched(message_id="other@team.example", subject="Other")]
    found = answered(reply(in_reply_to=("<sent-1@team.example>",)), w, RULES, OWN)
    assert found is w[0]
    # Anyone outside in the thread answers, with any subject.
    later = reply(sender="else@elsewhere.example", subject="new words",
                  references=("<x@y>", "<other@team.example>", "<z@y>"))  # fmt: skip
    assert answered(later, w, RULES, OWN) is w[1]


def test_headers_naming_another_message_are_trusted() -> None:
    # labels.py's rule: a parent that is not watched is no answer, whatever the subject says.
    assert answered(reply(in_reply_to=("<unrelated@x>",)), [watched()], RULES, OWN) is None


def test_without_headers_the_thread_subject_and_a_watched_recipient_match() -> None:
    w = [watched()]
    assert answered(reply(subject="AW: [ext] offer"), w, RULES, OWN) is w[0]
    assert answered(reply(subject="Offer"), w, RULES, OWN) is None  # no reply prefix
    assert answered(reply(subject="Re: Another"), w, RULES, OWN) is None
    assert answered(reply(sender="stranger@customer.example"), w, RULES, OWN) is None
    # Dated well before the watched message went: an older message of the thread.
    assert answered(reply(date=FRIDAY - timedelta(hours=2)), w, RULES, OWN) is None


def test_the_latest_watched_message_of_a_thread_is_answered() -> None:
    first = watched(message_id="a@team.example")
    second = watched(message_id="b@team.example", sent_at=FRIDAY + timedelta(hours=1))
    assert answered(reply(), [second, first], RULES, OWN) is second


def test_the_users_own_copy_and_colleagues_do_not_answer() -> None:
    w = [watched()]
    own = reply(sender="me@team.example", in_reply_to=("<sent-1@team.example>",))
    assert answered(own, w, RULES, OWN) is None
    colleague = reply(sender="pal@team.example", in_reply_to=("<sent-1@team.example>",))
    assert answered(colleague, w, RULES, OWN) is None
    copy = reply(mid="<sent-1@team.example>", sender="bob@customer.example")
    assert answered(copy, w, RULES, OWN) is None


def test_the_watched_messages_sender_and_domain_are_the_team_too() -> None:
    rules = AccountRules(AccountsConfig(), ())
    w = [watched(sender="me@small.example")]
    mine = reply(sender="me@small.example", in_reply_to=("<sent-1@team.example>",))
    assert answered(mine, w, rules, ()) is None
    pal = reply(sender="pal@small.example", in_reply_to=("<sent-1@team.example>",))
    assert answered(pal, w, rules, ()) is None
    bob = reply(in_reply_to=("<sent-1@team.example>",))
    assert answered(bob, w, rules, ()) is w[0]


def test_an_automatic_message_is_not_watched_but_remembered() -> None:
    m = mail()
    auto = Mail(m.message_id, (), (), m.date, m.sender, "", m.to, (), "Out of office", "",
                {"auto-submitted": "auto-replied"})  # fmt: skip
    planned = plan_followup(
        auto, FRIDAY, None, config=FollowupConfig(), accounts=ACCOUNTS, rules=RULES, own=OWN,
        zone=BERLIN,
    )  # fmt: skip
    assert (planned.due_at, planned.remember) == (None, True)
    said_no = Mail(m.message_id, (), (), m.date, m.sender, "", m.to, (), "Hi", "",
                   {"auto-submitted": "no"})  # fmt: skip
    assert plan(said_no) is not None


def test_one_chunk_answers_each_watched_message_once() -> None:
    w = [watched()]
    index = Watched(w, RULES, OWN)
    first = index.answered_by(reply())
    assert first is w[0]
    index.forget(first)
    assert index.answered_by(reply(mid="<again@customer.example>")) is None
    assert index.answered_by(reply(in_reply_to=("<sent-1@team.example>",))) is None
