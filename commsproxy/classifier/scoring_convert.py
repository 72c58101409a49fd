"""A fitted Pipeline's scoring form (scoring_form.py), made at save time and checked there.

Only the shapes commsproxy trains are turned into a form (see scoring_form.py); anything else
raises FormError with what is not covered, and the model is then scored with scikit-learn as
before. ``agreement`` scores messages both ways: a form is saved only when it gives the same
scores as the model itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from .features import Sample, meta_of
from .pipeline import Blend, score_batch
from .scoring_form import TEXT_VIEWS, FormError, LinearPart, ScoringForm, Signals, Words

__all__ = ["CHECKED_ON", "SAME_SCORE", "agreement", "scoring_bytes", "scoring_form_of"]

log = logging.getLogger(__name__)

#: Largest difference in any score between the form and the model that counts as the same.
SAME_SCORE = 1e-9
#: Messages a form is checked on before it is saved (the first of the training messages).
CHECKED_ON = 500


def scoring_bytes(pipeline: Any, task: str, samples: Sequence[Sample]) -> bytes | None:
    """The form of ``pipeline`` to save beside it, once it scores ``samples`` (the first
    ``CHECKED_ON``) as the model does; None, and why in the log, when it has none."""
    try:
        form = scoring_form_of(pipeline, task)
        data = form.dumps()
        difference = agreement(pipeline, ScoringForm.loads(data), samples[:CHECKED_ON])
    except FormError as err:
        log.info("no scoring form for this model (%s): run scores it with scikit-learn", err)
        return None
    if not difference <= SAME_SCORE:
        log.warning(
            "no scoring form for this model: it scores %d messages up to %.3g apart from the "
            "model; run scores it with scikit-learn",
            min(len(samples), CHECKED_ON),
            difference,
        )
        return None
    return data


def scoring_form_of(pipeline: Any, task: str) -> ScoringForm:
    """The form of a fitted commsproxy Pipeline (or a blend of them); FormError if none."""
    if not isinstance(pipeline, Pipeline):
        raise FormError(f"a {type(pipeline).__name__}, not a Pipeline")
    model = pipeline.steps[-1][1]
    if isinstance(model, Blend):
        parts = [(str(n), _part(p), float(w)) for n, p, w in model.parts]
        classes = [str(c) for c in model.classes_]
        bulk_from = None if model.bulk_from is None else str(model.bulk_from)
        return ScoringForm(task, classes, parts, bulk_from, blend=True)
    part = _part(pipeline)
    return ScoringForm(task, list(part.classes), [("model", part, 1.0)], None, blend=False)


def agreement(pipeline: Any, form: ScoringForm, samples: Sequence[Sample]) -> float:
    """The largest difference between the model's and the form's scores on ``samples``."""
    if not samples:
        return 0.0
    theirs = score_batch(pipeline, list(samples))
    ours = form.score(samples)
    if theirs.classes != ours.classes or theirs.scores.shape != ours.scores.shape:
        return float("inf")
    return float(np.max(np.abs(np.asarray(theirs.scores) - ours.scores)))


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise FormError(what)


def _part(pipeline: Any) -> LinearPart:
    _need(isinstance(pipeline, Pipeline), "a blend's part is not a Pipeline")
    _need(
        [n for n, _ in pipeline.steps] == ["features", "model"], "steps other than features, model"
    )
    words, signals, text_weight, meta_weight = _features(pipeline.named_steps["features"])
    model = pipeline.named_steps["model"]
    classes = [str(c) for c in model.classes_]
    if isinstance(model, CalibratedClassifierCV):
        _need(len(model.calibrated_classifiers_) == 1, "an ensemble of calibrated classifiers")
        calibrated = model.calibrated_classifiers_[0]
        _need(calibrated.method == "sigmoid", f"{calibrated.method} calibration")
        estimator = calibrated.estimator
        _linear_estimator(estimator)
        own = [str(c) for c in calibrated.classes]
        _need(own == classes, "calibrated classes differ from the model's")
        _need(own == sorted(own), "unsorted classes")
        positions = [own.index(str(c)) for c in estimator.classes_]
        if len(own) == 2:
            positions = [p + 1 for p in positions]  # one margin, for the second class
        calibrators = []
        for column, calibrator in zip(positions, calibrated.calibrators, strict=True):
            _need(type(calibrator) is _SigmoidCalibration, "a calibrator other than a sigmoid")
            calibrators.append((column, float(calibrator.a_), float(calibrator.b_)))
        _need(len(calibrators) == estimator.coef_.shape[0], "a calibrator per margin")
        kind = "sigmoid"
    elif isinstance(model, LinearSVC):
        estimator, calibrators, kind = model, [], "softmax"
        _linear_estimator(estimator)
    else:
        raise FormError(f"a {type(model).__name__} model (scored with scikit-learn)")
    coef = np.ascontiguousarray(np.asarray(estimator.coef_).T).T  # as ScoringForm.loads keeps it
    _need(coef.shape[1] == words.n_features + signals.n_features, "weights and features differ")
    return LinearPart(
        words=words,
        signals=signals,
        text_weight=text_weight,
        meta_weight=meta_weight,
        coef=coef,
        intercept=np.ascontiguousarray(np.atleast_1d(estimator.intercept_)),
        estimator_classes=[str(c) for c in estimator.classes_],
        classes=classes,
        kind=kind,
        calibrators=calibrators,
    )


def _linear_estimator(estimator: Any) -> None:
    _need(isinstance(estimator, SGDClassifier | LinearSVC), f"a {type(estimator).__name__}")
    _need(np.asarray(estimator.coef_).dtype in (np.float32, np.float64), "weights of another dtype")


def _features(union: Any) -> tuple[Words, Signals, float, float]:
    _need(isinstance(union, FeatureUnion), "features other than a FeatureUnion")
    _need([n for n, _ in union.transformer_list] == ["text", "meta"], "other feature parts")
    weights = union.transformer_weights or {}
    text, meta = (step for _, step in union.transformer_list)
    _need([n for n, _ in text.steps] == ["select", "hash", "tfidf"], "other word steps")
    _need([n for n, _ in meta.steps] == ["select", "hash"], "other signal steps")
    select, hasher, tfidf = (step for _, step in text.steps)
    view = _view(select)
    _need(view in TEXT_VIEWS, f"words from {view}")
    _need(isinstance(hasher, HashingVectorizer), "words not hashed by a HashingVectorizer")
    _need(isinstance(tfidf, TfidfTransformer), "words not weighted by a TfidfTransformer")
    h = hasher.get_params()
    _need(
        h["analyzer"] == "word"
        and h["ngram_range"] == (1, 1)
        and h["stop_words"] is None
        and h["strip_accents"] is None
        and h["preprocessor"] is None
        and h["tokenizer"] is None
        and h["input"] == "content"
        and not h["binary"]
        and h["norm"] is None
        and np.dtype(h["dtype"]) == np.float32,
        "word hashing settings other than commsproxy's",
    )
    _need(tfidf.norm in ("l2", None), f"tf-idf norm {tfidf.norm}")
    idf = np.ascontiguousarray(tfidf.idf_) if tfidf.use_idf else None
    words = Words(
        view=view,
        pattern=str(h["token_pattern"]),
        n_features=int(h["n_features"]),
        lowercase=bool(h["lowercase"]),
        alternate_sign=bool(h["alternate_sign"]),
        sublinear=bool(tfidf.sublinear_tf),
        norm=tfidf.norm,
        idf=idf,
    )
    _need(words.idf is None or words.idf.dtype == np.float32, "idf not float32")
    select_meta, meta_hasher = (step for _, step in meta.steps)
    _need(_view(select_meta) == "meta_of", "signals from another view")
    _need(isinstance(meta_hasher, FeatureHasher), "signals not hashed by a FeatureHasher")
    _need(meta_hasher.input_type == "dict", "signals not given as a dict")
    _need(np.dtype(meta_hasher.dtype) == np.float32, "signals not float32")
    signals = Signals(int(meta_hasher.n_features), bool(meta_hasher.alternate_sign))
    return words, signals, float(weights.get("text", 1.0)), float(weights.get("meta", 1.0))


def _view(select: Any) -> str:
    _need(isinstance(select, FunctionTransformer), "a view other than a FunctionTransformer")
    func = select.func
    name = getattr(func, "__name__", "")
    known = {**TEXT_VIEWS, "meta_of": meta_of}
    _need(known.get(name) is func, f"the view {name or func!r}")
    _need(select.kw_args is None and select.validate is False, "a view with arguments")
    return str(name)
