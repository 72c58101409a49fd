"""Reasons in a person's words: the direction of each push, the verdict's side first, no function
words, and never an internal feature name, down to a real explanation from a small model."""

from __future__ import annotations

import re

import pytest
from sklearn.pipeline import Pipeline

from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.classifier.pipeline import urgency_pipeline
from commsproxy.classifier.policy import Thresholds
from commsproxy.classifier.predict import Classifier, LoadedModel, Verdict
from commsproxy.classifier.social import SenderStats
from commsproxy.classifier.wording import Reasons, history_phrase, score_words
from tests.mailfactory import render

ME = "me@corp.example"
ANN = SenderStats(received=12, replied=9, median_reply_minutes=40.0, last_reply_days_ago=1.0)
ACME = SenderStats(received=30, replied=12, median_reply_minutes=55.0, last_reply_days_ago=1.0)


def message(sender: str, subject: str, body: str, **headers: str) -> Mail:
    fields = {"From": sender, "To": ME, "Subject": subject}
    fields |= {name.replace("_", "-"): value for name, value in headers.items()}
    return parse_mail(render(fields, body))


ANNS_MAIL = Sample(
    message("Ann <ann@acme.com>", "Plant", "The outage is back."),
    Context(user_addresses=frozenset({ME}), sender=ANN, domain=ACME),
)

PUSHES = {
    "word:outage": 0.9,
    "word:invoice": 0.4,
    "word:lunch": -0.5,
    "sender mails before~2": 0.2,
    "you replied to sender~4": 0.5,
    "sender reply speed~1": 0.3,
    "has list-unsubscribe": -0.7,
    "recipients~1": 3.0,
    "size~0": -3.0,
    "from domain=acme.com": 0.6,
    "to you and others": 0.1,
    "a reply": 0.05,
    "html only": -0.2,
    "cc to you": -0.1,
}
ANN_ANSWERED = "you answered ann@acme.com 9 times, median 40 min"


def reasons(label: str, contributions: dict[str, float], rule: str = "") -> list[str]:
    collected = Reasons(ANNS_MAIL, label)
    if rule:
        collected.rule(rule)
    collected.add_contributions(contributions)
    return collected.phrases()


# -- directions and order --------------------------------------------------------------------


def test_an_urgent_verdict_says_what_pushed_it_first() -> None:
    assert reasons("urgent", PUSHES) == [
        f"urgent: {ANN_ANSWERED}",  # three history signals, one phrase
        "urgent: from acme.com",
        "urgent: sent to you and others",
        "urgent: a reply",
        "urgent: words outage, invoice",
        "held: has List-Unsubscribe",
        "held: HTML only",  # two against the verdict; "you are in cc" is left out
    ]


def test_a_held_verdict_says_what_held_it_first() -> None:
    assert reasons("normal", PUSHES) == [
        "held: has List-Unsubscribe",
        "held: HTML only",
        "held: you are in cc",
        "held: words lunch",
        f"urgent: {ANN_ANSWERED}",
        "urgent: from acme.com",
    ]
    assert reasons("bulk", PUSHES) == reasons("normal", PUSHES)


def test_the_deciding_rule_leads_and_is_not_repeated() -> None:
    pushes = {"reply to your message": 0.4, "word:outage": 0.2}
    assert reasons("urgent", pushes, rule="a reply to a message you sent") == [
        "urgent: a reply to a message you sent",
        "urgent: words outage",
    ]
    assert reasons("bulk", {"has list-id": -0.3}, rule="has List-Id") == ["held: has List-Id"]


def test_signals_without_a_push_either_way_are_left_out() -> None:
    assert reasons("urgent", {"a forward": 0.0, "word:outage": 0.0}) == []


# -- words -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "function_words"),
    [
        ("English", ["the", "and", "would", "about"]),
        ("Dutch", ["het", "niet", "maar", "wordt"]),
        ("French", ["les", "avec", "dans", "votre"]),
        ("German", ["und", "nicht", "für", "werden"]),
    ],
)
def test_function_words_are_never_reasons(language: str, function_words: list[str]) -> None:
    pushes = {f"word:{word}": 5.0 for word in function_words} | {"word:storing": 0.1}
    assert reasons("urgent", pushes) == ["urgent: words storing"], language


def test_short_words_and_numbers_are_never_reasons() -> None:
    pushes = {"word:ok": 2.0, "word:2024": 2.0, "word:q3": 1.0, "word:outage": 0.5}
    assert reasons("urgent", pushes) == ["urgent: words outage"]


def test_at_most_four_words_the_strongest_first() -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo"]
    pushes = {f"word:{w}": float(v) for v, w in enumerate(words, start=1)}
    assert reasons("urgent", pushes) == ["urgent: words echo, delta, charlie, bravo"]


# -- signal names in words -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "phrase"),
    [
        ("from=ann@acme.com", "from ann@acme.com"),
        ("from domain=acme.com", "from acme.com"),
        ("to=bob@corp.example", "also to bob@corp.example"),
        ("cc=carol@corp.example", "cc carol@corp.example"),
        ("precedence bulk", "Precedence: bulk"),
        ("no-reply sender", "a no-reply sender"),
        ("not addressed to you", "not addressed to you (a list or bcc)"),
        ("auto-submitted", "sent automatically (Auto-Submitted)"),
        ("you replied to domain~2", "you answered people at acme.com 12 times, median 55 min"),
    ],
)
def test_each_signal_reads_as_words(signal: str, phrase: str) -> None:
    assert reasons("urgent", {signal: 1.0}) == [f"urgent: {phrase}"]


def test_the_users_own_address_is_not_another_recipient() -> None:
    pushes = {"to=me@corp.example": 0.5, "cc=me@corp.example": 0.4, "to you": 0.1}
    assert reasons("urgent", pushes) == ["urgent: sent to you alone"]


def test_a_domain_with_no_history_is_a_first_mail() -> None:
    stranger = Sample(message("zed@new.example", "Hi", "Hello."), Context(history_known=True))
    collected = Reasons(stranger, "normal")
    collected.add_contributions({"new domain": -0.3, "new sender": -0.2})
    assert collected.phrases() == [
        "held: first mail from people at new.example",
        "held: first mail from zed@new.example",
    ]


# -- history and score -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "phrase"),
    [
        (ANN, "you answered ann@acme.com 9 times, median 40 min"),
        (None, "first mail from ann@acme.com"),
        (SenderStats(0, 0, None, None), "first mail from ann@acme.com"),
        (SenderStats(3, 0, None, None), "you never answered ann@acme.com (3 messages before)"),
        (SenderStats(1, 0, None, None), "you never answered ann@acme.com (1 message before)"),
        (SenderStats(4, 1, None, None), "you answered ann@acme.com 1 time"),
        (SenderStats(4, 2, 89.0, 1.0), "you answered ann@acme.com 2 times, median 89 min"),
        (SenderStats(4, 2, 90.0, 1.0), "you answered ann@acme.com 2 times, median 2 h"),
        (SenderStats(4, 2, 47 * 60.0, 1.0), "you answered ann@acme.com 2 times, median 47 h"),
        (SenderStats(4, 2, 3 * 1440.0, 1.0), "you answered ann@acme.com 2 times, median 3 days"),
    ],
)
def test_history_phrase(history: SenderStats | None, phrase: str) -> None:
    assert history_phrase("ann@acme.com", history) == phrase


@pytest.mark.parametrize(
    ("p_urgent", "threshold", "words"),
    [
        (0.04, 0.03, "0.04, urgent from 0.03"),
        (0.034, 0.031, "0.034, urgent from 0.031"),  # equal at two decimals
        (0.5, None, "0.50"),
        (None, 0.03, "no score"),
        (None, None, "no score"),
    ],
)
def test_score_words(p_urgent: float | None, threshold: float | None, words: str) -> None:
    assert score_words(p_urgent, threshold) == words
    assert Verdict(p_urgent=p_urgent, threshold=threshold).score_words() == words


# -- a real explanation from a small trained model -------------------------------------------


def _training_mail() -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    labels: list[str] = []
    me = frozenset({ME})
    for i in range(60):
        if i % 3 == 0:
            mail = message(
                "Ann <ann@acme.com>",
                f"Re: outage at plant {i}",
                "The outage is back, the customer is waiting on invoice 42.",
                In_Reply_To=f"<t{i}@acme.com>",
            )
            context = Context(user_addresses=me, sender=ANN, domain=ACME)
            labels.append("urgent")
        elif i % 3 == 1:
            mail = message(
                "Weekly <news@letters.example>",
                f"Weekly digest {i}",
                "This week: articles and events. Unsubscribe at any time.",
                List_Unsubscribe="<mailto:leave@letters.example>",
                Precedence="bulk",
            )
            context = Context(user_addresses=me)
            labels.append("bulk")
        else:
            mail = message(f"colleague{i % 4}@corp.example", f"lunch {i}", "Lunch next week?")
            context = Context(user_addresses=me, sender=SenderStats(5, 0, None, None))
            labels.append("normal")
        samples.append(Sample(mail, context))
    return samples, labels


@pytest.fixture(scope="module")
def model() -> Pipeline:
    samples, labels = _training_mail()
    return urgency_pipeline(calibrate=False).fit(samples, labels)


REALISTIC = [
    Sample(
        parse_mail(
            render(
                {
                    "From": '"Ann Smith" <ann@acme.com>',
                    "To": f"{ME}, bob@corp.example",
                    "Cc": "carol@corp.example",
                    "Subject": "Re: outage at the plant",
                    "In-Reply-To": "<t1@acme.com>",
                    "Importance": "high",
                },
                "The outage is back and the customer is waiting on the invoice. Can you and "
                "Bob check the logs? Het werkt niet, les machines sont arrêtées, und nicht "
                "nur heute.\n\nAnn",
            )
        ),
        Context(user_addresses=frozenset({ME}), sender=ANN, domain=ACME),
    ),
    Sample(
        message(
            "Weekly <news@letters.example>",
            "Weekly digest 99",
            "This week: articles and events for the whole team.",
            List_Unsubscribe="<mailto:leave@letters.example>",
            Precedence="bulk",
        ),
        Context(user_addresses=frozenset({ME})),
    ),
    Sample(
        message("colleague1@corp.example", "lunch on Friday", "Lunch next week? Bring the team."),
        Context(user_addresses=frozenset({ME}), history_known=False),
    ),
]
LEAKS = re.compile(r"~|\(level|from domain=|from=|to=|cc=|word:|recipients|size|precedence ")


def test_explanations_from_a_trained_model_are_in_words(model: Pipeline) -> None:
    # The urgent message scores 0.95: below this warm cut, so its cues decide (rule 3).
    classifier = Classifier(LoadedModel(model, None, Thresholds(0.97, 0.6, 0.9)))
    verdicts = classifier.classify(REALISTIC, explain=True)
    assert [v.label for v in verdicts] == ["urgent", "bulk", "normal"]
    for verdict in verdicts:
        assert verdict.reasons, verdict
        sides = [reason.partition(": ")[0] for reason in verdict.reasons]
        assert set(sides) <= {"urgent", "held"}, verdict.reasons
        mine = "urgent" if verdict.label == "urgent" else "held"
        # The verdict's own side first, then the other.
        assert sides == sorted(sides, key=lambda side: side != mine), verdict.reasons
        for reason in verdict.reasons:
            assert not LEAKS.search(reason), reason
    urgent = verdicts[0].reasons
    assert urgent is not None
    assert urgent[0] == 'urgent: marked high priority; says "outage"'
    assert f"urgent: {ANN_ANSWERED}" in urgent
    words = next(r for r in urgent if r.startswith("urgent: words "))
    shown = words.removeprefix("urgent: words ").split(", ")
    assert {"the", "and", "het", "niet", "les", "und", "nicht"}.isdisjoint(shown), words
    bulk = verdicts[1].reasons
    assert bulk is not None
    assert "held: has List-Unsubscribe" in bulk
    assert verdicts[0].score_words() == "0.95, urgent from 0.97"
    assert verdicts[2].score_words().endswith("urgent from 0.60")  # no history: the cold cut
