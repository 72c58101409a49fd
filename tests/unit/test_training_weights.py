"""How much each training message counts: each thread once per label, each person equally,
and train_urgency fitting with those weights without moving weight between classes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from commsproxy.classifier.features import Sample
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.pipeline import decision_scores
from commsproxy.classifier.train import train_urgency
from commsproxy.classifier.weights import answered_weights, person_weights, thread_weights

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def mail(n: int, subject: str, sender: str = "ann@acme.com", body: str = "") -> Sample:
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
            body=body or f"{subject}. Message {n}.",
        )
    )


def test_a_thread_counts_once_per_label_and_the_total_is_kept() -> None:
    subjects = ["Budget", "RE: Budget", "Fwd: budget", "Re: [team] Budget", "Lunch", "", ""]
    samples = [mail(i, s) for i, s in enumerate(subjects)]
    labels = ["urgent", "urgent", "urgent", "normal", "urgent", "normal", "normal"]
    weights = thread_weights(samples, labels)
    assert sum(weights) == pytest.approx(len(samples))
    # Three urgent messages of one thread share one message's worth; the thread's normal
    # message, the other thread and each message without a subject count one each.
    unit = weights[4]
    assert weights[0] == weights[1] == weights[2] == pytest.approx(unit / 3)
    assert weights[3] == weights[5] == weights[6] == pytest.approx(unit)


def test_each_person_counts_as_much_as_another() -> None:
    sizes = [100, 300, 0, 200]
    factors = person_weights(sizes)
    totals = [n * f for n, f in zip(sizes, factors, strict=True) if n]
    assert totals == pytest.approx([200.0, 200.0, 200.0])
    assert factors[2] == 0.0
    assert sum(totals) == pytest.approx(sum(sizes))


def test_a_persons_bulk_mail_counts_once_per_message() -> None:
    # A weekly newsletter is many messages, not one thread: only answered mail is weighted.
    samples = [mail(i, "Weekly digest") for i in range(4)] + [mail(4, "Budget"), mail(5, "Budget")]
    labels = ["bulk"] * 4 + ["urgent", "urgent"]
    weights = answered_weights(samples, labels, 0.5)
    assert weights[:4] == [1.0] * 4
    expected = [w * 0.5 for w in thread_weights(samples, labels)[4:]]
    assert weights[4:] == pytest.approx(expected)
    assert weights[4] == weights[5]


def corpus() -> tuple[list[Sample], list[str]]:
    """Urgent mail of two kinds (outages, invoices), the rest digests; date order."""
    samples, labels = [], []
    for n in range(240):
        if n % 8 == 0:
            samples.append(mail(n, f"Outage at plant {n}", "ops@acme.com", "The line is down."))
            labels.append("urgent")
        elif n % 8 == 4:
            samples.append(mail(n, f"Invoice {n}", "billing@acme.com", "Invoice to approve."))
            labels.append("urgent")
        else:
            samples.append(mail(n, f"Weekly digest {n}", f"news{n % 5}@letters.example"))
            labels.append("normal")
    return samples, labels


def test_weights_decide_what_the_urgent_class_is_learnt_from() -> None:
    samples, labels = corpus()
    invoice = [mail(1000, "Invoice 1000", "billing@acme.com", "Invoice to approve.")]
    plain, _ = train_urgency(samples, labels)
    # The invoices count for nothing: the urgent class is learnt from the outages alone.
    weights = [0.0 if s.mail.subject.startswith("Invoice") else 1.0 for s in samples]
    weighted, _ = train_urgency(samples, labels, weights=weights)
    p_plain, classes = decision_scores(plain, invoice)
    p_weighted, _ = decision_scores(weighted, invoice)
    urgent = classes.index("urgent")
    assert p_weighted[0, urgent] < p_plain[0, urgent]


def test_equal_weights_fit_the_same_model_as_none() -> None:
    samples, labels = corpus()
    plain, plain_report = train_urgency(samples, labels)
    weighted, report = train_urgency(samples, labels, weights=[2.0] * len(samples))
    assert report.thresholds == plain_report.thresholds
    np.testing.assert_allclose(
        decision_scores(weighted, samples[:20])[0], decision_scores(plain, samples[:20])[0]
    )


def test_one_weight_per_message() -> None:
    samples, labels = corpus()
    with pytest.raises(ValueError, match="239 weights for 240 samples"):
        train_urgency(samples, labels, weights=[1.0] * 239)
