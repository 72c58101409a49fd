"""Social history counts only the past: nothing at or after ``before`` may leak into the stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commsproxy.classifier.labels import derive_labels
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.social import (
    NO_HISTORY,
    ReplyEvent,
    SenderStats,
    SocialHistory,
    domain_of,
)

ME = "me@example.com"
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def received(sender: str, minutes: float, message_id: str) -> Mail:
    return Mail(
        message_id=message_id,
        in_reply_to=(),
        references=(),
        date=at(minutes),
        sender=sender,
        sender_name="",
        to=(ME,),
        cc=(),
        subject=f"about {message_id}",
        body="text",
        folder="inbox",
    )


def reply(to: str, minutes: float, parent: str) -> Mail:
    return Mail(
        message_id=None,
        in_reply_to=(parent,),
        references=(),
        date=at(minutes),
        sender=ME,
        sender_name="",
        to=(to,),
        cc=(),
        subject="Re: x",
        body="ok",
        folder="sent",
    )


def is_sent(mail: Mail) -> bool:
    return mail.folder == "sent"


ALICE = "alice@customer.com"
ANN = "ann@customer.com"
BOB = "bob@partner.com"


def history() -> SocialHistory:
    """Alice writes at 0, 100 and 1000 min; the user answers after 10, 30 and 60 min."""
    events = [
        ReplyEvent(ALICE, at(0), at(10)),
        ReplyEvent(ALICE, at(100), at(130)),
        ReplyEvent(ALICE, at(1000), at(1060), forwarded=True),
    ]
    stream = [(ALICE, at(0)), (ALICE, at(100)), (ALICE, at(1000)), (BOB, at(50))]
    return SocialHistory(events, stream)


def test_nothing_before_the_first_message() -> None:
    assert history().stats(ALICE, at(0)) == NO_HISTORY


def test_received_but_reply_still_in_the_future_is_not_counted() -> None:
    # At minute 5 Alice's first message is in, the reply (minute 10) is not yet sent.
    assert history().stats(ALICE, at(5)) == SenderStats(1, 0, None, None)


def test_only_past_replies_count() -> None:
    social = history()
    assert social.stats(ALICE, at(10)) == SenderStats(1, 0, None, None)  # strictly before
    stats = social.stats(ALICE, at(11))
    assert (stats.received, stats.replied, stats.median_reply_minutes) == (1, 1, 10.0)
    assert stats.last_reply_days_ago == pytest.approx(1 / (24 * 60))
    # At 1000 the third message itself is not counted (it is the one being classified).
    stats = social.stats(ALICE, at(1000))
    assert (stats.received, stats.replied, stats.median_reply_minutes) == (2, 2, 20.0)
    assert stats.last_reply_days_ago == pytest.approx(870 / (24 * 60))
    stats = social.stats(ALICE, at(5000))
    assert (stats.received, stats.replied, stats.median_reply_minutes) == (3, 3, 30.0)
    assert stats.reply_rate == 1.0


def test_unknown_and_unanswered_senders() -> None:
    social = history()
    assert social.stats("nobody@x.org", at(5000)) == NO_HISTORY
    assert social.stats(BOB, at(5000)) == SenderStats(1, 0, None, None)
    assert social.stats("Alice@Customer.COM", at(11)).replied == 1  # addresses ignore case
    assert social.stats(BOB, at(5000)).reply_rate == 0.0


def test_domain_stats_cover_a_new_contact_at_a_known_domain() -> None:
    social = history()
    assert social.stats(ANN, at(5000)) == NO_HISTORY
    stats = social.stats_domain(domain_of(ANN), at(5000))
    assert (stats.received, stats.replied, stats.median_reply_minutes) == (3, 3, 30.0)
    assert social.stats_domain(ANN, at(11)).replied == 1  # an address works too
    assert social.stats_domain("customer.com", at(11)).replied == 1
    assert social.stats_domain("partner.com", at(5000)).received == 1


def test_median_of_an_even_number_of_replies() -> None:
    events = [ReplyEvent(BOB, at(i * 100), at(i * 100 + m)) for i, m in enumerate((40, 10, 20, 90))]
    social = SocialHistory(events, [])
    medians = [social.stats(BOB, at(i * 100 + 99)).median_reply_minutes for i in range(4)]
    assert medians == [40.0, 25.0, 20.0, 30.0]


def test_naive_before_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        history().stats(ALICE, datetime(2024, 3, 4))  # naive: the point of the test


def mailbox() -> list[Mail]:
    return [
        received(ALICE, 0, "<a1@x>"),
        reply(ALICE, 20, "<a1@x>"),
        received(ALICE, 60, "<a2@x>"),
        reply(ALICE, 60 + 3 * 24 * 60, "<a2@x>"),  # answered days later
        received(BOB, 30, "<b1@x>"),
    ]


def test_from_mails_uses_the_label_matcher() -> None:
    social = SocialHistory.from_mails(mailbox(), is_sent=is_sent)
    assert len(social) == 2
    stats = social.stats(ALICE, at(61))
    assert (stats.received, stats.replied, stats.median_reply_minutes) == (2, 1, 20.0)
    # The late reply exists in the mailbox but is still in the future at minute 61.
    later = social.stats(ALICE, at(60 + 3 * 24 * 60 + 1))
    assert later.replied == 2


def test_from_result_matches_from_mails() -> None:
    result = derive_labels(mailbox(), is_sent=is_sent)
    from_result = SocialHistory.from_result(result)
    from_mails = SocialHistory.from_mails(mailbox(), is_sent=is_sent)
    for moment in (at(0), at(21), at(61), at(10_000)):
        for sender in (ALICE, BOB):
            assert from_result.stats(sender, moment) == from_mails.stats(sender, moment)
