"""Training against a prior (the bundled model): keep it when the user's mail cannot measure
anything better, blend when the user's own signal is strong, and say why in words. Blends
average their parts, refuse parts that disagree on the classes, and survive a save and load."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from commsproxy.classifier.features import Context, Sample, meta_features
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.pipeline import Blend, blend_pipeline, urgency_pipeline
from commsproxy.classifier.predict import Classifier, LoadedModel
from commsproxy.classifier.social import SenderStats
from commsproxy.classifier.train import (
    MIN_HELD_SHARE,
    Prior,
    UrgencyReport,
    cold,
    train_urgency,
)
from commsproxy.models.store import load_model, save_model

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
ME = "me@corp.example"
LABELS = ("urgent", "normal", "bulk")


def sample(n: int, kind: str, world: str) -> Sample:
    """Message ``n`` of a mailbox; urgent mail is told apart by different words in each world.

    No urgency cues (cues.py) anywhere: the models, not the rules, must tell urgent mail apart.
    """
    headers: dict[str, str] = {}
    if kind == "urgent" and world == "bundled":
        sender, subject, body = "boss@acme.example", f"Contract review {n}", "Review the clauses."
    elif kind == "urgent":
        sender, subject = "ceo@mybiz.example", f"Shipment {n} for Rotterdam"
        body = "The container manifest and the pallet count for the shipment."
    elif kind == "bulk":
        sender, subject = f"news{n % 5}@letters.example", f"Weekly digest {n}"
        body = "Articles, events and offers of the week."
        headers = {"list-unsubscribe": "<mailto:leave@letters.example>"}
    else:
        sender, subject = f"colleague{n % 6}@corp.example", f"Notes {n}"
        body = "Notes from the team meeting about the garden party and the canteen."
    return Sample(
        Mail(
            message_id=f"<{world}{n}@x>",
            in_reply_to=(),
            references=(),
            date=T0 + timedelta(hours=n),
            sender=sender,
            sender_name="",
            to=(ME,),
            cc=(),
            subject=subject,
            body=f"{body} Message {n}.",
            headers=headers,
        ),
        Context(user_addresses=frozenset({ME})),
    )


def mailbox(world: str, n: int, urgent_at: set[int]) -> tuple[list[Sample], list[str]]:
    """``n`` messages in date order: urgent at ``urgent_at``, else bulk every third, else normal."""
    kinds = ["urgent" if i in urgent_at else "bulk" if i % 3 == 1 else "normal" for i in range(n)]
    return [sample(i, kind, world) for i, kind in enumerate(kinds)], kinds


@pytest.fixture(scope="module")
def prior() -> Prior:
    samples, labels = mailbox("bundled", 240, set(range(0, 240, 4)))
    pipeline, report = train_urgency(samples, labels)
    assert report.warm.delivered >= 0.95
    return Prior(pipeline, report.thresholds)


# -- too little to measure: the prior as it is -----------------------------------------------


def test_three_urgent_messages_keep_the_prior_and_say_why(prior: Prior) -> None:
    samples, labels = mailbox("mine", 90, {30, 60, 85})
    final, report = train_urgency(samples, labels, prior=prior)
    assert final is prior.pipeline
    assert report.thresholds == prior.thresholds
    assert report.choice == "the bundled model as it is"
    assert report.urgent_validated == 3
    assert report.prior is not None
    assert (report.warm.delivered, report.warm.held) == (
        report.prior.delivered,
        report.prior.held,
    )
    too_few, kept = report.notes
    assert "urgent messages" in too_few
    assert "at least 20 are needed to measure a model of your own" in too_few
    assert kept == "keeping the bundled model, with your history with senders"
    assert "urgent: bundled model as it is" not in report.summary()
    assert report.summary().startswith("on your newest mail: the bundled model as it is ")


def test_what_is_saved_holds_mail_or_is_the_prior(prior: Prior) -> None:
    """Never a model of the user's mail that holds nothing: the hold constraint, or the prior."""
    for urgent_at in ({30, 60, 85}, set(range(0, 90, 2))):
        samples, labels = mailbox("mine", 90, urgent_at)
        final, report = train_urgency(samples, labels, prior=prior)
        assert report.warm.held >= MIN_HELD_SHARE or final is prior.pipeline, report


# -- a strong signal of the user's own ------------------------------------------------------


OwnSignal = tuple[list[Sample], list[str], Pipeline, UrgencyReport]


@pytest.fixture(scope="module")
def own_signal(prior: Prior) -> OwnSignal:
    samples, labels = mailbox("mine", 300, set(range(0, 300, 3)))
    final, report = train_urgency(samples, labels, prior=prior)
    return samples, labels, final, report


def test_a_strong_own_signal_does_at_least_as_well_as_the_prior(
    own_signal: OwnSignal, prior: Prior
) -> None:
    _, _, final, report = own_signal
    assert report.validation.startswith("time-ordered")
    warm, bundled = report.warm, report.prior
    urgent = report.urgent_validated
    assert urgent >= 20
    assert warm.delivered >= 0.95 - 1 / urgent
    assert warm.held >= MIN_HELD_SHARE
    assert bundled is not None
    assert warm.held >= bundled.held or bundled.delivered < 0.95 - 1 / urgent
    # The bundled model has never seen a shipment: it cannot do both on this mail.
    assert not (bundled.delivered >= 0.95 and bundled.held >= MIN_HELD_SHARE), bundled
    assert report.choice != "the bundled model as it is"
    assert report.notes == []
    assert final is not prior.pipeline


def test_the_saved_model_and_its_cuts_decide_as_measured(
    own_signal: OwnSignal,
) -> None:
    samples, labels, final, report = own_signal
    classifier = Classifier(LoadedModel(final, None, report.thresholds))
    newest = slice(240, 300)
    verdicts = classifier.classify(samples[newest])
    said = np.asarray([v.label for v in verdicts])
    truth = np.asarray(labels[newest])
    assert np.mean(said[truth == "urgent"] == "urgent") >= 0.95
    assert np.mean(said[truth != "urgent"] != "urgent") >= MIN_HELD_SHARE
    assert not np.any(said[truth == "normal"] == "bulk")


def test_a_mailbox_without_bulk_mail_cannot_be_blended_and_says_so(prior: Prior) -> None:
    samples, labels = mailbox("mine", 200, set(range(0, 200, 2)))
    labels = [label if label != "bulk" else "normal" for label in labels]
    final, report = train_urgency(samples, labels, prior=prior)
    assert final is prior.pipeline
    assert report.choice == "the bundled model as it is"
    assert report.notes == [
        "your mail and the bundled model differ in their labels (bulk on one side only): a "
        "model of your own cannot be blended with it",
        "keeping the bundled model, with your history with senders",
    ]


# -- blends ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts() -> tuple[Pipeline, Pipeline]:
    a = urgency_pipeline(calibrate=False).fit(*mailbox("bundled", 60, set(range(0, 60, 4))))
    b = urgency_pipeline(calibrate=False).fit(*mailbox("mine", 60, set(range(0, 60, 3))))
    return a, b


SOME_MAIL = [
    sample(i, kind, world) for i in range(6) for kind in LABELS for world in ("bundled", "mine")
]


def test_a_blend_is_the_weighted_average_of_its_parts(parts: tuple[Pipeline, Pipeline]) -> None:
    a, b = parts
    blend = blend_pipeline([("yours", a, 3.0), ("bundled", b, 1.0)])
    expected = (3 * a.predict_proba(SOME_MAIL) + b.predict_proba(SOME_MAIL)) / 4
    np.testing.assert_allclose(blend.predict_proba(SOME_MAIL), expected)
    assert list(blend.classes_) == list(a.classes_)
    np.testing.assert_array_equal(blend.predict(SOME_MAIL), a.classes_[expected.argmax(axis=1)])


def test_a_blend_takes_p_bulk_from_one_part(parts: tuple[Pipeline, Pipeline]) -> None:
    a, b = parts
    blend = blend_pipeline([("yours", a, 0.75), ("bundled", b, 0.25)], bulk_from="bundled")
    proba = blend.predict_proba(SOME_MAIL)
    classes = list(blend.classes_)
    bulk = classes.index("bulk")
    np.testing.assert_allclose(proba[:, bulk], b.predict_proba(SOME_MAIL)[:, bulk])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The rest is shared out as the weighted average shares it.
    average = 0.75 * a.predict_proba(SOME_MAIL) + 0.25 * b.predict_proba(SOME_MAIL)
    urgent, normal = classes.index("urgent"), classes.index("normal")
    np.testing.assert_allclose(
        proba[:, urgent] / proba[:, normal], average[:, urgent] / average[:, normal]
    )


def test_a_blend_refuses_parts_that_disagree_on_the_classes(
    parts: tuple[Pipeline, Pipeline],
) -> None:
    a, _ = parts
    samples, labels = mailbox("mine", 40, set(range(0, 40, 3)))
    kinds = [label if label != "bulk" else "normal" for label in labels]
    two = urgency_pipeline(calibrate=False).fit(samples, kinds)
    with pytest.raises(ValueError, match="disagree on their classes"):
        blend_pipeline([("yours", two, 0.5), ("bundled", a, 0.5)])
    with pytest.raises(ValueError, match="no part named 'prior'"):
        blend_pipeline([("yours", a, 0.5), ("bundled", a, 0.5)], bulk_from="prior")


def test_a_saved_blend_gives_the_same_verdicts(
    parts: tuple[Pipeline, Pipeline], tmp_path: Path
) -> None:
    a, b = parts
    blend = blend_pipeline([("yours", a, 0.5), ("bundled", b, 0.5)], bulk_from="bundled")
    thresholds = {"urgent": 0.3, "urgent_cold": 0.4, "bulk": 0.9}
    info = save_model(
        blend,
        tmp_path / "urgency",
        task="urgency",
        labels=list(blend.classes_),
        training={"counts": {"urgent": 1}},
        metrics={},
        threshold=0.3,
        thresholds=thresholds,
    )
    loaded, loaded_info = load_model(info.path, expected_task="urgency")
    assert isinstance(loaded, Pipeline)
    assert isinstance(loaded.named_steps["model"], Blend)
    before = Classifier(LoadedModel.from_info(blend, info)).classify(SOME_MAIL, explain=True)
    after = Classifier(LoadedModel.from_info(loaded, loaded_info)).classify(SOME_MAIL, explain=True)
    assert after == before
    assert {v.label for v in after} >= {"urgent", "bulk"}
    assert all(v.reasons for v in after)


# -- cold ------------------------------------------------------------------------------------


def test_cold_strips_the_history_and_keeps_the_rest() -> None:
    history = SenderStats(received=12, replied=9, median_reply_minutes=40.0, last_reply_days_ago=1)
    warm = replace(
        sample(1, "normal", "mine"),
        context=Context(
            user_addresses=frozenset({ME}),
            sender=history,
            domain=history,
            replies_to_user=True,
            relation="colleague",
        ),
        rebuilt=True,
    )
    stripped = cold(warm)
    assert stripped.context == Context(
        user_addresses=frozenset({ME}), history_known=False, relation="colleague"
    )
    assert stripped.mail is warm.mail
    assert stripped.rebuilt
    assert warm.context.history_known  # the original is left as it was
    history_signals = {"sender mails before~2", "you replied to sender~4", "reply to your message"}
    assert history_signals <= set(meta_features(warm))
    signals = set(meta_features(stripped))
    kept_back = ("new ", "sender ", "domain ", "you replied", "reply to your message")
    assert not [s for s in signals if s.startswith(kept_back)], signals
    assert "new sender" not in signals
    assert "new sender" in meta_features(replace(stripped, context=Context()))
