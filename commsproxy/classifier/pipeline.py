"""The scikit-learn Pipelines: one object per task, saved whole, features included.

Both tasks share the same two views of a message (features.py): hashed words of subject and
body, tf-idf weighted, and hashed named signals. Hashing keeps memory fixed and needs no
vocabulary, so a model trained on 100,000 messages is as small as one trained on 1,000.

- urgency: a linear model with log loss (SGD), its probabilities calibrated (sigmoid) so the
  urgent threshold chosen at training means what it says on new mail;
- accounts: a linear SVM, the strongest simple text classifier for folders; its margin becomes
  a confidence score by softmax, and a threshold chosen at training decides when to file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from .features import full_text_of, meta_of, text_of

__all__ = [
    "ACCOUNT_TEXT_FEATURES",
    "META_FEATURES",
    "TEXT_FEATURES",
    "Blend",
    "Scored",
    "accounts_pipeline",
    "blend_pipeline",
    "decision_scores",
    "linear_parts",
    "score_batch",
    "urgency_pipeline",
]

TEXT_FEATURES = 1 << 18
# The accounts model keeps a weight per account and column: 2^16 columns of words hold its
# accuracy (Enron foldering, five users, forward in time: 66.3% at 2^16, 66.3% at 2^18) at a
# quarter of the memory (183 folders: 144 MB of weights instead of 432 MB).
ACCOUNT_TEXT_FEATURES = 1 << 16
WORD_PATTERN = r"(?u)\b[^\W\d_][\w'-]+\b"  # words of two or more characters, not numbers
ANY_WORD_PATTERN = r"(?u)\b\w\w+\b"  # numbers too
META_FEATURES = 1 << 15


def _features(
    *,
    text_view: Callable[[Any], list[str]] = text_of,
    text_features: int = TEXT_FEATURES,
    tokens: str = WORD_PATTERN,
    sublinear: bool = True,
    meta_weight: float = 1.0,
) -> FeatureUnion:
    text = Pipeline(
        [
            ("select", FunctionTransformer(text_view)),
            (
                "hash",
                HashingVectorizer(
                    n_features=text_features,
                    alternate_sign=False,
                    norm=None,
                    lowercase=True,
                    token_pattern=tokens,
                    dtype=np.float32,
                ),
            ),
            ("tfidf", TfidfTransformer(sublinear_tf=sublinear)),
        ]
    )
    meta = Pipeline(
        [
            ("select", FunctionTransformer(meta_of)),
            (
                "hash",
                FeatureHasher(
                    n_features=META_FEATURES,
                    input_type="dict",
                    alternate_sign=False,
                    dtype=np.float32,
                ),
            ),
        ]
    )
    return FeatureUnion(
        [("text", text), ("meta", meta)], transformer_weights={"text": 1.0, "meta": meta_weight}
    )


# Below this many examples of a class, a calibration map fitted on held-out folds is nearly
# flat and erases the ranking; the log-loss model's own probabilities are kept instead.
MIN_CALIBRATION_EXAMPLES = 50


def urgency_pipeline(seed: int = 0, *, calibrate: bool = True) -> Pipeline:
    # Measured on the Enron mailboxes (benchmarks/accuracy.py), as the share of other mail held
    # while 95% of urgent mail is delivered: strong regularisation (a few hundred urgent
    # examples do not support sharp weights) and the named signals at half the words' weight
    # hold 53%, against 32% for a lightly regularised model at equal weights.
    model = SGDClassifier(
        loss="log_loss",
        alpha=3e-3,
        class_weight="balanced",  # urgent mail is rare; missing it costs most
        max_iter=1000,
        tol=1e-3,
        random_state=seed,
    )
    features = _features(meta_weight=0.5)
    if not calibrate:
        return Pipeline([("features", features), ("model", model)])
    calibrated = CalibratedClassifierCV(model, method="sigmoid", cv=3, ensemble=False)
    return Pipeline([("features", features), ("model", calibrated)])


def accounts_pipeline(seed: int = 0) -> Pipeline:
    # Measured on the Enron foldering users (benchmarks/accuracy.py): the whole body, numbers
    # as words (deal and invoice numbers name accounts), log term counts, and sender and
    # recipient signals at a fifth of the words' weight. Classes weighted by inverse size: a
    # one-vs-rest SVM otherwise leans to the big folders, and a small account's few messages
    # are the ones a team most needs filed right (+2.9 points on average, every user gains).
    features = _features(
        text_view=full_text_of,
        text_features=ACCOUNT_TEXT_FEATURES,
        tokens=ANY_WORD_PATTERN,
        sublinear=True,
        meta_weight=0.2,
    )
    model = LinearSVC(C=0.5, class_weight="balanced", random_state=seed, max_iter=5000)
    return Pipeline([("features", features), ("model", model)])


class Blend(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fitted urgency pipelines whose probabilities are averaged with fixed weights.

    What ``train`` saves when the bundled model still knows what the user's own mail cannot
    teach: the user's model and the bundled one, weighted as measured on the user's newest
    mail. A user's mailbox rarely holds spam, so p(bulk) comes from ``bulk_from`` (the bundled
    part) alone, and the rest of the probability is shared out as the weighted average shares
    it. Both parts are whole Pipelines over the same features, so their explanations add up.
    """

    def __init__(self, parts: list[tuple[str, Pipeline, float]], bulk_from: str | None = None):
        self.parts = parts
        self.bulk_from = bulk_from

    def fit(self, samples: Any, labels: Any = None) -> Blend:
        """The parts are fitted already; this only checks they agree on the classes."""
        classes = [list(pipeline.classes_) for _, pipeline, _ in self.parts]
        if any(c != classes[0] for c in classes):
            raise ValueError(f"blended models disagree on their classes: {classes}")
        if self.bulk_from is not None and self.bulk_from not in [n for n, _, _ in self.parts]:
            raise ValueError(f"no part named {self.bulk_from!r} to take p(bulk) from")
        self.classes_ = np.asarray(classes[0])
        return self

    def predict_proba(self, samples: Any) -> np.ndarray:
        return self.combine(
            {name: np.asarray(pipeline.predict_proba(samples)) for name, pipeline, _ in self.parts}
        )

    def combine(self, each: dict[str, np.ndarray]) -> np.ndarray:
        """The blended probabilities from each part's own (part name -> probabilities)."""
        total = sum(weight for _, _, weight in self.parts)
        proba = sum(weight * each[name] for name, _, weight in self.parts) / total
        bulk = list(self.classes_).index("bulk") if "bulk" in self.classes_ else None
        if self.bulk_from is None or bulk is None:
            return np.asarray(proba)
        p_bulk = each[self.bulk_from][:, bulk]
        rest = np.delete(proba, bulk, axis=1)
        rest *= ((1.0 - p_bulk) / np.maximum(rest.sum(axis=1), 1e-12))[:, None]
        return np.insert(rest, bulk, p_bulk, axis=1)

    def predict(self, samples: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(samples).argmax(axis=1)])


def blend_pipeline(
    parts: list[tuple[str, Pipeline, float]], bulk_from: str | None = None
) -> Pipeline:
    """A Pipeline around a :class:`Blend`, so it is saved and scored like any other model."""
    return Pipeline([("model", Blend(parts, bulk_from).fit(None))])


@dataclass
class Scored:
    """A batch's per-class confidences, with the feature rows each linear part scored.

    ``rows`` holds (part, its weight in the blend, the sum of the weights, its feature rows):
    one entry for a plain pipeline, one per part for a blend. Explanations read them instead
    of turning every message into features a second time.
    """

    scores: np.ndarray
    classes: list[str]
    rows: list[tuple[Pipeline, float, float, Any]]


def score_batch(pipeline: Pipeline, samples: Any) -> Scored:
    """What ``decision_scores`` gives, and the feature rows behind it (see :class:`Scored`)."""
    model = pipeline.named_steps["model"]
    classes = [str(c) for c in model.classes_]
    if isinstance(model, Blend):
        total = sum(weight for _, _, weight in model.parts)
        each: dict[str, np.ndarray] = {}
        rows: list[tuple[Pipeline, float, float, Any]] = []
        for name, part, weight in model.parts:
            scored = score_batch(part, samples)
            each[name] = scored.scores
            rows += [(p, w * weight, t * total, x) for p, w, t, x in scored.rows]
        return Scored(model.combine(each), classes, rows)
    features = samples
    for _, step in pipeline.steps[:-1]:  # as Pipeline.predict_proba does
        features = step.transform(features)
    if hasattr(model, "predict_proba"):
        return Scored(
            np.asarray(model.predict_proba(features)), classes, [(pipeline, 1.0, 1.0, features)]
        )
    margins = np.asarray(model.decision_function(features), dtype=np.float64)
    return Scored(_softmax(margins), classes, [(pipeline, 1.0, 1.0, features)])


def decision_scores(pipeline: Pipeline, samples: Any) -> tuple[np.ndarray, list[str]]:
    """Per-class confidences in [0, 1] (rows sum to 1) and the class names, for either task."""
    model = pipeline.named_steps["model"]
    classes = [str(c) for c in model.classes_]
    if hasattr(model, "predict_proba"):
        return np.asarray(pipeline.predict_proba(samples)), classes
    margins = np.asarray(pipeline.decision_function(samples), dtype=np.float64)
    return _softmax(margins), classes


def _softmax(margins: np.ndarray) -> np.ndarray:
    if margins.ndim == 1:  # two classes: one margin for the second
        margins = np.column_stack([-margins, margins])
    # Softmax over SVM margins: a monotone confidence, sharpened so a clear margin reads as
    # near-certain; the acceptance threshold is chosen on validation data anyway.
    scaled = margins * 4.0
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def linear_parts(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fitted linear model's weights (classes by features), intercepts and class names."""
    model = pipeline.named_steps["model"]
    if isinstance(model, CalibratedClassifierCV):
        model = model.calibrated_classifiers_[0].estimator
    coef = np.asarray(model.coef_)
    classes = [str(c) for c in model.classes_]
    if coef.shape[0] == 1 and len(classes) == 2:
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-model.intercept_[0], model.intercept_[0]])
    else:
        intercept = np.asarray(model.intercept_)
    return coef, intercept, classes
