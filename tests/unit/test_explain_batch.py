"""Explanations computed for a whole batch say what the per-message ones said, word for word.

The reference is the explanation of one message at a time, as commsproxy computed it before:
the message turned into features alone, each feature's value times its weight towards urgent,
its columns named by the message's own words and signals. Over SpamAssassin mail with the
bundled model (whatever its weights), in cold, warm and reply contexts, the batch path must
give the same labels, scores and reasons, and a decision that keeps only its first reasons
must keep exactly those.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commsproxy.classifier.cues import urgency_cues
from commsproxy.classifier.features import Context, Sample, full_text_of, meta_features
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.pipeline import Blend, accounts_pipeline, linear_parts
from commsproxy.classifier.policy import URGENT, judge
from commsproxy.classifier.predict import Classifier, LoadedModel, account_words
from commsproxy.classifier.wording import Reasons
from commsproxy.models.store import load_bundled

CORPUS = (
    Path(__file__).resolve().parents[3] / "shared/data/spamassassin/spamassassin-ham-spam.tar.gz"
)
PICKED = 300  # messages picked evenly from the corpus, by name


@dataclass
class History:
    received: int
    replied: int
    median_reply_minutes: float | None


def _context(i: int, to: tuple[str, ...]) -> Context:
    """Cold, warm with a made-up history, or a reply to the user: all three ways of scoring."""
    if i % 3 == 0:
        return Context(user_addresses=frozenset({"me@example.com"}), history_known=False)
    if i % 3 == 1:
        return Context(
            user_addresses=frozenset(to[:1]),
            sender=History(i % 7, i % 3, 30.0 if i % 3 else None),
            domain=History(i % 11, i % 4, 300.0),
        )
    return Context(user_addresses=frozenset(to[:1]), replies_to_user=True)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    if not CORPUS.exists():
        pytest.skip(f"no SpamAssassin corpus at {CORPUS}")
    out = []
    with tarfile.open(CORPUS) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for i in range(PICKED):
            handle = tar.extractfile(members[i * len(members) // PICKED])
            assert handle is not None
            mail = parse_mail(handle.read()[:65536])
            out.append(Sample(mail, _context(i, mail.to)))
    return out


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    pipeline, info = load_bundled("urgency")
    return LoadedModel.from_info(pipeline, info)


# -- the reference: one message at a time ------------------------------------------------------


def _names(pipeline: Any, sample: Sample) -> dict[int, str]:
    features = pipeline.named_steps["features"]
    text_steps, meta_steps = features.transformer_list[0][1], features.transformer_list[1][1]
    vectorizer = text_steps.named_steps["hash"]
    text = text_steps.named_steps["select"].func([sample])[0]
    names: dict[int, str] = {}
    for token in sorted(set(vectorizer.build_analyzer()(text))):
        names[int(vectorizer.transform([token]).indices[0])] = "word:" + token
    for signal in sorted(meta_features(sample)):
        column = int(meta_steps.named_steps["hash"].transform([{signal: 1.0}]).indices[0])
        names[column + vectorizer.n_features] = signal
    return names


def _pushes(pipeline: Any, sample: Sample) -> dict[str, float]:
    model = pipeline.named_steps["model"]
    if isinstance(model, Blend):
        total: dict[str, float] = {}
        weights = sum(weight for _, _, weight in model.parts)
        for _, part, weight in model.parts:
            for name, value in _pushes(part, sample).items():
                total[name] = total.get(name, 0.0) + value * weight / weights
        return total
    coef, _, classes = linear_parts(pipeline)
    urgent = classes.index(URGENT)
    direction = coef[urgent] - coef[[i for i in range(len(classes)) if i != urgent]].mean(axis=0)
    row = pipeline.named_steps["features"].transform([sample]).tocsr()
    names = _names(pipeline, sample)
    out: dict[str, float] = {}
    for index, value in zip(row.indices, row.data * direction[row.indices], strict=True):
        if value and int(index) in names:
            out[names[int(index)]] = out.get(names[int(index)], 0.0) + float(value)
    return out


def _reference(model: LoadedModel, sample: Sample) -> list[Any]:
    proba = model.pipeline.predict_proba([sample])[0]
    p = {str(c): float(v) for c, v in zip(model.pipeline.classes_, proba, strict=True)}
    judged = judge(sample, p, model.thresholds)
    reasons = Reasons(sample, judged.label)
    if judged.rule:
        reasons.rule(judged.rule)
    elif judged.label == URGENT and (cues := urgency_cues(sample.mail)):
        reasons.rule("; ".join(cues.values()))
    reasons.add_contributions(_pushes(model.pipeline, sample))
    return [judged.label, round(p[URGENT], 4), judged.threshold, reasons.phrases()]


@pytest.fixture(scope="module")
def expected(model: LoadedModel, samples: list[Sample]) -> list[list[Any]]:
    return [_reference(model, sample) for sample in samples]


# -- the batch path -----------------------------------------------------------------------------


def _classify(classifier: Classifier, samples: list[Sample], **options: Any) -> list[Any]:
    verdicts = []
    for start in range(0, len(samples), 120):  # batches of mixed kinds, as the engine's
        verdicts += classifier.classify(samples[start : start + 120], **options)
    return [[v.label, v.p_urgent, v.threshold, v.reasons] for v in verdicts]


def test_batch_reasons_are_the_per_message_ones(
    model: LoadedModel, samples: list[Sample], expected: list[list[Any]]
) -> None:
    got = _classify(Classifier(model), samples, explain=True)
    assert got == expected
    assert sum(1 for verdict in got if any(": words " in r for r in verdict[3])) > 100


def test_kept_reasons_are_the_leading_ones_and_labels_do_not_change(
    model: LoadedModel, samples: list[Sample], expected: list[list[Any]]
) -> None:
    classifier = Classifier(model)
    kept = _classify(classifier, samples, explain=True, reasons_kept=3)
    plain = _classify(classifier, samples)
    for want, short, bare in zip(expected, kept, plain, strict=True):
        assert short[:3] == bare[:3] == want[:3]
        assert short[3] == want[3][:3]
        assert bare[3] is None
    # Some kept reasons need the words, some do not: both ways are exercised.
    assert any(": words " in r for v in kept for r in v[3])
    assert any(len(e[3]) > 3 and ": words " in " ".join(e[3][3:]) for e in expected)


def test_a_message_alone_is_explained_as_in_a_batch(
    model: LoadedModel, samples: list[Sample], expected: list[list[Any]]
) -> None:
    classifier = Classifier(model)
    for sample, want in zip(samples[:40], expected[:40], strict=True):
        [alone] = classifier.classify([sample], explain=True)
        assert alone.reasons == want[3]


def _accounts_classifier() -> Classifier:
    topics = {
        "acme": "turbine order invoice acme delivery schedule",
        "globex": "pipeline contract globex gas volumes nomination",
        "initech": "software licence initech renewal tps reports",
    }
    samples, labels = [], []
    for account, words in topics.items():
        for i in range(12):
            text = f"Subject: {words.split()[i % 5]} {i}\nFrom: x{i}@{account}.example\n\n"
            body = " ".join(words.split()[(i + k) % 6] for k in range(8)) + f" note {i}"
            samples.append(Sample(parse_mail((text + body).encode())))
            labels.append(account)
    pipeline = accounts_pipeline().fit(samples, labels)
    return Classifier(accounts=LoadedModel(pipeline, 0.0))


def test_account_words_are_the_words_pushing_hardest_to_the_account() -> None:
    classifier = _accounts_classifier()
    assert classifier.accounts is not None
    pipeline = classifier.accounts.pipeline
    mails = [
        "Subject: turbine invoice\n\nthe acme delivery schedule and the invoice, also tps",
        "Subject: gas volumes\n\nglobex nomination for the contract, and a turbine",
        "Subject: lunch\n\nnothing of any account here at all",
    ]
    samples = [Sample(parse_mail(m.encode())) for m in mails]
    verdicts = classifier.classify(samples, explain=True)
    assert [v.account for v in verdicts[:2]] == ["acme", "globex"]
    coef, _, classes = linear_parts(pipeline)
    vectorizer = pipeline.named_steps["features"].transformer_list[0][1].named_steps["hash"]
    for sample, verdict in zip(samples, verdicts, strict=True):
        assert verdict.account is not None
        assert verdict.reasons is not None
        # By definition: each of the message's own words, its value times the account's weight.
        row = pipeline.named_steps["features"].transform([sample]).tocsr()
        values = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        weights = coef[classes.index(verdict.account)]
        text = full_text_of([sample])[0]
        pushes = {}
        for token in sorted(set(vectorizer.build_analyzer()(text))):
            column = int(vectorizer.transform([token]).indices[0])
            pushes[token] = values[column] * weights[column]
        best = sorted(((v, k) for k, v in pushes.items() if v > 0), reverse=True)[:4]
        expected = [k for _, k in best]
        assert account_words(pipeline, sample, verdict.account) == expected
        said = [r for r in verdict.reasons if r.startswith(f"account {verdict.account}:")]
        assert said == (
            [f"account {verdict.account}: words " + ", ".join(expected)] if expected else []
        )
