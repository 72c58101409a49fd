"""A model's scoring form: the fitted numbers alone, scored with numpy, no scikit-learn.

``run`` decides every new message with the urgency model, and importing scikit-learn (with
the scipy modules it pulls in) and skops to do so took three times the memory of the whole
proxy. Scoring a fitted linear model needs none of it: the hashed words (murmur.py), tf-idf,
the hashed signals, one product with the weights, the sigmoid calibration or the softmax of
the margins. This module does exactly that, with the same float32 and float64 steps in the
same order as scikit-learn does them, so the scores agree to the last few bits (the tests
compare them on thousands of real messages) and the labels and reasons are the same.

The form is saved beside the model (models/scoring_file.py) as one ``.npz`` of plain arrays
(loaded with ``allow_pickle=False``) holding a JSON description (settings, classes,
calibration) and the arrays (weights, idf), checksummed in the model's sidecar: loading it
cannot run code. scoring_convert.py makes it from a fitted Pipeline and checks it agrees.

What it covers is what commsproxy trains: the features of pipeline.py (words through a
HashingVectorizer and a TfidfTransformer, signals through a FeatureHasher, weighted), a
linear model calibrated by sigmoid (urgency), a linear SVM's margins (accounts), and a blend
of such parts. Anything else stays with scikit-learn.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from .features import Sample, full_text_of, meta_of, text_of
from .murmur import columns

__all__ = [
    "FORM_VERSION",
    "TEXT_VIEWS",
    "FormError",
    "LeanScored",
    "LinearPart",
    "Rows",
    "ScoringForm",
]

#: Version of the layout of a scoring form's description.
FORM_VERSION = 1
#: The views a form may name for its words (features.py), by name.
TEXT_VIEWS: dict[str, Callable[[Iterable[Sample]], list[str]]] = {
    "text_of": text_of,
    "full_text_of": full_text_of,
}
_SPEC = "spec"  # the npz member holding the JSON description, as UTF-8 bytes
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class FormError(ValueError):
    """A scoring form that is malformed, or a model it cannot describe (says which and why)."""


@dataclass(frozen=True, eq=False)
class Rows:
    """A batch's feature rows in compressed sparse rows (what predict.py's explanations read)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def tocsr(self) -> Rows:
        return self


@dataclass
class LeanScored:
    """As pipeline.Scored: per-class scores, class names, and (part, weight, total, rows)."""

    scores: np.ndarray
    classes: list[str]
    rows: list[tuple[LinearPart, float, float, Rows]]


# The token patterns models are trained with (pipeline.WORD_PATTERN, ANY_WORD_PATTERN), each
# with its twin for ASCII text: on ASCII, Unicode's word characters are [a-zA-Z0-9_] and its
# digits [0-9], so the twin finds the same tokens, without a Unicode table look-up per
# character: 12 -> 7 us on a short note. Most mail is ASCII; the rest is read as trained.
ASCII_TWINS = {
    r"(?u)\b[^\W\d_][\w'-]+\b": r"(?a)\b[a-zA-Z][\w'-]+\b",
    r"(?u)\b\w\w+\b": r"(?a)\b\w\w+\b",
}


@dataclass(frozen=True, eq=False)
class Words:
    view: str  # a TEXT_VIEWS name
    pattern: str
    n_features: int
    lowercase: bool
    alternate_sign: bool
    sublinear: bool
    norm: str | None  # "l2" or None
    idf: np.ndarray | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))
        twin = ASCII_TWINS.get(self.pattern)
        object.__setattr__(self, "_ascii", re.compile(twin) if twin is not None else None)

    def analyze(self, text: str) -> list[str]:
        """The tokens of ``text``, as the HashingVectorizer's analyzer gives them."""
        if self.lowercase:
            text = text.lower()
        ascii_regex: re.Pattern[str] | None = self._ascii  # type: ignore[attr-defined]
        if ascii_regex is not None and text.isascii():
            return ascii_regex.findall(text)
        regex: re.Pattern[str] = self._regex  # type: ignore[attr-defined]
        return regex.findall(text)


@dataclass(frozen=True, eq=False)
class Signals:
    n_features: int
    alternate_sign: bool


@dataclass(frozen=True, eq=False)
class LinearPart:
    """One fitted pipeline: features, a linear model, and how its margins become scores.

    ``kind`` is "sigmoid" (``calibrators`` holds each margin column's output column and the
    sigmoid's a and b, as CalibratedClassifierCV with one calibrated classifier) or "softmax"
    (the margins through pipeline._softmax, as a LinearSVC's decision scores).
    """

    words: Words
    signals: Signals
    text_weight: float
    meta_weight: float
    coef: np.ndarray  # margin columns by features, the estimator's dtype
    intercept: np.ndarray
    estimator_classes: list[str]
    classes: list[str]
    kind: str
    calibrators: list[tuple[int, float, float]]

    @property
    def text_width(self) -> int:
        return self.words.n_features

    # -- features -----------------------------------------------------------------------------

    def texts(self, samples: Sequence[Sample]) -> list[str]:
        return TEXT_VIEWS[self.words.view](samples)

    def analyze(self, text: str) -> list[str]:
        return self.words.analyze(text)

    def token_columns(self, tokens: Sequence[str]) -> list[int]:
        return [int(c) for c in columns(tokens, self.words.n_features)[0]]

    def signal_columns(self, signals: Sequence[str]) -> list[int]:
        return [int(c) for c in columns(signals, self.signals.n_features)[0]]

    def features(
        self, samples: Sequence[Sample], signals: Sequence[Mapping[str, float]] | None = None
    ) -> Rows:
        """The rows the Pipeline's ``features`` step gives, to the same float32 bits.

        ``signals``: the samples' named signals (features.meta_of) where the caller has them
        already, so that scoring and explaining a batch work them out once.
        """
        n = len(samples)
        t_row, t_col, t_val = self._words(samples)
        m_row, m_col, m_val = self._signals(samples, signals)
        # FeatureUnion weighs each part (float32 times a Python float stays float32).
        t_val = t_val * self.text_weight
        m_val = m_val * self.meta_weight
        t_count = np.bincount(t_row, minlength=n)
        m_count = np.bincount(m_row, minlength=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(t_count + m_count, out=indptr[1:])
        # Each row: its words' columns, then its signals' after them (both sorted already).
        t_start = np.concatenate(([0], np.cumsum(t_count)[:-1])) if n else t_count
        m_start = np.concatenate(([0], np.cumsum(m_count)[:-1])) if n else m_count
        total = int(indptr[-1])
        data = np.empty(total, dtype=np.float32)
        indices = np.empty(total, dtype=np.int32)
        t_at = indptr[t_row] + (np.arange(t_row.size) - t_start[t_row])
        m_at = indptr[m_row] + t_count[m_row] + (np.arange(m_row.size) - m_start[m_row])
        data[t_at] = t_val
        indices[t_at] = t_col
        data[m_at] = m_val
        indices[m_at] = m_col + self.words.n_features
        return Rows(data, indices, indptr, (n, self.words.n_features + self.signals.n_features))

    def _words(self, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        words = self.words
        tokens = [words.analyze(text) for text in self.texts(samples)]
        rows, column, value = _hashed_tokens(
            tokens, len(samples), words.n_features, words.alternate_sign
        )
        row, col, val = _summed(rows, column, value, words.n_features)
        if words.sublinear:  # as TfidfTransformer: in place, in float32
            np.log(val, val)
            val += 1.0
        if words.idf is not None:
            val *= words.idf[col]
        if words.norm == "l2":  # as sklearn's row normalisation: float32 squares, double sums
            squares = np.bincount(
                row, weights=(val * val).astype(np.float64), minlength=len(samples)
            )
            norms = np.sqrt(squares)
            scale = norms[row]
            nonzero = scale != 0.0
            val[nonzero] = (val[nonzero] / scale[nonzero]).astype(np.float32)
        return row, col, val

    def _signals(
        self, samples: Sequence[Sample], named: Sequence[Mapping[str, float]] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        signals = self.signals
        n_features = signals.n_features
        rows, column, value = _hashed(
            meta_of(samples) if named is None else named,
            len(samples),
            n_features,
            signals.alternate_sign,
        )
        # FeatureHasher keeps each value as float32, then sums a column's duplicates.
        value = value.astype(np.float32).astype(np.float64)
        return _summed(rows, column, value, n_features)

    # -- scores -------------------------------------------------------------------------------

    def margins(self, rows: Rows) -> np.ndarray:
        """The linear model's decision values, summed as scipy's sparse product sums them:
        row by row, entry by entry, in the product's dtype (float32 for a float32 model)."""
        dtype = np.result_type(rows.data.dtype, self.coef.dtype)
        # coef.T is C-contiguous (see _from_spec): each entry's weights are one gathered row.
        weights = self.coef.T[rows.indices].astype(dtype, copy=False)
        products = rows.data.astype(dtype)[:, None] * weights
        out = np.zeros((rows.shape[0], self.coef.shape[0]), dtype=dtype)
        row_sums(products, rows.indptr, out)
        return out + self.intercept  # type: ignore[no-any-return]

    def scores(self, rows: Rows) -> np.ndarray:
        margins = self.margins(rows)
        if self.kind == "softmax":
            return _softmax(np.asarray(margins, dtype=np.float64))
        n_classes = len(self.classes)
        proba = np.zeros((rows.shape[0], n_classes))
        for (column, a, b), this in zip(self.calibrators, margins.T, strict=True):
            # _SigmoidCalibration: expit(-(a * T + b)), with a and b float64 scalars.
            proba[:, column] = 1.0 / (1.0 + np.exp(np.float64(a) * this + np.float64(b)))
        if n_classes == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
        else:
            denominator = np.sum(proba, axis=1)[:, np.newaxis]
            uniform = np.full_like(proba, 1 / n_classes)
            proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def linear(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """As pipeline.linear_parts: weights (classes by features), intercepts, classes."""
        coef, classes = self.coef, list(self.estimator_classes)
        if coef.shape[0] == 1 and len(classes) == 2:
            return (
                np.vstack([-coef[0], coef[0]]),
                np.array([-self.intercept[0], self.intercept[0]]),
                classes,
            )
        return coef, self.intercept, classes


# Below this many rows still running, the rest are summed one by one: a long message's tail
# is not worth a step for all rows.
_SIDE_BY_SIDE = 16


def row_sums(products: np.ndarray, indptr: np.ndarray, out: np.ndarray) -> None:
    """Into ``out``: each row's entries of ``products`` summed in order, first to last.

    The rows are summed side by side, one entry of each per step (a running sum per row, so
    the same additions in the same order as a cumulative sum of each row alone: the same
    bits); once fewer than ``_SIDE_BY_SIDE`` rows are left, each goes on alone. One numpy
    step per entry of the longest rows instead of one per row: 500 short notes in a tenth
    of the time."""
    n = len(indptr) - 1
    if n <= 0:
        return
    starts = np.asarray(indptr[:-1], dtype=np.int64)
    lengths = np.diff(np.asarray(indptr, dtype=np.int64))
    order = np.argsort(-lengths, kind="stable")
    descending = lengths[order]
    # running[j]: how many rows have more than j entries (a prefix of ``order``).
    running = np.searchsorted(-descending, -np.arange(int(descending[0])), side="left")
    j = 0
    while j < running.size and running[j] >= _SIDE_BY_SIDE:
        now = order[: running[j]]
        if j == 0:
            out[now] = products[starts[now]]
        else:
            out[now] += products[starts[now] + j]
        j += 1
    if j == running.size:
        return
    for i in order[: running[j]].tolist():
        rest = products[starts[i] + j : starts[i] + lengths[i]]
        if j:
            rest = np.concatenate((out[i : i + 1], rest))
        out[i] = np.cumsum(rest, axis=0)[-1]


def _hashed(
    per_row: Iterable[Mapping[str, float]], n_rows: int, n_features: int, alternate_sign: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's named values as (row, hashed column, value) triples, duplicates not summed;
    each distinct name is hashed once for the whole batch."""
    ids: dict[str, int] = {}
    flat: list[int] = []
    values: list[float] = []
    lengths: list[int] = []
    for named in per_row:
        lengths.append(len(named))
        flat += [ids.setdefault(name, len(ids)) for name in named]
        values += named.values()
    column, sign = columns(list(ids), n_features)
    at = np.asarray(flat, dtype=np.int64)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    value = np.asarray(values, dtype=np.float64)
    if alternate_sign:
        value = value * sign[at]
    return rows, column[at], value


def _hashed_tokens(
    per_row: Sequence[Sequence[str]], n_rows: int, n_features: int, alternate_sign: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's tokens as (row, hashed column, +-1.0) entries, one per occurrence; each
    distinct token is hashed once for the whole batch.

    Not counted per row first: _summed adds up a row's entries of one column anyway, and
    sums of ones are exact, so the counts come out as the vectorizer's; counting in Python
    (a Counter per message) cost more than all the rest of the hashing.
    """
    ids = dict.fromkeys(chain.from_iterable(per_row))
    ids = dict(zip(ids, range(len(ids)), strict=True))
    at = np.fromiter(map(ids.__getitem__, chain.from_iterable(per_row)), dtype=np.int64)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), [len(tokens) for tokens in per_row])
    column, sign = columns(list(ids), n_features)
    value = sign[at] if alternate_sign else np.ones(at.size, dtype=np.float64)
    return rows, column[at], value


def _summed(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries in (row, column) order with a column's duplicates summed, values as float32."""
    if rows.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    keys, inverse = np.unique(rows * width + cols, return_inverse=True)
    summed = np.bincount(inverse, weights=values, minlength=keys.size)
    return keys // width, keys % width, summed.astype(np.float32)


def _softmax(margins: np.ndarray) -> np.ndarray:
    """pipeline._softmax, which the accounts model's scores come from."""
    if margins.ndim == 1 or margins.shape[1] == 1:
        margins = margins.reshape(-1)
        margins = np.column_stack([-margins, margins])
    scaled = margins * 4.0
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


@dataclass(frozen=True, eq=False)
class ScoringForm:
    """A whole model: one part, or a blend of parts (as pipeline.Blend combines them)."""

    task: str
    classes: list[str]
    parts: list[tuple[str, LinearPart, float]]
    bulk_from: str | None
    blend: bool

    def score(
        self, samples: Sequence[Sample], signals: Sequence[Mapping[str, float]] | None = None
    ) -> LeanScored:
        """What pipeline.score_batch gives for the fitted Pipeline this form was made from.

        ``signals``: the samples' named signals, if the caller has them (LinearPart.features).
        """
        if not self.blend:
            [(_, part, _)] = self.parts
            rows = part.features(samples, signals)
            return LeanScored(part.scores(rows), list(self.classes), [(part, 1.0, 1.0, rows)])
        if signals is None:  # once for all the parts
            signals = meta_of(samples)
        total = sum(weight for _, _, weight in self.parts)
        each: dict[str, np.ndarray] = {}
        scored_rows: list[tuple[LinearPart, float, float, Rows]] = []
        for name, part, weight in self.parts:
            rows = part.features(samples, signals)
            each[name] = part.scores(rows)
            scored_rows.append((part, weight, total, rows))
        return LeanScored(self._combine(each), list(self.classes), scored_rows)

    def _combine(self, each: dict[str, np.ndarray]) -> np.ndarray:
        """pipeline.Blend.combine, step for step."""
        total = sum(weight for _, _, weight in self.parts)
        proba: Any = sum(weight * each[name] for name, _, weight in self.parts) / total
        bulk = self.classes.index("bulk") if "bulk" in self.classes else None
        if self.bulk_from is None or bulk is None:
            return np.asarray(proba)
        p_bulk = each[self.bulk_from][:, bulk]
        rest = np.delete(proba, bulk, axis=1)
        rest *= ((1.0 - p_bulk) / np.maximum(rest.sum(axis=1), 1e-12))[:, None]
        return np.insert(rest, bulk, p_bulk, axis=1)

    # -- the file -----------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The form as ``.npz`` bytes: a JSON description and plain numeric arrays."""
        arrays: dict[str, np.ndarray] = {}
        parts = []
        for i, (name, part, weight) in enumerate(self.parts):
            arrays[f"coef{i}"] = part.coef
            arrays[f"intercept{i}"] = part.intercept
            if part.words.idf is not None:
                arrays[f"idf{i}"] = part.words.idf
            w = part.words
            parts.append(
                {
                    "name": name,
                    "weight": weight,
                    "words": {
                        "view": w.view,
                        "pattern": w.pattern,
                        "n_features": w.n_features,
                        "lowercase": w.lowercase,
                        "alternate_sign": w.alternate_sign,
                        "sublinear": w.sublinear,
                        "norm": w.norm,
                        "idf": w.idf is not None,
                    },
                    "signals": {
                        "n_features": part.signals.n_features,
                        "alternate_sign": part.signals.alternate_sign,
                    },
                    "text_weight": part.text_weight,
                    "meta_weight": part.meta_weight,
                    "estimator_classes": part.estimator_classes,
                    "classes": part.classes,
                    "kind": part.kind,
                    "calibrators": [list(c) for c in part.calibrators],
                }
            )
        spec = {
            "version": FORM_VERSION,
            "task": self.task,
            "classes": self.classes,
            "blend": self.blend,
            "bulk_from": self.bulk_from,
            "parts": parts,
        }
        arrays[_SPEC] = np.frombuffer(json.dumps(spec).encode("utf-8"), dtype=np.uint8)
        out = io.BytesIO()
        np.savez_compressed(out, allow_pickle=False, **arrays)
        return out.getvalue()

    @classmethod
    def loads(cls, data: bytes) -> ScoringForm:
        """The form in ``data``; raises FormError naming what is wrong. Never unpickles."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as exc:  # zipfile, numpy's format errors, a pickle refused
            raise FormError(f"not a scoring form ({type(exc).__name__}: {exc})") from None
        raw = arrays.pop(_SPEC, None)
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise FormError("no description in it")
        try:
            spec = json.loads(raw.tobytes().decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise FormError(f"its description is not JSON ({exc})") from None
        try:
            return _from_spec(spec, arrays)
        except (KeyError, TypeError, ValueError, IndexError, re.error) as exc:
            raise FormError(f"its description does not fit ({type(exc).__name__}: {exc})") from None


def _from_spec(spec: Any, arrays: dict[str, np.ndarray]) -> ScoringForm:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(what)

    need(isinstance(spec, dict) and spec.get("version") == FORM_VERSION, "unknown version")
    classes = [str(c) for c in spec["classes"]]
    parts: list[tuple[str, LinearPart, float]] = []
    for i, p in enumerate(spec["parts"]):
        w, s = p["words"], p["signals"]
        need(w["view"] in TEXT_VIEWS, f"unknown view {w['view']!r}")
        need(w["norm"] in ("l2", None), f"unknown norm {w['norm']!r}")
        need(re.compile(str(w["pattern"])).groups == 0, "a token pattern with groups")
        n_text, n_meta = _positive(w["n_features"]), _positive(s["n_features"])
        # Kept features by classes in memory (a view gives classes by features): scoring
        # gathers the rows of its entries' columns, without copying the whole matrix.
        coef = np.ascontiguousarray(_floats(arrays, f"coef{i}", 2).T).T
        intercept = _floats(arrays, f"intercept{i}", 1)
        idf = _floats(arrays, f"idf{i}", 1) if w["idf"] else None
        need(coef.shape[1] == n_text + n_meta, "weights do not fit the features")
        need(intercept.shape[0] == coef.shape[0], "intercepts do not fit the weights")
        need(idf is None or idf.shape[0] == n_text, "idf does not fit the words")
        kind = p["kind"]
        need(kind in ("sigmoid", "softmax"), f"unknown kind {kind!r}")
        calibrators = [(int(c), float(a), float(b)) for c, a, b in p["calibrators"]]
        part_classes = [str(c) for c in p["classes"]]
        need(part_classes == classes, "a part's classes differ from the model's")
        if kind == "sigmoid":
            need(len(calibrators) == coef.shape[0], "a calibrator per margin column")
            need(all(0 <= c < len(classes) for c, _, _ in calibrators), "calibrator columns")
        words = Words(
            view=str(w["view"]),
            pattern=str(w["pattern"]),
            n_features=n_text,
            lowercase=bool(w["lowercase"]),
            alternate_sign=bool(w["alternate_sign"]),
            sublinear=bool(w["sublinear"]),
            norm=w["norm"],
            idf=idf,
        )
        part = LinearPart(
            words=words,
            signals=Signals(n_meta, bool(s["alternate_sign"])),
            text_weight=float(p["text_weight"]),
            meta_weight=float(p["meta_weight"]),
            coef=coef,
            intercept=intercept,
            estimator_classes=[str(c) for c in p["estimator_classes"]],
            classes=part_classes,
            kind=kind,
            calibrators=calibrators,
        )
        parts.append((str(p["name"]), part, float(p["weight"])))
    blend = bool(spec["blend"])
    need(len(parts) >= 1 and (blend or len(parts) == 1), "parts")
    bulk_from = spec["bulk_from"]
    need(bulk_from is None or bulk_from in [n for n, _, _ in parts], "bulk_from names no part")
    return ScoringForm(str(spec["task"]), classes, parts, bulk_from, blend)


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"not a positive count: {value!r}")
    return value


def _floats(arrays: dict[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
    array = arrays[name]
    if array.dtype not in _FLOATS or array.ndim != ndim:
        raise ValueError(f"{name} should be float32 or float64 with {ndim} dimensions")
    return array
