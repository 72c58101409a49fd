"""``[triage] never_urgent``: a sender on it is never urgent; vip wins over it."""

from __future__ import annotations

from collections.abc import Sequence

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.triage.decide import Decision, RuleDecider


def mail(sender: str, subject: str) -> Mail:
    raw = f"From: {sender}\r\nTo: me@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n"
    return parse_mail(raw.encode())


class SubjectModel:
    """The subject is the label the model gives."""

    def label(self, mails: Sequence[Mail]) -> list[Decision]:
        return [Decision(m.subject, 0.9 if m.subject == "urgent" else 0.1, "model") for m in mails]


def test_the_models_urgent_becomes_normal_for_a_never_sender() -> None:
    decider = RuleDecider([], SubjectModel(), never=["*@Noisy.example"])
    got = decider.decide([mail("Alerts <a@ops.noisy.example>", "urgent")])
    assert got == [Decision("normal", 0.9, "never urgent: rule for *@noisy.example")]


def test_normal_and_bulk_of_a_never_sender_stay_as_the_model_says() -> None:
    decider = RuleDecider([], SubjectModel(), never=["a@noisy.example"])
    got = decider.decide([mail("a@noisy.example", "bulk"), mail("a@noisy.example", "normal")])
    assert [d.label for d in got] == ["bulk", "normal"]
    assert all(d.reason == "model" for d in got)


def test_other_senders_keep_the_models_urgent() -> None:
    decider = RuleDecider([], SubjectModel(), never=["a@noisy.example"])
    [got] = decider.decide([mail("b@noisy.example", "urgent")])
    assert (got.label, got.reason) == ("urgent", "model")


def test_vip_wins_over_never() -> None:
    decider = RuleDecider(["boss@example.com"], SubjectModel(), never=["*@example.com"])
    got = decider.decide([mail("boss@example.com", "normal"), mail("x@example.com", "urgent")])
    assert [(d.label, d.reason) for d in got] == [
        ("urgent", "VIP sender (boss@example.com)"),
        ("normal", "never urgent: rule for *@example.com"),
    ]


def test_without_a_never_list_nothing_changes() -> None:
    [got] = RuleDecider([], SubjectModel()).decide([mail("a@x.example", "urgent")])
    assert got.label == "urgent"
