"""The accounts model solved on the columns the mail uses is the model Pipeline.fit gives, and
training one fit after the other gives what two side by side give (to the solver's tolerance)."""

from __future__ import annotations

import numpy as np
import pytest

from commsproxy.classifier import train
from commsproxy.classifier.features import Sample
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.pipeline import accounts_pipeline, decision_scores
from commsproxy.classifier.train import fit_accounts, train_accounts

TOPICS = {
    "acme": "turbine order invoice acme delivery schedule 4711",
    "globex": "pipeline contract globex gas volumes nomination 2002",
    "initech": "software licence initech renewal tps reports q3",
    "umbrella": "samples lab umbrella courier shipment forms",
}


def _mail(account: str, i: int) -> Sample:
    words = TOPICS[account].split()
    body = " ".join(words[(i * 3 + k) % len(words)] for k in range(9))
    text = (
        f"From: p{i % 5}@{account}.example\nTo: me@corp.example\n"
        f"Subject: {words[i % len(words)]} {i}\n\n{body} and some shared words {i % 7}"
    )
    return Sample(parse_mail(text.encode()))


@pytest.fixture(scope="module")
def data() -> tuple[list[Sample], np.ndarray]:
    pairs = [(_mail(a, i), a) for i in range(15) for a in TOPICS]
    return [s for s, _ in pairs], np.asarray([a for _, a in pairs])


def test_the_compact_fit_is_the_pipeline_fit(data: tuple[list[Sample], np.ndarray]) -> None:
    samples, labels = data
    plain = accounts_pipeline(0).fit(samples, labels)
    compact = fit_accounts(samples, labels, 0)
    for name in ("coef_", "intercept_", "classes_"):
        assert np.array_equal(
            getattr(plain.named_steps["model"], name), getattr(compact.named_steps["model"], name)
        )
    assert compact.named_steps["model"].coef_.shape[1] == plain.named_steps["model"].n_features_in_
    fresh = [_mail(a, 100 + i) for i, a in enumerate(TOPICS)]
    assert np.array_equal(decision_scores(plain, fresh)[0], decision_scores(compact, fresh)[0])


def test_one_after_the_other_trains_the_same_model(
    data: tuple[list[Sample], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    samples, labels = data
    monkeypatch.setattr(train, "usable_cpus", lambda: 2)
    side_by_side, report = train_accounts(samples, list(labels))
    monkeypatch.setattr(train, "SIDE_BY_SIDE_BYTES", 0)
    in_turn, again = train_accounts(samples, list(labels))
    # liblinear's random stream is one per process: side by side, the two fits may draw from
    # it in either order, which moves the weights within the solver's tolerance only.
    assert np.allclose(
        side_by_side.named_steps["model"].coef_, in_turn.named_steps["model"].coef_, atol=1e-4
    )
    assert report.threshold == pytest.approx(again.threshold, abs=1e-4)
    assert (report.precision, report.coverage) == (again.precision, again.coverage)
