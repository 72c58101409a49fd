"""Stored decision reasons in plain words: every phrase the classifier writes, and the rest."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from commsproxy.classifier.cues import CUE_KINDS, urgency_cues
from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.labels import bulk_reason
from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.classifier.policy import Thresholds, judge
from commsproxy.classifier.predict import Classifier, LoadedModel
from commsproxy.classifier.wording import _SIGNALS, Reasons, history_phrase
from commsproxy.models.store import load_bundled
from commsproxy.triage.decide import RuleDecider, reason_words
from commsproxy.triage.plain_reasons import UNKNOWN, parse_reason, plain_phrase, plain_reason

CORPUS = (
    Path(__file__).resolve().parents[3] / "shared/data/spamassassin/spamassassin-ham-spam.tar.gz"
)
# What a feature's or header's own name looks like: never shown to the user.
RAW = ("~", "=", "List-", "list-", "Auto-Submitted", "Precedence", "(0.", "urgent from")


@dataclass
class History:
    received: int
    replied: int
    median_reply_minutes: float | None


def mail(headers: dict[str, str] | None = None, **fields: object) -> Mail:
    values: dict[str, object] = {
        "message_id": "<m@x>",
        "in_reply_to": (),
        "references": (),
        "date": None,
        "sender": "ann@acme.example",
        "sender_name": "Ann",
        "to": ("me@corp.example",),
        "cc": (),
        "subject": "hello",
        "body": "",
        "headers": headers or {},
    }
    return Mail(**(values | fields))  # type: ignore[arg-type]


def assert_plain(text: str) -> None:
    assert text, text
    assert text != UNKNOWN, text
    words = " ".join(w for w in text.split() if "@" not in w)  # an address may hold "="
    for raw in RAW:
        assert raw not in words, (raw, text)


def the_classifiers_phrases() -> list[str]:
    """Every phrase shape, made by the classifier's own code wherever it can make it."""
    out = list(_SIGNALS.values())
    for history in (None, History(0, 0, None), History(5, 0, None), History(9, 3, 40.0)):
        out += [history_phrase("ann@acme.example", history)]
        out += [history_phrase("people at acme.example", history)]
    sample = Sample(mail(), Context(user_addresses=frozenset({"me@corp.example"})))
    reasons = Reasons(sample, "normal")
    for name in ("from=ann@acme.example", "from domain=acme.example", "to=bob@corp.example",
                 "cc=carol@corp.example", "precedence bulk", "precedence first-class",
                 *_SIGNALS):  # fmt: skip
        phrase = reasons._signal(name)
        assert phrase is not None, name
        out.append(phrase)
    for headers in (
        {"list-unsubscribe": "<mailto:x>"},
        {"list-id": "<x>"},
        {"list-post": "<x>"},
        {"precedence": "bulk"},
        {"precedence": "list"},
        {"precedence": "junk"},
        {"auto-submitted": "auto-replied"},
    ):
        reason = bulk_reason(mail(headers))
        assert reason is not None, headers
        out.append(reason)
    out += [bulk_reason(mail(sender="noreply@shop.example")) or ""]
    out += [bulk_reason(mail(to=tuple(f"p{i}@x.example" for i in range(40)))) or ""]
    cued = mail(
        {"importance": "high"},
        subject="URGENT: server down",
        body="Please call me back before noon today.",
    )
    cues = urgency_cues(cued)
    assert set(cues) == set(CUE_KINDS), cues
    out += list(cues.values())
    out += ["a reply to a message you sent", "words outage, invoice, today"]
    out += ["account Acme: words invoice, order"]
    # policy's rules: confident bulk, and "never answered"
    confident = judge(sample, {"bulk": 0.99, "normal": 0.01, "urgent": 0.0}, Thresholds(bulk=0.9))
    out.append(confident.rule)
    warm = Sample(mail(), Context(sender=History(4, 0, None), history_known=True))
    never = judge(warm, {"bulk": 0.0, "normal": 0.2, "urgent": 0.8}, Thresholds(urgent=0.5))
    assert never.rule.startswith("you never answered"), never
    out.append(never.rule)
    return out


@pytest.mark.parametrize("phrase", the_classifiers_phrases())
@pytest.mark.parametrize("side", ["held", "urgent"])
def test_every_phrase_the_classifier_writes_has_plain_words(phrase: str, side: str) -> None:
    plain = plain_phrase(phrase, side)
    assert plain is not None, phrase
    assert_plain(plain)


def test_a_whole_reason_reads_as_what_it_means() -> None:
    stored = reason_words(
        "normal",
        "0.02, urgent from 0.04",
        [
            "held: has List-Unsubscribe",
            "held: you never answered news@x.example (5 messages before)",
            "urgent: words outage, invoice",
        ],
    )
    assert plain_reason(stored) == (
        "a newsletter (has an unsubscribe link); you never answered news@x.example "
        "(in 5 earlier messages); but words like outage, invoice are common in urgent mail"
    )


def test_a_rule_of_several_cues_keeps_them_on_their_side() -> None:
    stored = (
        'urgent (0.01, urgent from 0.04): urgent: says "asap"; deadline "by noon"; held: HTML only'
    )
    reason = parse_reason(stored)
    assert reason.label == "urgent"
    assert reason.urgent == ('it says "asap"', 'it mentions a deadline ("by noon")')
    assert reason.held == ("formatted like a newsletter (HTML only)",)


def test_a_decision_without_reasons_says_there_was_no_sign_of_urgency() -> None:
    assert plain_reason("normal (0.02, urgent from 0.04)") == "no sign it is urgent"
    assert plain_reason("bulk (no score)") == "no sign it is urgent"


def test_notes_and_the_rule_only_reasons() -> None:
    assert plain_reason("normal (0.03) (already read: left in INBOX)") == (
        "no sign it is urgent; you had already read it, so it stayed in INBOX"
    )
    assert "holding was switched off" in plain_reason(
        "normal (0.03): held: a forward (holding stopped: left in INBOX)"
    )
    vip = "VIP sender (*@acme.example)"
    assert plain_reason(vip) == "on your always-urgent list (*@acme.example)"
    assert parse_reason("VIP sender (*@acme.example)").label == "urgent"
    assert plain_reason("no model: held by default").startswith("no trained model yet")
    assert "by hand" in plain_reason("moved here by hand")


@pytest.mark.parametrize(
    "stored",
    [
        "normal (0.1): held: recipients~3",
        "normal (0.1): held: has x-mailer",
        "normal (0.1): weird part without a side",
        "something else entirely",
        "to=bob@x.example; from domain=x",
    ],
)
def test_an_unknown_reason_never_shows_a_feature_name(stored: str) -> None:
    text = plain_reason(stored)
    assert UNKNOWN in text, text
    for raw in ("~", "=", "x-mailer", "weird"):
        assert raw not in text, text


def test_an_empty_reason_is_not_an_error() -> None:
    assert plain_reason("") == "no sign it is urgent"


def test_the_bundled_models_reasons_on_real_mail_are_all_known() -> None:
    """Every reason the bundled model gives 150 real messages (ham and spam, cold, warm and
    replies), with all of its reasons, maps to plain words."""
    if not CORPUS.exists():
        pytest.skip(f"no SpamAssassin corpus at {CORPUS}")
    pipeline, info = load_bundled("urgency")
    classifier = Classifier(LoadedModel.from_info(pipeline, info))
    samples = []
    with tarfile.open(CORPUS) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for i in range(150):
            handle = tar.extractfile(members[i * len(members) // 150])
            assert handle is not None
            parsed = parse_mail(handle.read()[:65536])
            me = frozenset(parsed.to[:1])
            context = (
                Context(user_addresses=me, history_known=False)
                if i % 3 == 0
                else Context(
                    user_addresses=me,
                    sender=History(i % 7, i % 3, 30.0 if i % 3 else None),
                    domain=History(i % 11, i % 4, 300.0),
                    replies_to_user=i % 3 == 2,
                )
            )
            samples.append(Sample(parsed, context))
    verdicts = classifier.classify(samples, explain=True)
    seen = 0
    for verdict in verdicts:
        label = verdict.label or "normal"
        stored = reason_words(label, verdict.score_words(), verdict.reasons or [])
        reason = parse_reason(stored)
        for text in (*reason.held, *reason.urgent):
            assert_plain(text)
            seen += 1
    assert seen > 150
    vip = RuleDecider(["*@acme.example"]).decide([mail()])[0]
    assert_plain(plain_reason(vip.reason))
