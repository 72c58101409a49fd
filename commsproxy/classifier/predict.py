"""Classifying messages with the trained models, and saying why in words.

A verdict carries the urgency label and p(urgent) (with the threshold chosen at training), the
customer account when the accounts model is confident enough, and on request the reasons: the
user's history with the sender, the named signals that pushed towards the verdict, and the
words that did. Explanations come straight from the linear model: each feature's weight for the
chosen class times its value in this message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sklearn.pipeline import Pipeline

from .features import Sample, SenderHistory, meta_features
from .pipeline import TEXT_FEATURES, decision_scores, linear_parts
from .train import URGENT, apply_threshold

__all__ = ["Classifier", "Verdict"]

TOP_REASONS = 4


@dataclass
class Verdict:
    label: str | None = None
    p_urgent: float | None = None
    account: str | None = None
    account_score: float | None = None
    reasons: list[str] | None = None


@dataclass
class LoadedModel:
    pipeline: Pipeline
    threshold: float | None


class Classifier:
    """Applies the urgency and/or accounts model to samples."""

    def __init__(self, urgency: LoadedModel | None = None, accounts: LoadedModel | None = None):
        self.urgency = urgency
        self.accounts = accounts

    def classify(self, samples: Sequence[Sample], *, explain: bool = False) -> list[Verdict]:
        verdicts = [Verdict(reasons=[] if explain else None) for _ in samples]
        if not samples:
            return verdicts
        if self.urgency is not None:
            proba, classes = decision_scores(self.urgency.pipeline, list(samples))
            labels = apply_threshold(proba, classes, self.urgency.threshold)
            urgent = classes.index(URGENT) if URGENT in classes else None
            for i, verdict in enumerate(verdicts):
                verdict.label = labels[i]
                verdict.p_urgent = None if urgent is None else round(float(proba[i, urgent]), 4)
        if self.accounts is not None:
            scores, names = decision_scores(self.accounts.pipeline, list(samples))
            best = scores.argmax(axis=1)
            threshold = self.accounts.threshold if self.accounts.threshold is not None else 0.0
            for i, verdict in enumerate(verdicts):
                score = float(scores[i, best[i]])
                verdict.account_score = round(score, 4)
                verdict.account = names[best[i]] if score >= threshold else None
        if explain:
            for sample, verdict in zip(samples, verdicts, strict=True):
                verdict.reasons = self._reasons(sample, verdict)
        return verdicts

    def _reasons(self, sample: Sample, verdict: Verdict) -> list[str]:
        reasons = _history_reasons(sample)
        if self.urgency is not None and verdict.label is not None:
            reasons += _model_reasons(self.urgency.pipeline, sample, verdict.label)
        if self.accounts is not None and verdict.account is not None:
            words = _model_reasons(self.accounts.pipeline, sample, verdict.account, words_only=True)
            reasons += [f"account {verdict.account}: {w}" for w in words]
        return reasons


def _history_reasons(sample: Sample) -> list[str]:
    out = []
    context = sample.context
    for who, history in (("this sender", context.sender), ("this domain", context.domain)):
        phrase = _history_phrase(who, history)
        if phrase:
            out.append(phrase)
            break  # the sender's own history says more than the domain's
    if context.replies_to_user:
        out.append("a reply to a message you sent")
    return out


def _history_phrase(who: str, history: SenderHistory | None) -> str | None:
    if history is None or history.received == 0:
        return None
    if history.replied == 0:
        return f"you never replied to {who} ({history.received} messages before)"
    phrase = f"you replied to {who} {history.replied} times"
    if history.median_reply_minutes is not None:
        phrase += f", median {_duration(history.median_reply_minutes)}"
    return phrase


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes / 1440:.0f} days"


def _model_reasons(
    pipeline: Pipeline, sample: Sample, label: str, *, words_only: bool = False
) -> list[str]:
    """The features that pushed hardest towards ``label`` in this message, in words."""
    coef, _, classes = linear_parts(pipeline)
    if label not in classes:
        return []
    weights = coef[classes.index(label)]
    features = pipeline.named_steps["features"]
    row = features.transform([sample]).tocsr()
    contribution = row.data * weights[row.indices]
    positive = {int(i): float(c) for i, c in zip(row.indices, contribution, strict=True) if c > 0}
    if not positive:
        return []
    names = _feature_names(features, sample, set(positive))
    ranked = sorted(positive, key=positive.__getitem__, reverse=True)
    words = [names[i] for i in ranked if i < TEXT_FEATURES and i in names][:TOP_REASONS]
    signals = [names[i] for i in ranked if i >= TEXT_FEATURES and i in names]
    out = [] if words_only else [_signal_phrase(s) for s in signals[:TOP_REASONS]]
    if words:
        out.append("words: " + ", ".join(words))
    return out


def _feature_names(features: object, sample: Sample, wanted: set[int]) -> dict[int, str]:
    """Column index → the word or signal name, for the columns of this message we need."""
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
                names[index] = token
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


def _signal_phrase(signal: str) -> str:
    """Meta feature names are already words; binned ones get their bin spelled out."""
    name, _, value = signal.partition("~")
    if not value:
        return signal.replace("=", ": ", 1)
    return f"{name} (level {value})"
