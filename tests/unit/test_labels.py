"""Urgency labels from behaviour, on a small hand-built mailbox with an inbox and a sent folder.

Times are UTC; T0 is 09:00 on a Monday. Quoted blocks show local times of other zones, as real
Outlook and Lotus Notes replies do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from commsproxy.classifier.labels import (
    Label,
    LabelResult,
    Override,
    bulk_reason,
    derive_labels,
    format_duration,
    infer_user_addresses,
    match_replies,
    normalise_subject,
    quoted_original,
)
from commsproxy.classifier.mail import Mail

ME = "me@example.com"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def mail(
    sender: str,
    subject: str,
    date: datetime | None,
    *,
    folder: str = "inbox",
    message_id: str | None = None,
    to: Sequence[str] = (ME,),
    cc: Sequence[str] = (),
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    body: str = "",
    headers: dict[str, str] | None = None,
    sender_name: str = "",
) -> Mail:
    return Mail(
        message_id=message_id,
        in_reply_to=tuple(in_reply_to),
        references=tuple(references),
        date=date,
        sender=sender,
        sender_name=sender_name,
        to=tuple(to),
        cc=tuple(cc),
        subject=subject,
        body=body or f"{subject} body",
        headers=headers or {},
        folder=folder,
    )


def sent(
    subject: str,
    date: datetime | None,
    to: Sequence[str],
    *,
    folder: str = "sent",
    cc: Sequence[str] = (),
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    body: str = "",
) -> Mail:
    return mail(
        ME,
        subject,
        date,
        folder=folder,
        to=to,
        cc=cc,
        in_reply_to=in_reply_to,
        references=references,
        body=body,
    )


def is_sent(m: Mail) -> bool:
    return m.folder in ("sent", "sent_items", "_sent_mail")


OUTLOOK_REPLY = """Will pay on Friday.

Regards, me

 -----Original Message-----
From: Smith, Dave [mailto:dave@supplier.com]
Sent: Monday, March 04, 2024 1:00 PM
To: Me
Subject: Invoice 42

Please pay invoice 42.
"""

LOTUS_FORWARD = """Ozzie, please handle this one today.

Regards
Me
---------------------- Forwarded by Me/HOU/ECT on 03/04/2024
03:10 PM ---------------------------


Janet R Dietrich
03/04/2024 08:00 AM
To: Me/HOU/ECT@ECT, Ozzie Pagan/HOU/ECT@ECT
cc:
Subject: Plant visit

Can we visit the plant on Thursday?
"""


def mailbox() -> list[Mail]:
    """An inbox, a sent folder and an all_documents folder holding copies (as Enron's do)."""
    many = [f"person{i}@example.com" for i in range(19)] + [ME]
    return [
        # 1. Replied by In-Reply-To after 35 min: urgent.
        mail("alice@customer.com", "Budget", at(0), message_id="<a1@customer.com>"),
        sent("Re: Budget", at(35), ["alice@customer.com"], in_reply_to=["<a1@customer.com>"]),
        # 2. Replied after 2 days (References: the last entry is the direct parent): normal.
        mail("bob@partner.com", "Contract", at(60), message_id="<b1@partner.com>"),
        sent(
            "RE: Contract",
            at(60 + 2 * 24 * 60),
            ["bob@partner.com"],
            references=["<b0@partner.com>", "<b1@partner.com>"],
        ),
        # 3. No headers, no quote: "Re:" + the same subject + Carol among the recipients.
        mail("carol@customer.com", "Lunch Friday?", at(120)),
        sent("Re: lunch  friday?", at(150), ["team@example.com"], cc=["carol@customer.com"]),
        # 4. Outlook quoted block, subject changed: matched on sender + subject + time.
        mail("dave@supplier.com", "Invoice 42", at(180), sender_name="Dave Smith"),
        sent("Payment schedule", at(200), ["dave@supplier.com"], body=OUTLOOK_REPLY),
        # 5. Lotus Notes forward of Janet's message (name only, local time UTC-6).
        mail("janet.dietrich@corp.com", "Plant visit", at(300)),
        sent("Plant visit", at(370), ["ozzie.pagan@corp.com"], body=LOTUS_FORWARD),
        # 6. Bulk: a newsletter, a no-reply sender, mail to twenty people.
        mail(
            "news@shop.example",
            "Spring sale",
            at(400),
            message_id="<n1@shop.example>",
            headers={"list-unsubscribe": "<mailto:unsub@shop.example>"},
        ),
        mail("no-reply@bank.example", "Your statement", at(410)),
        mail("hr@example.com", "Office move", at(420), to=many),
        # 7. Never answered: normal.
        mail("erin@partner.com", "FYI", at(430), message_id="<e1@partner.com>"),
        # 8. Copies: the same Message-ID in all_documents, and an Enron-style copy with another
        #    Message-ID but the same date, sender, subject and body; a copy of a sent message.
        mail("alice@customer.com", "Budget", at(0), message_id="<a1@customer.com>", folder="all"),
        mail("erin@partner.com", "FYI", at(430), message_id="<other@x>", folder="all_documents"),
        sent(
            "Re: Budget",
            at(35),
            ["alice@customer.com"],
            in_reply_to=["<a1@customer.com>"],
            folder="all_documents",
        ),
        # 9. The user's own message outside the sent folder is not received mail.
        mail(ME, "Note to self", at(440), folder="inbox"),
    ]


@pytest.fixture(scope="module")
def result() -> LabelResult:
    return derive_labels(mailbox(), is_sent=is_sent)


def by_subject(result: LabelResult) -> dict[str, tuple[str, str]]:
    return {m.subject: (label, reason) for m, label, reason, _ in result.labelled}


def test_reply_by_in_reply_to_within_window_is_urgent(result: LabelResult) -> None:
    assert by_subject(result)["Budget"] == ("urgent", "you replied after 35 min")


def test_reply_after_two_days_is_normal(result: LabelResult) -> None:
    # Matched through the last References entry (the direct parent).
    assert by_subject(result)["Contract"] == ("normal", "you replied after 2.0 days")


def test_subject_and_recipient_match_without_headers(result: LabelResult) -> None:
    assert by_subject(result)["Lunch Friday?"] == ("urgent", "you replied after 30 min")


def test_outlook_quoted_block_match(result: LabelResult) -> None:
    assert by_subject(result)["Invoice 42"] == ("urgent", "you replied after 20 min")


def test_lotus_quoted_block_forward(result: LabelResult) -> None:
    assert by_subject(result)["Plant visit"] == ("urgent", "you forwarded it after 1 h 10 min")


def test_bulk_markers(result: LabelResult) -> None:
    labels = by_subject(result)
    assert labels["Spring sale"] == ("bulk", "has List-Unsubscribe")
    assert labels["Your statement"] == ("bulk", "automated sender no-reply@bank.example")
    assert labels["Office move"] == ("bulk", "sent to 20 recipients")


def test_unanswered_is_normal(result: LabelResult) -> None:
    assert by_subject(result)["FYI"] == ("normal", "no reply found")


def test_counts_matches_and_duplicates(result: LabelResult) -> None:
    assert result.counts == {"urgent": 4, "normal": 2, "bulk": 3}
    assert result.matches == {"header": 2, "quote": 2, "subject": 1}
    assert result.forwards == 1
    assert result.duplicates == 3
    assert result.received == 9
    assert result.sent == 6  # five in the sent folder + the note to self found in the inbox
    assert result.undated == 0
    assert "9 received" in result.summary()


def test_labelled_in_date_order_and_user_excluded(result: LabelResult) -> None:
    dates = [m.date for m, *_ in result.labelled]
    assert dates == sorted(dates)  # type: ignore[type-var]
    assert all(m.sender != ME for m, *_ in result.labelled)
    assert result.user_addresses == {ME}


def test_reply_events(result: LabelResult) -> None:
    events = {(e.sender, e.latency, e.forwarded) for e in result.reply_events}
    assert events == {
        ("alice@customer.com", timedelta(minutes=35), False),
        ("bob@partner.com", timedelta(days=2), False),
        ("carol@customer.com", timedelta(minutes=30), False),
        ("dave@supplier.com", timedelta(minutes=20), False),
        ("janet.dietrich@corp.com", timedelta(minutes=70), True),
    }


def test_overrides_win() -> None:
    overrides: dict[str, Label | Override] = {
        "<n1@shop.example>": Override("urgent", "training folder"),
        "e1@partner.com": "bulk",  # brackets optional
        "<a1@customer.com>": "normal",
    }
    labels = by_subject(derive_labels(mailbox(), is_sent=is_sent, overrides=overrides))
    assert labels["Spring sale"] == ("urgent", "override: training folder")
    assert labels["FYI"] == ("bulk", "override: explicit label")
    assert labels["Budget"] == ("normal", "override: explicit label")


def test_a_copy_with_its_own_message_id_stands_for_the_kept_message() -> None:
    """Enron's copies have Message-IDs of their own; overrides and replies may name any."""
    labels = by_subject(derive_labels(mailbox(), is_sent=is_sent, overrides={"<other@x>": "bulk"}))
    assert labels["FYI"] == ("bulk", "override: explicit label")
    mails = [
        *mailbox(),
        sent("Re: FYI", at(440), ["erin@partner.com"], in_reply_to=["<other@x>"]),
    ]
    assert by_subject(derive_labels(mails, is_sent=is_sent))["FYI"] == (
        "urgent",
        "you replied after 10 min",
    )


def test_reply_window_is_a_parameter() -> None:
    labels = by_subject(
        derive_labels(mailbox(), is_sent=is_sent, reply_window=timedelta(minutes=25))
    )
    assert labels["Budget"][0] == "normal"
    assert labels["Invoice 42"][0] == "urgent"


def test_fast_reply_beats_list_headers_but_fast_forward_does_not() -> None:
    listed = {"list-id": "<dev.lists.example>"}
    mails = [
        mail("ann@x.org", "Release plan", at(0), message_id="<r1@x>", headers=listed),
        sent("Re: Release plan", at(10), ["dev@lists.example"], in_reply_to=["<r1@x>"]),
        mail("news@x.org", "Weekly", at(0), message_id="<w1@x>", headers=listed),
        sent("Fwd: Weekly", at(10), ["friend@y.org"], in_reply_to=["<w1@x>"]),
    ]
    labels = by_subject(derive_labels(mails, is_sent=is_sent))
    assert labels["Release plan"] == ("urgent", "you replied after 10 min (has List-Id)")
    assert labels["Weekly"] == ("bulk", "has List-Id")


def test_reply_before_the_message_is_not_its_reply() -> None:
    mails = [
        mail("bob@partner.com", "Re: Plan", at(60)),
        sent("Re: Plan", at(30), ["bob@partner.com"]),  # the user's message Bob answered
    ]
    assert by_subject(derive_labels(mails, is_sent=is_sent))["Re: Plan"][0] == "normal"


def test_header_match_tolerates_small_clock_skew() -> None:
    mails = [
        mail("bob@partner.com", "Plan", at(60), message_id="<p1@x>"),
        sent("Re: Plan", at(57), ["bob@partner.com"], in_reply_to=["<p1@x>"]),
    ]
    assert by_subject(derive_labels(mails, is_sent=is_sent))["Plan"] == (
        "urgent",
        "you replied after 0 min",
    )


def test_reply_with_headers_to_a_message_not_here_is_not_matched_by_subject() -> None:
    mails = [
        mail("bob@partner.com", "Plan", at(0), message_id="<old@x>"),
        sent("Re: Plan", at(30), ["bob@partner.com"], in_reply_to=["<newer-not-here@x>"]),
    ]
    assert by_subject(derive_labels(mails, is_sent=is_sent))["Plan"][0] == "normal"


def test_subject_match_picks_the_latest_message_before_the_reply() -> None:
    mails = [
        mail("bob@partner.com", "Plan", at(0)),
        mail("bob@partner.com", "Re: Plan", at(100)),
        mail("bob@partner.com", "RE: Plan", at(400)),  # after the reply
        sent("Re: Plan", at(130), ["bob@partner.com"]),
    ]
    result = derive_labels(mails, is_sent=is_sent)
    assert [label for _, label, *_ in result.labelled] == ["normal", "urgent", "normal"]


def test_quote_with_a_different_time_names_another_message() -> None:
    """The quote shows Dave's message from a week later: the one here was not answered."""
    body = OUTLOOK_REPLY.replace("March 04", "March 11")
    mails = [
        mail("dave@supplier.com", "Invoice 42", at(180)),
        sent("Re: Invoice 42", at(200), ["dave@supplier.com"], body=body),
    ]
    assert by_subject(derive_labels(mails, is_sent=is_sent))["Invoice 42"][0] == "normal"


def test_undated_messages_are_left_out_unless_overridden() -> None:
    mails = [
        mail("a@x.org", "No date", None, message_id="<u1@x>"),
        mail("b@x.org", "No date either", None, message_id="<u2@x>"),
        mail("c@x.org", "Dated", at(0)),
    ]
    result = derive_labels(mails, is_sent=is_sent, overrides={"<u2@x>": "urgent"})
    assert result.undated == 1
    assert [m.subject for m, *_ in result.labelled] == ["No date either", "Dated"]


def test_given_user_addresses_are_used() -> None:
    mails = [
        mail("me@work.example", "Status", at(0), folder="inbox"),
        mail("boss@work.example", "Status?", at(0)),
    ]
    result = derive_labels(mails, is_sent=is_sent, user_addresses=["Me@Work.example"])
    assert [m.sender for m, *_ in result.labelled] == ["boss@work.example"]


def test_infer_user_addresses() -> None:
    def sender_mail(sender: str) -> Mail:
        return replace(sent("x", at(0), ["y@z.org"]), sender=sender)

    senders = ["me@a.org"] * 17 + ["assistant@a.org"] * 2 + ["stray@b.org"]
    assert infer_user_addresses(map(sender_mail, senders)) == {"me@a.org", "assistant@a.org"}
    assert infer_user_addresses([]) == frozenset()
    # Two addresses sharing the mail evenly are both the user's.
    assert infer_user_addresses(map(sender_mail, ["a@x", "b@x"] * 5)) == {"a@x", "b@x"}


@pytest.mark.parametrize(
    ("subject", "normalised"),
    [
        ("Re: Budget", "budget"),
        ("RE: FW: Re:  Budget  Q3 ", "budget q3"),
        ("RE[2]: Budget", "budget"),
        ("AW: WG: Angebot", "angebot"),
        ("SV: Fwd(3): hej", "hej"),
        ("[dev-list] Re: [dev-list] Build broken", "build broken"),
        ("Agenda: Monday", "agenda: monday"),  # not a reply prefix
        ("Re:", ""),
        ("", ""),
    ],
)
def test_normalise_subject(subject: str, normalised: str) -> None:
    assert normalise_subject(subject) == normalised


def test_quoted_original_outlook() -> None:
    quoted = quoted_original(OUTLOOK_REPLY)
    assert quoted is not None
    assert (quoted.sender, quoted.name, quoted.subject) == (
        "dave@supplier.com",
        "Smith, Dave",
        "Invoice 42",
    )
    assert quoted.sent == datetime(2024, 3, 4, 13, 0)  # local time, as quoted
    assert not quoted.forwarded


def test_quoted_original_outlook_without_separator_and_with_zone() -> None:
    body = (
        "Yes.\n\n________________________________\n"
        "From: Ann Lee <ann@x.org>\nDate: Mon, 04 Mar 2024 10:00:00 +0100\n"
        "Subject: RE: Plan\n\nOk?"
    )
    quoted = quoted_original(body)
    assert quoted is not None
    assert (quoted.sender, quoted.name, quoted.subject) == ("ann@x.org", "Ann Lee", "RE: Plan")
    assert quoted.sent == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def test_quoted_original_lotus_variants() -> None:
    quoted = quoted_original(LOTUS_FORWARD)
    assert quoted is not None
    assert (quoted.name, quoted.subject, quoted.forwarded) == (
        "Janet R Dietrich",
        "Plant visit",
        True,
    )
    assert quoted.sent == datetime(2024, 3, 4, 8, 0)

    same_line = (
        'Thanks.\n\n"Brown, Charles" <cbrown@newport.example> on 09/12/2000 12:03:09 PM\n'
        "Please respond to <cbrown@newport.example>\nTo: Me\ncc:\nSubject: RE: West Power\n"
    )
    quoted = quoted_original(same_line)
    assert quoted is not None
    assert (quoted.sender, quoted.name, quoted.subject) == (
        "cbrown@newport.example",
        "Brown, Charles",
        "RE: West Power",
    )
    assert quoted.sent == datetime(2000, 9, 12, 12, 3, 9)

    from_line = (
        "See below.\nFrom: Ben F Jacoby     08/30/2000 09:48 PM\n\nSent by: Ben Jacoby\n"
        + "To: A/HOU/ECT@ECT, B/HOU/ECT@ECT,\nC/HOU/ECT@ECT\n" * 10
        + "cc:\n\nSubject: TVA RFP\n\nFolks:"
    )
    quoted = quoted_original(from_line)
    assert quoted is not None
    assert (quoted.name, quoted.subject) == ("Ben F Jacoby", "TVA RFP")
    assert quoted.sent == datetime(2000, 8, 30, 21, 48)

    table = "Call me.\n\n12/06/2000 07:32 PM\nLouis Soldano\nLouis Soldano\nTo: Drew\ncc:\n"
    quoted = quoted_original(table + "\nSubject: research analyst\n")
    assert quoted is not None
    assert (quoted.name, quoted.subject) == ("Louis Soldano", "research analyst")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "Just a note, no quote.",
        "We met on 01/15/2001 10:31 AM and agreed.",  # a time stamp without a header after it
        "From: the desk of the CEO\nWelcome!",  # From: not followed by Sent:/Date:
    ],
)
def test_no_quoted_original(body: str) -> None:
    assert quoted_original(body) is None


def test_bulk_reason_headers() -> None:
    def with_headers(headers: dict[str, str], sender: str = "x@y.org") -> str | None:
        return bulk_reason(mail(sender, "s", at(0), headers=headers))

    assert with_headers({"precedence": "Bulk"}) == "Precedence: bulk"
    assert with_headers({"precedence": "first-class"}) is None
    assert with_headers({"auto-submitted": "auto-replied"}) == "Auto-Submitted: auto-replied"
    assert with_headers({"auto-submitted": "no"}) is None
    assert with_headers({}, "mailer-daemon@y.org") == "automated sender mailer-daemon@y.org"
    assert with_headers({}, "issuealert@scientech.example") is not None
    assert with_headers({}, "walerton@y.org") is None  # "alert" inside a name
    assert with_headers({}, "notifications@github.example") is not None
    assert with_headers({}, "corporate.communications@x.example") is not None
    assert with_headers({}, "deals@fares.example") is not None
    assert with_headers({}, "carol@customer.com") is None


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(seconds=20), "0 min"),
        (timedelta(minutes=35), "35 min"),
        (timedelta(hours=3, minutes=10), "3 h 10 min"),
        (timedelta(hours=4), "4 h"),
        (timedelta(days=2, hours=12), "2.5 days"),
        (timedelta(days=40), "40 days"),
    ],
)
def test_format_duration(delta: timedelta, words: str) -> None:
    assert format_duration(delta) == words


def test_scales_linearly() -> None:
    """20,000 messages, 5,000 of them replies: an index-free (quadratic) matcher takes minutes."""
    mails: list[Mail] = []
    for i in range(15_000):
        sender = f"p{i % 500}@corp{i % 50}.example"
        mails.append(mail(sender, f"Topic {i % 3000}", at(i), message_id=f"<m{i}@x>"))
    for i in range(0, 15_000, 3):
        sender = f"p{i % 500}@corp{i % 50}.example"
        if i % 2:
            mails.append(sent(f"Re: Topic {i % 3000}", at(i + 30), [sender]))
        else:
            body = f"ok\n-----Original Message-----\nFrom: {sender}\nSubject: Topic {i % 3000}\n"
            mails.append(sent(f"Re: Topic {i % 3000}", at(i + 30), [sender], body=body))
    started = time.perf_counter()
    matching = match_replies(mails, is_sent=is_sent)
    elapsed = time.perf_counter() - started
    assert sum(matching.matches.values()) == 5_000
    assert elapsed < 10
