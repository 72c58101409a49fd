"""How train_urgency measures its threshold: on the newest mail when it holds enough urgent
messages, else on out-of-fold predictions over all the mail, never by giving up early."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from commsproxy.classifier.cuts import choose_recall_threshold
from commsproxy.classifier.features import Sample
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.train import train_urgency

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def sample(n: int, urgent: bool) -> Sample:
    subject, sender = (
        ("Outage at the plant, call me", "boss@acme.com")
        if urgent
        else (
            f"Weekly digest {n}",
            f"news{n % 7}@letters.example",
        )
    )
    return Sample(
        Mail(
            message_id=f"<{n}@x>",
            in_reply_to=(),
            references=(),
            date=T0 + timedelta(hours=n),
            sender=sender,
            sender_name="",
            to=("me@acme.com",),
            cc=(),
            subject=subject,
            body=f"{subject}. Message {n}.",
        )
    )


def build(urgent_at: set[int], n: int = 300) -> tuple[list[Sample], list[str]]:
    samples = [sample(i, i in urgent_at) for i in range(n)]
    return samples, ["urgent" if i in urgent_at else "normal" for i in range(n)]


def test_few_urgent_in_the_newest_mail_tunes_the_threshold_by_cross_validation() -> None:
    # 40 urgent messages, 8 of them in the newest 20%: too few to tune on, enough in all.
    samples, labels = build({*range(0, 224, 7), *range(245, 300, 7)})
    _, report = train_urgency(samples, labels)
    assert report.validation.startswith("3-fold cross-validation")
    assert report.threshold is not None
    assert report.warm.delivered >= 0.95
    assert report.warm.held > 0.5


def test_enough_urgent_in_the_newest_mail_validates_in_time_order() -> None:
    samples, labels = build(set(range(0, 300, 3)))
    _, report = train_urgency(samples, labels)
    assert report.validation.startswith("time-ordered")
    assert report.threshold is not None
    assert report.warm.delivered >= 0.95


def test_messages_rebuilt_from_quotes_train_but_do_not_set_the_threshold() -> None:
    # Every other message urgent; six urgent ones among the newest 60 were rebuilt, which
    # leaves 24 real urgent messages there to measure on.
    samples, labels = build(set(range(0, 300, 2)))
    rebuilt = set(range(0, 300, 10))
    samples = [replace(s, rebuilt=i in rebuilt) for i, s in enumerate(samples)]
    _, report = train_urgency(samples, labels)
    assert report.validation.startswith("time-ordered")
    assert report.validated_on == 54
    assert report.threshold is not None


def test_rebuilt_messages_are_measured_when_real_urgent_mail_is_too_scarce() -> None:
    # 40 urgent messages, every one rebuilt: without them nothing could be measured.
    urgent = {*range(0, 224, 7), *range(245, 300, 7)}
    samples, labels = build(urgent)
    samples = [replace(s, rebuilt=i in urgent) for i, s in enumerate(samples)]
    _, report = train_urgency(samples, labels)
    assert report.validated_on == 300
    assert report.threshold is not None
    assert report.warm.delivered >= 0.95


def test_recall_cut_leaves_the_target_share_of_gaps_below_it() -> None:
    # 39 urgent scores 0.01..0.39: (39+1) * 5% = 2 gaps, so the cut is the 2nd lowest.
    urgent = np.arange(1, 40) / 100
    scores = np.concatenate([urgent, np.full(100, 0.005)])
    positive = np.arange(scores.size) < urgent.size
    assert choose_recall_threshold(scores, positive, 0.95) == pytest.approx(0.02)
    # 28 scores: 29 * 5% = 1.45 gaps, interpolated 45% of the way from the lowest to the next.
    assert choose_recall_threshold(urgent[:28], np.ones(28, bool), 0.95) == pytest.approx(0.0145)
    # Too few to leave a whole gap: the lowest score; none at all: 0.0.
    assert choose_recall_threshold(urgent[:5], np.ones(5, bool), 0.95) == pytest.approx(0.01)
    assert choose_recall_threshold(scores, np.zeros(scores.size, bool), 0.95) == 0.0
