"""Received mail rebuilt from the quotes in replies whose original is not in the mailbox.

The mailbox: an inbox with one message from Rod (which one reply quotes, teaching the zone of
quoted times: Central time, UTC-6 in March), and a sent folder whose other replies quote mail
that is gone. Times are UTC; T0 is 09:00 on a Monday (03:00 Central).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from commsproxy.classifier.labels import LabelResult, derive_labels
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.quotes import quoted_original
from commsproxy.classifier.social import SocialHistory
from commsproxy.classifier.workflow import labelled_samples

from .test_labels import ME, at, is_sent, mail, sent


def outlook(answer: str, who: str, when: str, subject: str, text: str) -> str:
    return (
        f"{answer}\n\n -----Original Message-----\nFrom: \t{who}\nSent:\t{when}\nTo:\tMe, Myself\n"
        f"Cc:\tLee, Ann; Hayslett, Rod\nSubject:\t{subject}\n\n{text}\n"
    )


LOTUS = (
    "Done.\n\n\n\nRod Hayslett\n03/04/2024 05:00 AM\nTo: Me Myself/HOU/ACME@ACME, Ann\n"
    " Lee/HOU/ACME@ACME\ncc: Bob Jones/HOU/ACME@ACME\nSubject: Gas nominations\n\n"
    "Please confirm the nominations for tomorrow.\n\n-----Original Message-----\nFrom: Me\n"
    "Sent: Sunday, March 03, 2024 9:00 AM\nSubject: Gas nominations\n\nolder text"
)


def mailbox() -> list[Mail]:
    return [
        # In the mailbox, quoted by the first reply at 04:00 Central = 10:00 UTC: zone UTC-6.
        mail("rod.hayslett@acme.com", "Budget", at(60), cc=("ann.lee@acme.com",)),
        sent(
            "RE: Budget",
            at(90),
            ["rod.hayslett@acme.com"],
            body=outlook("Fine.", "Hayslett, Rod", "Monday, March 04, 2024 4:00 AM", "Budget", "x"),
        ),
        # Gone from the inbox: quoted at 05:00 Central (11:00 UTC), answered at 11:30 UTC.
        sent(
            "RE: Invoice 42",
            at(150),
            ["rod.hayslett@acme.com"],
            body=outlook(
                "Will pay on Friday.",
                "Hayslett, Rod",
                "Monday, March 04, 2024 5:00 AM",
                "Invoice 42",
                "Invoice 42 is overdue.\nRod",
            ),
        ),
        # The same original quoted again by a later reply: rebuilt once, from the first.
        sent(
            "RE: Invoice 42",
            at(600),
            ["rod.hayslett@acme.com"],
            body=outlook(
                "Paid.",
                "Hayslett, Rod",
                "Monday, March 04, 2024 5:00 AM",
                "Invoice 42",
                "Invoice 42 is overdue.\nRod",
            ),
        ),
        # Answered two days later: normal.
        sent(
            "RE: Lunch",
            at(2 * 24 * 60 + 120),
            ["ann.lee@acme.com"],
            body=outlook("Sure.", "Lee, Ann", "Monday, March 04, 2024 5:00 AM", "Lunch", "Lunch?"),
        ),
        # The user's own earlier message, quoted: not received mail.
        sent(
            "RE: Plan",
            at(180),
            ["ann.lee@acme.com"],
            body=outlook("Also this.", "Me, Myself", "Monday, March 04, 2024 5:30 AM", "Plan", "p"),
        ),
        # The zone puts this quote after its reply: a wrong guess, so no delay is made up.
        sent(
            "RE: Later",
            at(30),
            ["ann.lee@acme.com"],
            body=outlook("?", "Lee, Ann", "Monday, March 04, 2024 6:00 AM", "Later", "later"),
        ),
        # A Notes reply, to someone the mailbox knows only as a Cc.
        sent("Re: Gas nominations", at(200), ["bob.jones@acme.com"], body=LOTUS),
        mail("bob.jones@acme.com", "Other", at(-600), to=(ME,)),
    ]


@pytest.fixture(scope="module")
def result() -> LabelResult:
    return derive_labels(mailbox(), is_sent=is_sent, user_addresses=[ME])


def rebuilt(result: LabelResult) -> dict[str, tuple[str, str, datetime | None, str]]:
    return {
        item.mail.subject: (item.label, item.mail.sender, item.mail.date, item.reason)
        for item in result.labelled
        if item.rebuilt
    }


def test_quoted_people_and_text_are_read() -> None:
    quoted = quoted_original(outlook("a", "Hayslett, Rod", "March 4, 2024 5:00 AM", "S", "t\nu"))
    assert quoted is not None
    assert quoted.to == ("Me, Myself",)
    assert quoted.cc == ("Lee, Ann", "Hayslett, Rod")
    assert quoted.body == "t\nu"
    notes = quoted_original(LOTUS)
    assert notes is not None
    assert notes.to == ("Me Myself/HOU/ACME@ACME", "Ann Lee/HOU/ACME@ACME")
    assert notes.cc == ("Bob Jones/HOU/ACME@ACME",)
    assert notes.body == "Please confirm the nominations for tomorrow."  # not the older quote


def test_originals_not_in_the_mailbox_are_rebuilt_and_labelled(result: LabelResult) -> None:
    found = rebuilt(result)
    assert set(found) == {"Invoice 42", "Lunch", "Gas nominations"}
    label, sender, date, reason = found["Invoice 42"]
    # 05:00 quoted in the zone learnt from the Budget pair (UTC-6): 11:00 UTC, answered 11:30.
    assert (label, sender, date) == ("urgent", "rod.hayslett@acme.com", at(120))
    assert reason == "rebuilt from your reply: you replied after 30 min"
    assert found["Lunch"][:2] == ("normal", "ann.lee@acme.com")
    # Notes: 05:00 AM Central is 11:00 UTC; replied at 12:20 UTC.
    assert found["Gas nominations"][:3] == ("urgent", "rod.hayslett@acme.com", at(120))
    assert result.rebuilt == 3
    assert result.counts["urgent"] == 3  # Budget (in the mailbox) and two rebuilt


def test_rebuilt_mail_reads_like_received_mail(result: LabelResult) -> None:
    invoice = next(i.mail for i in result.labelled if i.mail.subject == "Invoice 42")
    assert invoice.body == "Invoice 42 is overdue.\nRod"
    assert invoice.to == (ME,)  # "Me, Myself", resolved to the user's address
    assert invoice.cc == ("ann.lee@acme.com", "rod.hayslett@acme.com")
    assert invoice.message_id is None
    assert invoice.size > len(invoice.body)


def test_rebuilt_replies_feed_the_social_history(result: LabelResult) -> None:
    history = SocialHistory.from_result(result)
    rod = history.stats("rod.hayslett@acme.com", at(24 * 60))
    # Budget (in the mailbox), Invoice 42 and Gas nominations (rebuilt).
    assert (rod.received, rod.replied) == (3, 3)


def test_labelled_stays_in_date_order(result: LabelResult) -> None:
    dates = [item.mail.date for item in result.labelled]
    assert dates == sorted(d for d in dates if d is not None)


def test_rebuilding_can_be_turned_off() -> None:
    plain = derive_labels(mailbox(), is_sent=is_sent, user_addresses=[ME], rebuild=False)
    assert plain.rebuilt == 0
    assert not any(item.rebuilt for item in plain.labelled)


def test_training_samples_say_which_messages_were_rebuilt() -> None:
    _, samples, _ = labelled_samples(mailbox(), is_sent)
    flagged = {s.mail.subject for s in samples if s.rebuilt}
    assert "Invoice 42" in flagged
    assert not any(s.rebuilt for s in samples if s.mail.message_id is not None)
