"""Who gets an auto-reply to held mail, and who never does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.imap.names import BULK, NORMAL, URGENT
from commsproxy.triage.autoreply_rules import bare_address, reply_address, why_not
from commsproxy.triage.state_store import Decision
from tests.mailfactory import render

ME = ("jan@acme.be",)


def mail(extra: dict[str, str] | None = None, **fields: str) -> Mail:
    headers = {
        "From": fields.get("sender", "Pia <pia@client.example>"),
        "To": fields.get("to", "jan@acme.be"),
        "Subject": fields.get("subject", "Question about the offer"),
        "Message-ID": "<q1@client.example>",
        **(extra or {}),
    }
    return parse_mail(render(headers, "Could you have a look?"))


def decision(label: str = NORMAL, held: bool = True) -> Decision:
    return Decision(
        login="jan", mailbox="INBOX", uidvalidity=1, uid=7, message_id="q1@client.example",
        label=label, score=None, reason="", batch="later" if held else None, held=held,
        sender="pia@client.example", subject="", decided_at=datetime(2026, 12, 7, tzinfo=UTC),
    )  # fmt: skip


def test_a_person_outside_whose_mail_is_held_gets_one() -> None:
    assert why_not(mail(), decision(), ME) is None
    assert why_not(mail(to="Jan <jan@acme.be>, bob@else.example"), decision(), ME) is None
    assert (
        why_not(mail(extra={"Cc": "jan@acme.be"}, to="team@else.example"), decision(), ME) is None
    )


def test_mail_not_held_or_bulk_gets_none() -> None:
    assert why_not(mail(), decision(URGENT, held=False), ME) == "not held"
    assert why_not(mail(), decision(NORMAL, held=False), ME) == "not held"  # read, dry run
    assert why_not(mail(), decision(BULK), ME) == "decided bulk"


@pytest.mark.parametrize(
    "header",
    [
        {"List-Id": "<team.lists.example>"},
        {"List-Unsubscribe": "<mailto:leave@lists.example>"},
        {"List-Post": "<mailto:team@lists.example>"},
        {"Precedence": "list"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "auto_reply"},
        {"Auto-Submitted": "auto-generated"},
        {"Auto-Submitted": "auto-replied"},
        {"Return-Path": "<>"},
        {"Content-Type": 'multipart/report; report-type=delivery-status; boundary="b"'},
    ],
)
def test_lists_and_machines_get_none(header: dict[str, str]) -> None:
    assert why_not(mail(header), decision(), ME) is not None


def test_auto_submitted_no_is_a_person() -> None:
    assert why_not(mail({"Auto-Submitted": "no"}), decision(), ME) is None


def test_x_auto_response_suppress_is_honoured() -> None:
    suppressed = replace(mail(), headers={"x-auto-response-suppress": "DR, OOF, AutoReply"})
    assert why_not(suppressed, decision(), ME) == "X-Auto-Response-Suppress"
    receipts_only = replace(mail(), headers={"x-auto-response-suppress": "RN, NRN"})
    assert why_not(receipts_only, decision(), ME) is None


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@shop.example",
        "no-reply@shop.example",
        "do-not-reply@shop.example",
        "MAILER-DAEMON@mx.example",
        "postmaster@mx.example",
        "bounces+123@mail.shop.example",
        "bounce-42@news.example",
    ],
)
def test_automated_senders_get_none(sender: str) -> None:
    assert why_not(mail(sender=sender), decision(), ME) is not None


@pytest.mark.parametrize(
    "subject",
    [
        "Auto: Question",
        "Automatic reply: Question",
        "Out of Office: back Monday",
        "Undeliverable: x",
    ],
)
def test_other_auto_replies_by_subject_get_none(subject: str) -> None:
    assert why_not(mail(subject=subject), decision(), ME) is not None


def test_colleagues_and_the_user_get_none() -> None:
    assert why_not(mail(sender="bob@acme.be"), decision(), ME) == "from a colleague"
    assert why_not(mail(sender="bob@sales.acme.be"), decision(), ME) == "from a colleague"
    internal = why_not(
        mail(sender="eva@acme-group.example"), decision(), ME, ["acme-group.example"]
    )
    assert internal == "from a colleague"
    assert why_not(mail(sender="jan@acme.be"), decision(), ME) == "from the user"
    assert why_not(mail(sender="jan+lists@acme.be"), decision(), ME) == "from the user"


def test_a_free_mail_domain_is_no_team() -> None:
    me = ("jan.peeters@gmail.com",)
    assert why_not(mail(sender="pia@gmail.com", to="jan.peeters@gmail.com"), decision(), me) is None


def test_mail_not_addressed_to_the_user_gets_none() -> None:
    blind = mail(to="everyone@client.example")  # a list without List-Id, or Bcc
    assert why_not(blind, decision(), ME) == "not addressed to the user (To or Cc)"


def test_no_own_address_no_reply() -> None:
    assert why_not(mail(), decision(), ()) == "the login's own address is not known"


def test_the_reply_goes_to_reply_to_else_from() -> None:
    plain = mail()
    assert reply_address(plain) == "pia@client.example"
    with_reply_to = replace(plain, headers={"reply-to": "Pia Desk <Desk@Client.example>"})
    assert reply_address(with_reply_to) == "desk@client.example"
    broken = replace(plain, headers={"reply-to": "undisclosed-recipients:;"})
    assert reply_address(broken) == "pia@client.example"


def test_a_reply_to_that_is_a_machine_or_the_team_gets_none() -> None:
    to_machine = replace(mail(), headers={"reply-to": "noreply@client.example"})
    assert why_not(to_machine, decision(), ME) == "automated address noreply@client.example"
    to_team = replace(mail(), headers={"reply-to": "support@acme.be"})
    assert why_not(to_team, decision(), ME) == "from a colleague"


def test_no_sender_gets_none() -> None:
    assert why_not(replace(mail(), sender=""), decision(), ME) == "no address to reply to"


def test_bare_address() -> None:
    assert bare_address("Jan+Urgent@Acme.BE") == "jan@acme.be"
