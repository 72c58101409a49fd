"""Classifying messages with the trained models, and saying why in words.

A verdict carries the urgency label (policy.py: the model's scores, the message's own cues,
bulk evidence), p(urgent) with the cut it was held to, the customer account when the accounts
model is confident enough, and on request the reasons (wording.py). Explanations come straight
from the linear model: each feature's weight towards urgent, against the other labels, times
its value in this message; a blend adds up its parts' by their weights. They are computed for
a whole batch at once from the feature rows it was scored with, so asking for them costs a
fraction of the scoring.

A model is a fitted scikit-learn Pipeline (classify, train, explain) or its scoring form
(scoring_form.py: the same scores with numpy alone, what ``run`` loads); both give the same
verdicts and reasons here, and scikit-learn is imported only for a Pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from .cues import urgency_cues
from .features import Sample, meta_features
from .policy import URGENT, Thresholds, judge
from .scoring_form import LeanScored, LinearPart, ScoringForm
from .wording import Reasons, score_words

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from .pipeline import Scored

    #: A fitted Pipeline, or its scoring form.
    Model: TypeAlias = Pipeline | ScoringForm
    #: One scored part: a Pipeline, or a part of a scoring form.
    Part: TypeAlias = Pipeline | LinearPart
    AnyScored: TypeAlias = Scored | LeanScored

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
    pipeline: Model
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
        # Per fitted pipeline: its weights towards urgent (computed once, not per message).
        self._towards: dict[int, np.ndarray] = {}

    def classify(
        self, samples: Sequence[Sample], *, explain: bool = False, reasons_kept: int | None = None
    ) -> list[Verdict]:
        """Verdicts for ``samples``; with ``explain``, each with its reasons in words.

        ``reasons_kept``: only that many leading reasons are wanted (what a decision keeps),
        so the words of a message are read only where its named signals leave room for them.
        """
        verdicts, explain_them = self.classify_then_explain(
            samples, explain=explain, reasons_kept=reasons_kept
        )
        explain_them()
        return verdicts

    def classify_then_explain(
        self, samples: Sequence[Sample], *, explain: bool = True, reasons_kept: int | None = None
    ) -> tuple[list[Verdict], Callable[[], None]]:
        """As ``classify``, with the reasons left for later: the verdicts (their ``reasons``
        None for now) and a call that fills in every verdict's reasons, exactly as
        ``classify`` would have. Triage decides a batch and words its reasons while the
        server holds the mail; the call touches nothing but these verdicts."""
        verdicts = [Verdict() for _ in samples]
        if not samples:
            return verdicts, _nothing
        batch = list(samples)
        # Each message's named signals, worked out once for scoring (a scoring form) and
        # explaining; a Pipeline works out its own.
        models = [m.pipeline for m in (self.urgency, self.accounts) if m is not None]
        lean = any(isinstance(m, ScoringForm) for m in models)
        signals = [meta_features(s) for s in batch] if explain or lean else None
        rules: list[str] = [""] * len(samples)
        urgency: AnyScored | None = None
        accounts: AnyScored | None = None
        if self.urgency is not None:
            urgency = _score(self.urgency.pipeline, batch, signals)
            classes = urgency.classes
            # One conversion of the whole array: its rows as Python floats, the same values.
            rows = np.asarray(urgency.scores, dtype=np.float64).tolist()
            for i, (sample, verdict) in enumerate(zip(samples, verdicts, strict=True)):
                p = dict(zip(classes, rows[i][: len(classes)], strict=True))
                judged = judge(sample, p, self.urgency.thresholds)
                verdict.label = judged.label
                verdict.threshold = judged.threshold
                verdict.p_urgent = round(p[URGENT], 4) if URGENT in p else None
                rules[i] = judged.rule
        if self.accounts is not None:
            accounts = _score(self.accounts.pipeline, batch, signals)
            scores, names = accounts.scores, accounts.classes
            best = scores.argmax(axis=1)
            threshold = self.accounts.threshold if self.accounts.threshold is not None else 0.0
            for i, verdict in enumerate(verdicts):
                score = float(scores[i, best[i]])
                verdict.account_score = round(score, 4)
                verdict.account = names[best[i]] if score >= threshold else None
        if not explain:
            return verdicts, _nothing

        def explain_them() -> None:
            assert signals is not None
            self._explain(batch, signals, verdicts, rules, urgency, accounts, reasons_kept)

        return verdicts, explain_them

    def _explain(
        self,
        samples: list[Sample],
        signals: list[dict[str, float]],
        verdicts: list[Verdict],
        rules: list[str],
        urgency: AnyScored | None,
        accounts: AnyScored | None,
        kept: int | None,
    ) -> None:
        """Every verdict's reasons, from the feature rows the batch was scored with.

        The whole batch at once: each feature's push is its value times its weight, over
        all rows in one array operation, and the columns are named from the batch's words
        and signals hashed together; only the phrasing is done message by message. With
        ``kept``, words are named only for the messages whose first ``kept`` reasons reach
        them (the rule and the signals come first); the second look at those messages names
        their rows alone.
        """
        everyone = range(len(samples))
        pushes = self._pushes(samples, signals, urgency, words=None if kept is None else [])
        reasons = [self._reasons_of(i, samples, verdicts, rules, pushes, urgency) for i in everyone]
        if kept is not None:
            wordy = [i for i in everyone if reasons[i].before_words() < kept]
            if wordy:
                again = self._pushes(samples, signals, urgency, words=wordy, only=wordy)
                for i in wordy:
                    pushes[i] = again[i]
                    reasons[i] = self._reasons_of(i, samples, verdicts, rules, pushes, urgency)
        words: list[list[str]] = [[] for _ in samples]
        if accounts is not None and self.accounts is not None:
            words = _account_words(self.accounts.pipeline, samples, verdicts, accounts, signals)
        for i, verdict in enumerate(verdicts):
            out = reasons[i].phrases()
            if verdict.account is not None and words[i]:
                out.append(f"account {verdict.account}: words " + ", ".join(words[i]))
            verdict.reasons = out if kept is None else out[:kept]

    def _reasons_of(
        self,
        i: int,
        samples: list[Sample],
        verdicts: list[Verdict],
        rules: list[str],
        pushes: list[dict[str, float]],
        urgency: AnyScored | None,
    ) -> Reasons:
        sample, verdict = samples[i], verdicts[i]
        reasons = Reasons(sample, verdict.label or "normal")
        if rules[i]:
            reasons.rule(rules[i])
        elif verdict.label == URGENT and (cues := urgency_cues(sample.mail)):
            # What the message says of itself leads, even where the score alone decided.
            reasons.rule("; ".join(cues.values()))
        if urgency is not None and verdict.label is not None:
            reasons.add_contributions(pushes[i])
        return reasons

    def _pushes(
        self,
        samples: list[Sample],
        signals: list[dict[str, float]],
        urgency: AnyScored | None,
        words: list[int] | None,
        only: list[int] | None = None,
    ) -> list[dict[str, float]]:
        """Per message, each named feature -> its push towards urgent (see _named_rows);
        with ``only``, the other messages' are left empty."""
        pushes: list[dict[str, float]] = [{} for _ in samples]
        if urgency is None:
            return pushes
        for pipeline, weight, total, rows in urgency.rows:
            towards = self._towards_urgent(pipeline)
            if towards is None:
                continue
            named = _named_rows(
                pipeline, samples, rows, towards[None, :], None, words, signals, only
            )
            if len(urgency.rows) == 1 and weight == total == 1.0:
                return named  # one part, weighed 1: each push is its value as it is
            for push, part in zip(pushes, named, strict=True):
                for name, value in part.items():
                    push[name] = push.get(name, 0.0) + value * weight / total
        return pushes

    def _towards_urgent(self, pipeline: Part) -> np.ndarray | None:
        key = id(pipeline)
        if key not in self._towards:
            coef, _, classes = _linear_parts(pipeline)
            if URGENT not in classes:
                return None
            urgent = classes.index(URGENT)
            others = [i for i in range(len(classes)) if i != urgent]
            # Towards urgent and away from the likelier of the rest, on average over them.
            self._towards[key] = coef[urgent] - coef[others].mean(axis=0)
        return self._towards[key]


def _nothing() -> None:
    """Nothing left to explain."""


def _account_words(
    pipeline: Model,
    samples: list[Sample],
    verdicts: list[Verdict],
    scored: AnyScored,
    signals: Sequence[Mapping[str, float]] | None = None,
) -> list[list[str]]:
    """Per verdict with an account: the words that pushed hardest towards that account."""
    [(part, _, _, rows)] = scored.rows
    coef, _, classes = _linear_parts(part)
    row_class = np.array(
        [classes.index(v.account) if v.account in classes else -1 for v in verdicts]
    )
    if not (row_class >= 0).any():
        return [[] for _ in samples]
    named = _named_rows(part, samples, rows, coef, row_class, None, signals)
    out: list[list[str]] = []
    for i, names in enumerate(named):
        if row_class[i] < 0:
            out.append([])
            continue
        ranked = sorted((v, k) for k, v in names.items() if v > 0 and k.startswith("word:"))
        out.append([k[5:] for _, k in reversed(ranked)][:4])
    return out


def account_words(pipeline: Model, sample: Sample, account: str) -> list[str]:
    """The words that pushed hardest towards ``account`` in this message."""
    verdict = Verdict(account=account)
    return _account_words(pipeline, [sample], [verdict], _score(pipeline, [sample]))[0]


def _named_rows(
    pipeline: Part,
    samples: Sequence[Sample],
    rows: Any,
    weights: np.ndarray,
    row_class: np.ndarray | None,
    words: Sequence[int] | None = None,
    signals: Sequence[Mapping[str, float]] | None = None,
    only: Sequence[int] | None = None,
) -> list[dict[str, float]]:
    """Per message, each active feature by name ("word:x" or the signal) -> weight x value.

    ``weights`` is classes by features; row i uses ``weights[row_class[i]]`` (row 0 when
    ``row_class`` is None); a row whose class is negative is left empty. ``words``: the
    messages whose words are named too (None: all); the others get their signals only.
    ``signals``: each message's named signals (features.meta_features), if known already.
    ``only``: the messages to name at all (None: all); the others are left empty.
    """
    matrix = rows.tocsr()
    counts = np.diff(matrix.indptr)
    owner = np.repeat(np.arange(len(samples)), counts)
    which = np.zeros_like(owner) if row_class is None else row_class[owner]
    contribution = matrix.data * weights[np.maximum(which, 0), matrix.indices]
    # Only the entries that can be named and push at all: a row's signals, and its words
    # where they are wanted.
    keep = contribution != 0
    if words is not None:
        worded = np.zeros(len(samples), dtype=bool)
        worded[list(words)] = True
        keep &= (matrix.indices >= _text_width(pipeline)) | worded[owner]
    if row_class is not None:
        keep &= which >= 0
    if only is not None:
        wanted = np.zeros(len(samples), dtype=bool)
        wanted[list(only)] = True
        keep &= wanted[owner]
    kept = np.flatnonzero(keep)
    starts = np.searchsorted(kept, matrix.indptr)
    columns_kept = matrix.indices[kept].tolist()
    values_kept = contribution[kept].tolist()
    names = _ColumnNames(_naming(pipeline), samples, words, signals, only)
    out: list[dict[str, float]] = []
    for i in range(len(samples)):
        named: dict[str, float] = {}
        out.append(named)
        lo, hi = starts[i], starts[i + 1]
        if lo == hi:
            continue
        values = dict(zip(columns_kept[lo:hi], values_kept[lo:hi], strict=True))
        columns = names.of(i, values)
        for index, value in values.items():
            if index in columns:
                named[columns[index]] = named.get(columns[index], 0.0) + value
    return out


class _ColumnNames:
    """Column index -> "word:token" or the signal name, for each message of a batch.

    A hashed column has no name of its own: it is named by the message's own words and
    signals that hash to it. The batch's distinct words and signals are hashed in one call.
    """

    def __init__(
        self,
        naming: _Naming,
        samples: Sequence[Sample],
        words: Sequence[int] | None = None,
        signals: Sequence[Mapping[str, float]] | None = None,
        only: Sequence[int] | None = None,
    ) -> None:
        self.text_width = naming.text_width  # the signals' columns follow the words'
        self.tokens: list[list[str]] = [[] for _ in samples]
        wanted = range(len(samples)) if words is None else words
        texts = naming.texts([samples[i] for i in wanted])
        for i, text in zip(wanted, texts, strict=True):
            self.tokens[i] = sorted(set(naming.analyze(text)))
        if signals is None:
            signals = [meta_features(sample) for sample in samples]
        self.signals: list[list[str]] = [[] for _ in samples]
        for i in range(len(samples)) if only is None else only:
            self.signals[i] = sorted(signals[i])
        every_token = sorted({t for tokens in self.tokens for t in tokens})
        every_signal = sorted({s for signals in self.signals for s in signals})
        self.token_column: dict[str, int] = {}
        self.signal_column: dict[str, int] = {}
        if every_token:
            found = naming.token_columns(every_token)
            self.token_column = dict(zip(every_token, found, strict=True))
        if every_signal:
            found = naming.signal_columns(every_signal)
            self.signal_column = dict(zip(every_signal, found, strict=True))

    def of(self, i: int, wanted: Mapping[int, float]) -> dict[int, str]:
        names: dict[int, str] = {}
        for token in self.tokens[i]:  # sorted: of two words in one column, the later names it
            index = self.token_column[token]
            if index in wanted:
                names[index] = "word:" + token
        for signal in self.signals[i]:
            index = self.signal_column[signal] + self.text_width
            if index in wanted:
                names[index] = signal
        return names


class _Naming(Protocol):
    """What naming a part's columns needs: its views, its analyzer and its two hashers."""

    @property
    def text_width(self) -> int: ...
    def texts(self, samples: Sequence[Sample]) -> list[str]: ...
    def analyze(self, text: str) -> list[str]: ...
    def token_columns(self, tokens: Sequence[str]) -> list[int]: ...
    def signal_columns(self, signals: Sequence[str]) -> list[int]: ...


class _PipelineNaming:
    """A fitted Pipeline's columns, named with its own vectorizer and hashers."""

    def __init__(self, pipeline: Pipeline) -> None:
        features = pipeline.named_steps["features"]
        self._text = features.transformer_list[0][1]
        self._meta = features.transformer_list[1][1]
        self._vectorizer = self._text.named_steps["hash"]
        self._analyzer = self._vectorizer.build_analyzer()
        self.text_width = int(self._vectorizer.n_features)

    def analyze(self, text: str) -> list[str]:
        return list(self._analyzer(text))

    def texts(self, samples: Sequence[Sample]) -> list[str]:
        return list(self._text.named_steps["select"].func(samples))

    def token_columns(self, tokens: Sequence[str]) -> list[int]:
        from sklearn.feature_extraction import FeatureHasher

        vectorizer = self._vectorizer
        # The vectorizer's own hasher, one token per row: each row has its single column.
        hasher = FeatureHasher(
            n_features=vectorizer.n_features,
            input_type="string",
            dtype=vectorizer.dtype,
            alternate_sign=vectorizer.alternate_sign,
        )
        return _first_columns(hasher.transform([[token] for token in tokens]).tocsr())

    def signal_columns(self, signals: Sequence[str]) -> list[int]:
        hasher = self._meta.named_steps["hash"]
        return _first_columns(hasher.transform([{s: 1.0} for s in signals]).tocsr())


def _naming(part: Part) -> _Naming:
    return part if isinstance(part, LinearPart) else _PipelineNaming(part)


def _score(
    model: Model, samples: list[Sample], signals: Sequence[Mapping[str, float]] | None = None
) -> AnyScored:
    """The batch's scores and feature rows, from a Pipeline or its scoring form."""
    if isinstance(model, ScoringForm):
        return model.score(samples, signals)
    from .pipeline import score_batch

    return score_batch(model, samples)


def _linear_parts(part: Part) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if isinstance(part, LinearPart):
        return part.linear()
    from .pipeline import linear_parts

    return linear_parts(part)


def _text_width(pipeline: Part) -> int:
    """Columns of the hashed words; the named signals' columns come after them."""
    if isinstance(pipeline, LinearPart):
        return pipeline.text_width
    features = pipeline.named_steps["features"]
    return int(features.transformer_list[0][1].named_steps["hash"].n_features)


def _first_columns(matrix: Any) -> list[int]:
    indptr = matrix.indptr
    indices = matrix.indices
    return [
        int(indices[indptr[i]]) if indptr[i + 1] > indptr[i] else -1 for i in range(len(indptr) - 1)
    ]
