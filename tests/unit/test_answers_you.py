"""A reply to the user's own message, seen in the quote under its text when no header says so."""

from __future__ import annotations

import pytest

from commsproxy.classifier.cues import answers_you
from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.classifier.policy import URGENT, Judgement, Thresholds, judge, rule_delivers
from tests.mailfactory import render

ME = frozenset({"drew.fossum@corp.example", "dfossum@corp.example"})
CUTS = Thresholds(urgent=0.30, urgent_cold=0.60, bulk=0.90)


def reply(quoted_from: str, *, answer: str = "Yes, that works for us.", **headers: str) -> Mail:
    """A reply from Ann whose quoted original (Outlook style) is from ``quoted_from``."""
    body = (
        f"{answer}\n\n -----Original Message-----\nFrom: \t{quoted_from}\n"
        "Sent:\tMonday, March 04, 2024 1:00 PM\nTo:\tSmith, Ann\nSubject:\tRates for May\n\n"
        "Can you confirm the rates for May?\n"
    )
    fields = {"From": "Ann Smith <ann@acme.example>", "To": "drew.fossum@corp.example"}
    fields |= {"Subject": "RE: Rates for May"} | {
        k.replace("_", "-"): v for k, v in headers.items()
    }
    return parse_mail(render(fields, body))


@pytest.mark.parametrize(
    "quoted_from",
    [
        "Fossum, Drew",  # Outlook's "Last, First"
        "Drew Fossum [mailto:drew.fossum@corp.example]",
        "dfossum@corp.example",  # an address the user sends from, no name
    ],
)
def test_a_quote_of_the_users_own_message_is_an_answer_to_them(quoted_from: str) -> None:
    assert answers_you(reply(quoted_from), ME)


@pytest.mark.parametrize(
    "quoted_from",
    [
        "Jones, Bob",  # someone else's message
        "Drew",  # a first name alone could be anyone's
        "Drew Miller",  # another Drew
    ],
)
def test_a_quote_of_someone_else_is_not(quoted_from: str) -> None:
    assert not answers_you(reply(quoted_from), ME)


def test_a_forward_of_the_users_message_or_no_quote_at_all_is_not() -> None:
    forward = parse_mail(
        render(
            {"From": "ann@acme.example", "To": "drew.fossum@corp.example", "Subject": "FW: Rates"},
            "FYI\n\n-----Original Message-----\nFrom: Fossum, Drew\nSent: Monday, March 04, "
            "2024 1:00 PM\nTo: Smith, Ann\nSubject: Rates\n\nThe rates for May.\n",
        )
    )
    forward_marked = parse_mail(
        render(
            {"From": "ann@acme.example", "Subject": "Rates"},
            "FYI\n\n---------------------- Forwarded by Ann Smith on 03/04/2024 03:10 PM "
            "---------------------------\n\n-----Original Message-----\nFrom: Fossum, Drew\n"
            "Sent: Monday, March 04, 2024 1:00 PM\nTo: Smith, Ann\nSubject: Rates\n\nMay.\n",
        )
    )
    plain = parse_mail(render({"From": "ann@acme.example"}, "Drew Fossum, call me about May."))
    assert not answers_you(forward_marked, ME)
    assert not answers_you(plain, ME)
    assert not answers_you(reply("Fossum, Drew"), frozenset())  # nothing known of the user
    assert not answers_you(forward, ME)  # "FW:" passes it on, with no marker in the body


def test_the_policy_delivers_it_as_a_reply_to_a_message_you_sent() -> None:
    sample = Sample(reply("Fossum, Drew"), Context(user_addresses=ME, history_known=False))
    assert judge(sample, {URGENT: 0.01, "normal": 0.89, "bulk": 0.10}, CUTS) == Judgement(
        URGENT, 0.60, "a reply to a message you sent"
    )
    assert rule_delivers(sample, 0.10, CUTS.bulk)  # and the cuts are measured knowing it


def test_list_mail_or_likely_bulk_quoting_the_user_is_not_delivered_by_it() -> None:
    listed = Sample(
        reply("Fossum, Drew", List_Id="<rates.lists.example>"), Context(user_addresses=ME)
    )
    assert judge(listed, {URGENT: 0.01, "normal": 0.89, "bulk": 0.10}, CUTS).label != URGENT
    spammy = Sample(reply("Fossum, Drew"), Context(user_addresses=ME))
    assert judge(spammy, {URGENT: 0.01, "normal": 0.39, "bulk": 0.60}, CUTS).label != URGENT
