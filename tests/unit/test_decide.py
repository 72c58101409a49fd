"""Deciding labels: VIP rules first, then the model, each decision with its reason in words."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.triage.decide import Decision, RuleDecider, reason_words, vip_match


def mail(sender: str, subject: str = "Hello") -> Mail:
    raw = f"From: {sender}\r\nTo: me@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n"
    return parse_mail(raw.encode())


class FakeModel:
    """Labels by subject: ``urgent``/``bulk``/anything else; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def label(self, mails: Sequence[Mail]) -> list[Decision]:
        self.calls.append([m.subject for m in mails])
        out: list[Decision] = []
        for m in mails:
            if m.subject == "urgent":
                out.append(Decision("urgent", 0.87, "urgent: asks for a call"))
            elif m.subject == "bulk":
                out.append(Decision("bulk", 0.01, "held: has List-Unsubscribe"))
            else:
                out.append(Decision("normal", 0.123, "held: you never answered a@x.org"))
        return out


# -- vip_match -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "patterns", "matched"),
    [
        ("boss@example.com", ["boss@example.com"], "boss@example.com"),
        ("Boss@Example.COM", ["boss@example.com"], "boss@example.com"),
        ("  boss@example.com ", ["boss@example.com"], "boss@example.com"),
        ("other@example.com", ["boss@example.com"], None),
        ("anyone@bigcustomer.com", ["*@bigcustomer.com"], "*@bigcustomer.com"),
        ("a@mail.bigcustomer.com", ["*@bigcustomer.com"], "*@bigcustomer.com"),
        ("a@x.y.bigcustomer.com", ["*@bigcustomer.com"], "*@bigcustomer.com"),
        ("A@Mail.BigCustomer.com", ["*@bigcustomer.com"], "*@bigcustomer.com"),
        ("a@notbigcustomer.com", ["*@bigcustomer.com"], None),
        ("a@bigcustomer.com.evil.net", ["*@bigcustomer.com"], None),
        ("bigcustomer.com@evil.net", ["*@bigcustomer.com"], None),
        ("a@example.com", [], None),
        (
            "boss@example.com",
            ["x@y.z", "*@example.com", "boss@example.com"],
            "*@example.com",
        ),
    ],
)
def test_vip_match(address: str, patterns: list[str], matched: str | None) -> None:
    assert vip_match(address, patterns) == matched


# -- RuleDecider without a model -----------------------------------------------------------------


def test_rules_only() -> None:
    decider = RuleDecider(["Boss@Example.com", "*@BigCustomer.com"])
    decisions = decider.decide(
        [mail("boss@example.com"), mail("Ann <ann@other.org>"), mail("x@eu.bigcustomer.com")]
    )
    assert decisions == [
        Decision("urgent", None, "VIP sender (boss@example.com)"),
        Decision("normal", None, "no model: held by default"),
        Decision("urgent", None, "VIP sender (*@bigcustomer.com)"),
    ]


def test_rules_only_mail_without_sender_is_normal() -> None:
    no_from = parse_mail(b"Subject: hi\r\n\r\nbody\r\n")
    assert no_from.sender == ""
    [decision] = RuleDecider(["*@example.com"]).decide([no_from])
    assert decision.label == "normal"
    assert decision.reason


def test_nothing_to_decide() -> None:
    model = FakeModel()
    assert RuleDecider(["a@b.c"], model).decide([]) == []
    assert model.calls == []


# -- RuleDecider with a model --------------------------------------------------------------------


def test_model_decides_what_rules_do_not_in_order() -> None:
    model = FakeModel()
    decider = RuleDecider(["boss@example.com"], model)
    mails = [
        mail("a@x.org", "normal"),
        mail("boss@example.com", "bulk"),
        mail("b@x.org", "urgent"),
        mail("c@x.org", "bulk"),
        mail("Boss@Example.com", "anything"),
    ]
    assert decider.decide(mails) == [
        Decision("normal", 0.123, "held: you never answered a@x.org"),
        Decision("urgent", None, "VIP sender (boss@example.com)"),
        Decision("urgent", 0.87, "urgent: asks for a call"),
        Decision("bulk", 0.01, "held: has List-Unsubscribe"),
        Decision("urgent", None, "VIP sender (boss@example.com)"),
    ]
    assert model.calls == [["normal", "urgent", "bulk"]]


def test_model_not_asked_when_all_are_vip() -> None:
    model = FakeModel()
    decisions = RuleDecider(["*@example.com"], model).decide([mail("a@example.com")])
    assert [d.label for d in decisions] == ["urgent"]
    assert model.calls == []


@pytest.mark.parametrize(
    ("label", "score", "reasons", "text"),
    [
        ("urgent", "0.40, urgent from 0.04", ["urgent: asks for a call"],
         "urgent (0.40, urgent from 0.04): urgent: asks for a call"),
        ("normal", "0.01, urgent from 0.04", ["held: a", "held: b", "urgent: c", "held: d"],
         "normal (0.01, urgent from 0.04): held: a; held: b; urgent: c"),
        ("bulk", "0.00, urgent from 0.04", [], "bulk (0.00, urgent from 0.04)"),
    ],
)  # fmt: skip
def test_reason_words_show_the_score_with_its_cut_and_the_strongest_reasons(
    label: str, score: str, reasons: list[str], text: str
) -> None:
    assert reason_words(label, score, reasons) == text


def test_model_returning_too_few_labels_is_an_error() -> None:
    class Short:
        def label(self, mails: Sequence[Mail]) -> list[Decision]:
            return []

    with pytest.raises(ValueError, match="zip"):
        RuleDecider([], Short()).decide([mail("a@x.org")])
