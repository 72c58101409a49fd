"""Classifying messages with the trained models, and saying why in words.

A verdict carries the urgency label (policy.py: the model's scores, the message's own cues,
bulk evidence), p(urgent) with the cut it was held to, the customer account when the accounts
model is confident enough, and on request the reasons (wording.py). Explanations come straight
from the linear model: each feature's weight towards urgent, against the other labels, times
its value in this message; a blend adds up its parts' by their weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from .cues import urgency_cues
from .features import Sample, meta_features
from .pipeline import TEXT_FEATURES, Blend, decision_scores, linear_parts
from .policy import URGENT, Thresholds, judge
from .wording import Reasons, score_words

__all__ = ["Classifier", "LoadedModel", "Verdict"]


@dataclass
class Verdict:
    label: str | None = None
    p_urgent: float | None = None
    threshold: float | None = None  # the urgent cut this message was held to
    account: str | None = None
    account_score: float | None = None
    reasons: list[str] | None = None

    def score_words(self) -> str:
        """ "0.04, urgent from 0.03": the score with the cut it was held to."""
        return score_words(self.p_urgent, self.threshold)


@dataclass
class LoadedModel:
    pipeline: Pipeline
    threshold: float | None
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if self.thresholds == Thresholds():
            self.thresholds = Thresholds.from_mapping({}, self.threshold)

    @classmethod
    def from_info(cls, pipeline: Any, info: Any) -> LoadedModel:
        """From the model store's (pipeline, ModelInfo)."""
        thresholds = Thresholds.from_mapping(info.thresholds, info.threshold)
        return cls(pipeline, info.threshold, thresholds)


class Classifier:
    """Applies the urgency and/or accounts model to samples."""

    def __init__(self, urgency: LoadedModel | None = None, accounts: LoadedModel | None = None):
        self.urgency = urgency
        self.accounts = accounts

    def classify(self, samples: Sequence[Sample], *, explain: bool = False) -> list[Verdict]:
        verdicts = [Verdict(reasons=[] if explain else None) for _ in samples]
        if not samples:
            return verdicts
        rules: list[str] = [""] * len(samples)
        if self.urgency is not None:
            proba, classes = decision_scores(self.urgency.pipeline, list(samples))
            for i, (sample, verdict) in enumerate(zip(samples, verdicts, strict=True)):
                p = {c: float(proba[i, j]) for j, c in enumerate(classes)}
                judged = judge(sample, p, self.urgency.thresholds)
                verdict.label = judged.label
                verdict.threshold = judged.threshold
                verdict.p_urgent = round(p[URGENT], 4) if URGENT in p else None
                rules[i] = judged.rule
        if self.accounts is not None:
            scores, names = decision_scores(self.accounts.pipeline, list(samples))
            best = scores.argmax(axis=1)
            threshold = self.accounts.threshold if self.accounts.threshold is not None else 0.0
            for i, verdict in enumerate(verdicts):
                score = float(scores[i, best[i]])
                verdict.account_score = round(score, 4)
                verdict.account = names[best[i]] if score >= threshold else None
        if explain:
            for sample, verdict, rule in zip(samples, verdicts, rules, strict=True):
                verdict.reasons = self._reasons(sample, verdict, rule)
        return verdicts

    def _reasons(self, sample: Sample, verdict: Verdict, rule: str) -> list[str]:
        reasons = Reasons(sample, verdict.label or "normal")
        if rule:
            reasons.rule(rule)
        elif verdict.label == URGENT and (cues := urgency_cues(sample.mail)):
            # What the message says of itself leads, even where the score alone decided.
            reasons.rule("; ".join(cues.values()))
        if self.urgency is not None and verdict.label is not None:
            reasons.add_contributions(urgency_contributions(self.urgency.pipeline, sample))
        out = reasons.phrases()
        if self.accounts is not None and verdict.account is not None:
            words = account_words(self.accounts.pipeline, sample, verdict.account)
            if words:
                out.append(f"account {verdict.account}: words " + ", ".join(words))
        return out


def urgency_contributions(pipeline: Pipeline, sample: Sample) -> dict[str, float]:
    """Feature name (a word, or a named signal) -> its push towards urgent (+) or not (-)."""
    model = pipeline.named_steps["model"]
    if isinstance(model, Blend):
        total: dict[str, float] = {}
        weights = sum(weight for _, _, weight in model.parts)
        for _, part, weight in model.parts:
            for name, value in urgency_contributions(part, sample).items():
                total[name] = total.get(name, 0.0) + value * weight / weights
        return total
    coef, _, classes = linear_parts(pipeline)
    if URGENT not in classes:
        return {}
    urgent = classes.index(URGENT)
    others = [i for i in range(len(classes)) if i != urgent]
    # Towards urgent and away from the likelier of the rest, on average over them.
    direction = coef[urgent] - coef[others].mean(axis=0)
    return _named(pipeline, sample, direction)


def account_words(pipeline: Pipeline, sample: Sample, account: str) -> list[str]:
    """The words that pushed hardest towards ``account`` in this message."""
    coef, _, classes = linear_parts(pipeline)
    if account not in classes:
        return []
    named = _named(pipeline, sample, coef[classes.index(account)])
    ranked = sorted((v, k) for k, v in named.items() if v > 0 and k.startswith("word:"))
    return [k[5:] for _, k in reversed(ranked)][:4]


def _named(pipeline: Pipeline, sample: Sample, weights: np.ndarray) -> dict[str, float]:
    """Each active feature of ``sample`` by name ("word:x" or the signal) -> weight x value."""
    features = pipeline.named_steps["features"]
    row = features.transform([sample]).tocsr()
    contribution = row.data * weights[row.indices]
    values = {int(i): float(c) for i, c in zip(row.indices, contribution, strict=True) if c}
    names = _feature_names(features, sample, set(values))
    out: dict[str, float] = {}
    for index, value in values.items():
        if index in names:
            out[names[index]] = out.get(names[index], 0.0) + value
    return out


def _feature_names(features: object, sample: Sample, wanted: set[int]) -> dict[int, str]:
    """Column index -> "word:token" or the signal name, for the columns of this message."""
    text_steps = features.transformer_list[0][1]  # type: ignore[attr-defined]
    meta_steps = features.transformer_list[1][1]  # type: ignore[attr-defined]
    vectorizer = text_steps.named_steps["hash"]
    analyzer = vectorizer.build_analyzer()
    text = text_steps.named_steps["select"].func([sample])[0]
    tokens = sorted(set(analyzer(text)))
    names: dict[int, str] = {}
    if tokens:
        # One token per "document": each row has the token's single column.
        matrix = vectorizer.transform(tokens).tocsr()
        for token, index in zip(tokens, _first_columns(matrix), strict=True):
            if index in wanted:
                names[index] = "word:" + token
    signals = sorted(meta_features(sample))
    if signals:
        matrix = meta_steps.named_steps["hash"].transform([{s: 1.0} for s in signals]).tocsr()
        for signal, index in zip(signals, _first_columns(matrix), strict=True):
            if index + TEXT_FEATURES in wanted:
                names[index + TEXT_FEATURES] = signal
    return names


def _first_columns(matrix: object) -> list[int]:
    indptr = matrix.indptr  # type: ignore[attr-defined]
    indices = matrix.indices  # type: ignore[attr-defined]
    return [
        int(indices[indptr[i]]) if indptr[i + 1] > indptr[i] else -1 for i in range(len(indptr) - 1)
    ]
