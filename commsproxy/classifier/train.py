"""Fitting the models, validating them in time order, and choosing their thresholds.

Validation always trains on the older part of the mail and tests on the newer part, as the model
will be used: a random split would let next month's thread teach this month's verdict. The
thresholds are chosen there (cuts.py):

- urgency: the highest p(urgent) cut that still delivers ``recall_target`` of urgent mail at
  once, under a hold constraint; one cut with the user's history, one without it (a first
  start), and a p(bulk) cut for bulk on the model's word alone (policy.py uses all three);
- accounts: the lowest confidence at which ``precision_target`` of the filings are right
  (filing into the wrong customer's folder is worse than not filing).

Training never makes triage worse than the prior it is given (the bundled model): the user's
model, blends of it with the prior, and the prior itself are measured on the same newest mail,
and the best that meets both the recall target and the hold constraint is kept. Then the model
is fitted again on all the mail, and the decision carried over (for accounts, the two fits run
side by side when there are two CPUs, which agrees with one after the other to the solver's
tolerance).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from .cuts import UrgentCut, choose_precision_threshold, choose_urgent_cut, outcome
from .features import Sample
from .pipeline import (
    ACCOUNT_TEXT_FEATURES,
    META_FEATURES,
    MIN_CALIBRATION_EXAMPLES,
    accounts_pipeline,
    blend_pipeline,
    decision_scores,
    urgency_pipeline,
)
from .policy import BULK, URGENT, Thresholds, bulk_wins, judge, rule_delivers

__all__ = [
    "AccountsReport",
    "Prior",
    "TrainingError",
    "UrgencyReport",
    "cold",
    "train_accounts",
    "train_urgency",
    "usable_cpus",
]

VALIDATION_SHARE = 0.2
# Fewer urgent messages than this in the newest mail: validate by cross-validation instead.
MIN_VALIDATION_URGENT = 5
# Fewer urgent validation messages than this cannot tune a recall threshold (95% of six is
# not a measurement): with a prior, the prior is kept as it is.
MIN_THRESHOLD_URGENT = 20
# The hold constraint: a cut must hold at least this share of the other mail to be triage.
MIN_HELD_SHARE = 0.5
# Bulk on the model's word alone only where this share of its bulk calls were right.
BULK_PRECISION = 0.97
# Share of the training mail shown without any history, as a first start sees all mail, so
# the model learns to judge a message on its own and cannot learn "stranger => bulk".
COLD_SHARE = 0.3
# Weights of the user's own model against the prior that are tried, the user's first. The
# prior always keeps a share: a user's mailbox rarely holds spam, so a model of it alone
# does not know spam (measured: 24% of spam urgent for one Enron user, 0% blended).
BLEND_WEIGHTS = (0.75, 0.5, 0.25, 0.0)
# The accounts model's two fits run side by side while their weights (four copies at their
# peak) fit in this; beyond it, one after the other.
SIDE_BY_SIDE_BYTES = 256 << 20


class TrainingError(ValueError):
    """Not enough (or not varied enough) mail to train on; the message says what is missing."""


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class Prior:
    """A fitted model to blend with or fall back on (the bundled one), and its cuts."""

    pipeline: Pipeline
    thresholds: Thresholds


@dataclass(frozen=True)
class Outcome:
    """What a model at its cuts does to the newest mail, as the user will see it."""

    delivered: float  # share of urgent mail delivered at once
    held: float  # share of the other mail held

    def words(self) -> str:
        return (
            f"delivers {self.delivered:.0%} of urgent mail at once and holds {self.held:.0%} "
            "of the rest"
        )


@dataclass
class UrgencyReport:
    counts: dict[str, int]
    validation: str  # how the thresholds and the metrics were measured
    trained_on: int
    validated_on: int
    thresholds: Thresholds
    warm: Outcome  # on the newest mail, with the user's history with senders
    cold: Outcome  # the same mail with nothing known of the user's past
    urgent_validated: int = 0
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    prior: Outcome | None = None  # the prior at its own cuts on the same mail
    choice: str = "a model of your own mail"  # what is saved, in words
    notes: list[str] = field(default_factory=list)  # what fell short, and what was done
    seconds: float = 0.0

    @property
    def threshold(self) -> float | None:
        return self.thresholds.urgent

    def summary(self) -> str:
        cut = self.thresholds.urgent
        rule = f"urgent from {cut:.3f}" if cut is not None else "urgent when likeliest"
        text = f"on your newest mail: {self.choice} {self.warm.words()} ({rule})"
        if self.prior is not None and self.prior != self.warm:
            text += f"; the bundled model alone {self.prior.words()}"
        return text


@dataclass
class AccountsReport:
    counts: dict[str, int]
    trained_on: int
    validated_on: int
    threshold: float
    precision: float  # of accepted filings on validation
    coverage: float  # share of validation mail filed at all
    accuracy: float  # top-1 accuracy on validation, before the threshold
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"files {self.coverage:.0%} of mail automatically, {self.precision:.1%} of those "
            f"into the right account (confidence ≥ {self.threshold:.2f}); top-1 accuracy "
            f"{self.accuracy:.1%}"
        )


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _split(n: int) -> int:
    return max(1, min(n - 1, round(n * (1 - VALIDATION_SHARE))))


def cold(sample: Sample) -> Sample:
    """The sample as a first start sees it: nothing known of the user's past."""
    context = replace(
        sample.context, sender=None, domain=None, replies_to_user=False, history_known=False
    )
    return replace(sample, context=context)


def _with_cold_share(samples: Sequence[Sample], seed: int) -> list[Sample]:
    """A seeded ``COLD_SHARE`` of the samples with their history taken away."""
    chosen = np.random.default_rng(seed).random(len(samples)) < COLD_SHARE
    return [cold(s) if pick else s for s, pick in zip(samples, chosen, strict=True)]


@dataclass
class _Scores:
    """Validation probabilities of one candidate, with and without history."""

    warm: np.ndarray
    cold: np.ndarray
    classes: list[str]

    def column(self, label: str, mode: str) -> np.ndarray:
        proba = self.warm if mode == "warm" else self.cold
        return (
            proba[:, self.classes.index(label)] if label in self.classes else np.zeros(len(proba))
        )

    def mixed(self, prior: _Scores, weight: float) -> _Scores:
        """As a Blend of this and ``prior`` scores (pipeline.py): p(bulk) from the prior."""
        return _Scores(
            _mix(self.warm, prior.warm, weight, self.classes),
            _mix(self.cold, prior.cold, weight, self.classes),
            self.classes,
        )


def _mix(mine: np.ndarray, prior: np.ndarray, weight: float, classes: list[str]) -> np.ndarray:
    proba = weight * mine + (1 - weight) * prior
    if BULK not in classes:
        return proba
    bulk = classes.index(BULK)
    rest = np.delete(proba, bulk, axis=1)
    rest *= ((1.0 - prior[:, bulk]) / np.maximum(rest.sum(axis=1), 1e-12))[:, None]
    return np.insert(rest, bulk, prior[:, bulk], axis=1)


@dataclass
class _Candidate:
    weight: float  # of the user's own model; 0.0 is the prior alone
    thresholds: Thresholds
    warm: UrgentCut
    cold: UrgentCut
    tuned: bool = True  # thresholds chosen on this mail (False: the prior's own)


def _score(pipeline: Pipeline, samples: Sequence[Sample]) -> _Scores:
    warm, classes = decision_scores(pipeline, list(samples))
    cold_proba, _ = decision_scores(pipeline, [cold(s) for s in samples])
    return _Scores(np.asarray(warm), np.asarray(cold_proba), classes)


class _Judge:
    """The validation mail, its truth, and which messages the rules deliver anyway."""

    def __init__(
        self,
        samples: Sequence[Sample],
        truth: np.ndarray,
        recall_target: float,
        max_held: Mapping[str, float],
    ):
        self.max_held = max_held
        self.samples = list(samples)
        self.truth = truth
        self.urgent = truth == URGENT
        self.recall_target = recall_target

    def view(self, mode: str) -> list[Sample]:
        return self.samples if mode == "warm" else [cold(s) for s in self.samples]

    def forced(self, scores: _Scores, mode: str, bulk_cut: float | None) -> np.ndarray:
        """Messages the rules deliver whatever their p(urgent) (cues without bulk evidence)."""
        p_bulk = scores.column(BULK, mode)
        return np.asarray(
            [
                rule_delivers(s, float(b), bulk_cut)
                for s, b in zip(self.view(mode), p_bulk, strict=True)
            ],
            dtype=bool,
        )

    def reachable(self, scores: _Scores, mode: str, bulk_cut: float | None) -> np.ndarray:
        """p(urgent), with -1 where bulk wins over any urgent cut (policy.py)."""
        p_urgent = scores.column(URGENT, mode).copy()
        p_bulk = scores.column(BULK, mode)
        for i, sample in enumerate(self.view(mode)):
            if bulk_wins(sample, float(p_bulk[i]), bulk_cut):
                p_urgent[i] = -1.0
        return p_urgent

    def tune(self, weight: float, scores: _Scores, prior_bulk: float | None = None) -> _Candidate:
        """Cuts chosen on this mail; a blend's p(bulk) is the prior's, and so is its cut."""
        if weight < 1.0 and prior_bulk is not None:
            bulk_cut: float | None = prior_bulk
        else:
            both = np.concatenate([scores.column(BULK, "warm"), scores.column(BULK, "cold")])
            truth = np.concatenate([self.truth, self.truth]) == BULK
            bulk = choose_precision_threshold(both, truth, BULK_PRECISION) if truth.any() else None
            bulk_cut = None if bulk is None or not np.isfinite(bulk) else bulk
        cuts = {}
        for mode in ("warm", "cold"):
            cuts[mode] = choose_urgent_cut(
                self.reachable(scores, mode, bulk_cut),
                self.urgent,
                self.forced(scores, mode, bulk_cut),
                recall_target=self.recall_target,
                min_held=MIN_HELD_SHARE,
                max_held=self.max_held.get(mode),
            )
        thresholds = Thresholds(cuts["warm"].threshold, cuts["cold"].threshold, bulk_cut)
        return _Candidate(weight, thresholds, cuts["warm"], cuts["cold"])

    def as_is(self, scores: _Scores, thresholds: Thresholds) -> _Candidate:
        """A model at cuts chosen elsewhere (the prior's own), measured on this mail."""
        cuts = {}
        for mode, cut in (("warm", thresholds.urgent), ("cold", thresholds.urgent_cold)):
            at = 0.0 if cut is None else cut
            forced = self.forced(scores, mode, thresholds.bulk)
            reachable = self.reachable(scores, mode, thresholds.bulk)
            delivered, held = outcome(reachable, self.urgent, forced, at)
            cuts[mode] = UrgentCut(
                at, delivered, held, held >= MIN_HELD_SHARE, int(self.urgent.sum())
            )
        return _Candidate(0.0, thresholds, cuts["warm"], cuts["cold"], tuned=False)

    def labels(self, scores: _Scores, thresholds: Thresholds) -> np.ndarray:
        """The labels policy.py gives the validation mail (with history)."""
        out = []
        for i, sample in enumerate(self.samples):
            p = {c: float(scores.warm[i, j]) for j, c in enumerate(scores.classes)}
            out.append(judge(sample, p, thresholds).label)
        return np.asarray(out)


def _fit(
    samples: Sequence[Sample], y: np.ndarray, weights: np.ndarray | None, seed: int, calibrate: bool
) -> Pipeline:
    """An urgency pipeline fitted on these samples, each counting ``weights`` times (or once).

    Weights share out each class's weight among its messages and never move weight between
    classes: they are scaled to add up to each class's count, so the model's class balance
    (``class_weight="balanced"``, counted in messages) stays as it is.
    """
    pipeline = urgency_pipeline(seed, calibrate=calibrate)
    if weights is None:
        return pipeline.fit(list(samples), y)
    weights = weights.copy()
    for label in set(y.tolist()):
        inside = y == label
        total = weights[inside].sum()
        if total > 0:
            weights[inside] *= inside.sum() / total
    return pipeline.fit(list(samples), y, model__sample_weight=weights)


def _validation_scores(
    samples: Sequence[Sample],
    y: np.ndarray,
    weights: np.ndarray | None,
    seed: int,
    calibrate: bool,
    validate_from: int | None,
) -> tuple[np.ndarray, _Scores, int, str]:
    """Which samples validate (indices), the user's model's scores on them, and how."""
    counts = Counter(y.tolist())
    cut = _split(len(samples)) if validate_from is None else validate_from
    # Thresholds are measured on mail as it arrived; rebuilt messages only teach, unless
    # without them there are too few urgent messages to measure on at all.
    real = np.asarray([not sample.rebuilt for sample in samples])
    if np.sum((y == URGENT) & real) < MIN_THRESHOLD_URGENT:
        real[:] = True
    real_urgent = (y == URGENT) & real
    newest_urgent = int(real_urgent[cut:].sum())
    train = _with_cold_share(samples, seed)
    # Time order when the newest mail can tune the threshold, or when nothing else could.
    if (
        validate_from is not None
        or newest_urgent >= MIN_THRESHOLD_URGENT
        or counts[URGENT] < 3
        or (newest_urgent >= MIN_VALIDATION_URGENT and real_urgent.sum() < MIN_THRESHOLD_URGENT)
    ):
        older = None if weights is None else weights[:cut]
        probe = _fit(train[:cut], y[:cut], older, seed, calibrate)
        measured = cut + np.flatnonzero(real[cut:])
        scores = _score(probe, [samples[int(i)] for i in measured])
        return measured, scores, cut, "time-ordered: trained on older mail, tested on the newest"
    # Too few urgent messages in the newest mail: out-of-fold predictions over all the mail,
    # each fold's model scoring its held-out mail with and without history.
    folds = StratifiedKFold(3, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    classes = sorted(counts)
    warm = np.zeros((len(samples), len(classes)))
    cold_proba = np.zeros_like(warm)
    for fit_on, tested in folds:
        fold_weights = None if weights is None else weights[fit_on]
        model = _fit([train[int(i)] for i in fit_on], y[fit_on], fold_weights, seed, calibrate)
        fold = _score(model, [samples[int(i)] for i in tested])
        for j, label in enumerate(fold.classes):
            warm[tested, classes.index(label)] = fold.warm[:, j]
            cold_proba[tested, classes.index(label)] = fold.cold[:, j]
    measured = np.flatnonzero(real)
    how = "3-fold cross-validation (too few urgent messages in the newest mail)"
    return measured, _Scores(warm[measured], cold_proba[measured], classes), 0, how


def _best(candidates: Sequence[_Candidate], recall_target: float) -> _Candidate | None:
    """The candidate holding most of the other mail among those meeting both targets."""
    good = [
        c
        for c in candidates
        if c.warm.held >= MIN_HELD_SHARE
        and c.warm.delivered >= recall_target - 1.0 / max(1, c.warm.urgent)
    ]
    return max(good, key=lambda c: c.warm.held) if good else None


def _choice_words(chosen: _Candidate) -> str:
    if not chosen.tuned:
        return "the bundled model as it is"
    if chosen.weight == 1.0:
        return "a model of your own mail"
    if chosen.weight == 0.0:
        return "the bundled model, with cuts measured on your mail,"
    return f"your model blended {chosen.weight:.0%} with the bundled model"


def _transfer(
    thresholds: Thresholds, probe: _Scores, final: _Scores, *, bulk_kept: bool = False
) -> Thresholds:
    """The final model's cuts that decide as the probe's did on the validation mail.

    The cuts were measured on a model fitted without the validation mail; the final model,
    fitted on everything, scores on another scale (calibration on a few dozen urgent
    messages is rough). What carries over is the decision: the share of the validation mail
    below each cut. So each final cut is the quantile of the final model's scores there.
    """

    def moved(cut: float | None, label: str, mode: str) -> float | None:
        if cut is None:
            return None
        share = float(np.mean(probe.column(label, mode) < cut))
        scores = final.column(label, mode)
        if share <= 0.0:
            return float(scores.min())
        if share >= 1.0:
            return float(np.nextafter(scores.max(), np.inf))
        return float(np.quantile(scores, share, method="higher"))

    return Thresholds(
        moved(thresholds.urgent, URGENT, "warm"),
        moved(thresholds.urgent_cold, URGENT, "cold"),
        moved(thresholds.bulk, BULK, "warm") if not bulk_kept else thresholds.bulk,
    )


def _choose(
    judge_: _Judge,
    mine: _Scores,
    prior: Prior | None,
    prior_scores: _Scores | None,
    validation: str,
    recall_target: float,
) -> tuple[_Candidate, list[str]]:
    """The user's model, blends and the prior as it is, measured; the best, and why in words."""
    # Rebuilt originals score unlike mail as it arrives (they have no headers): a measurement
    # that needs them cannot show that the user's model beats the prior on live mail.
    as_arrived = sum(
        1
        for s, urgent in zip(judge_.samples, judge_.urgent, strict=True)
        if urgent and not s.rebuilt
    )
    notes: list[str] = []
    candidates: list[_Candidate] = []
    as_is = None
    if prior is not None and prior_scores is not None:
        as_is = judge_.as_is(prior_scores, prior.thresholds)
    in_time_order = validation.startswith("time-ordered")
    if prior is None or prior_scores is None:
        candidates.append(judge_.tune(1.0, mine))
    elif as_arrived >= MIN_THRESHOLD_URGENT and in_time_order:
        if mine.classes == prior_scores.classes:
            for weight in BLEND_WEIGHTS:
                scores = mine.mixed(prior_scores, weight) if weight else prior_scores
                candidates.append(judge_.tune(weight, scores, prior.thresholds.bulk))
        else:
            differ = sorted(set(mine.classes) ^ set(prior_scores.classes))
            notes.append(
                f"your mail and the bundled model differ in their labels ({', '.join(differ)} "
                "on one side only): a model of your own cannot be blended with it"
            )
    else:
        what = (
            f"your newest mail holds only {as_arrived} urgent messages as they arrived"
            if in_time_order
            else "your newest mail holds too few urgent messages as they arrived for a test "
            "in time order"
        )
        notes.append(
            f"{what} (messages you answered within 4 hours); at least {MIN_THRESHOLD_URGENT} "
            "are needed to measure a model of your own against the bundled one on mail it "
            "never saw"
        )
    chosen = _best([*candidates, *([as_is] if as_is is not None else [])], recall_target)
    if chosen is None and as_is is not None:
        chosen = as_is
        if candidates:
            notes.append(
                f"no model of your mail delivers {recall_target:.0%} of urgent mail at once "
                f"while holding at least {MIN_HELD_SHARE:.0%} of the rest"
            )
    elif chosen is None:
        chosen = candidates[0]
        notes.append(
            f"to hold at least {MIN_HELD_SHARE:.0%} of the other mail, the cut delivers "
            f"{chosen.warm.delivered:.0%} of urgent mail at once, short of "
            f"{recall_target:.0%}: there is too little to tell urgent mail apart by"
        )
    if notes and not chosen.tuned:
        notes.append("keeping the bundled model, with your history with senders")
        if chosen.warm.held < MIN_HELD_SHARE:
            notes.append(
                f"on your newest mail the bundled model holds only {chosen.warm.held:.0%} of "
                "the mail that could wait: it delivers most mail from people you answer; "
                "train again when more of your answers are in your mail, or add VIP rules "
                "and corrections"
            )
    return chosen, notes


def _prior_outcome(
    judge_: _Judge, prior: Prior | None, prior_scores: _Scores | None
) -> Outcome | None:
    """The prior at its own cuts on the validation mail, for the report."""
    if prior is None or prior_scores is None:
        return None
    as_is = judge_.as_is(prior_scores, prior.thresholds)
    return Outcome(as_is.warm.delivered, as_is.warm.held)


def _per_class(
    predicted: np.ndarray, truth: np.ndarray, labels: Sequence[str]
) -> dict[str, ClassMetrics]:
    out = {}
    for label in labels:
        said = predicted == label
        actual = truth == label
        hits = int(np.sum(said & actual))
        out[label] = ClassMetrics(
            precision=hits / max(1, int(said.sum())),
            recall=hits / max(1, int(actual.sum())),
            support=int(actual.sum()),
        )
    return out


def train_urgency(
    samples: Sequence[Sample],
    labels: Sequence[str],
    *,
    recall_target: float = 0.95,
    seed: int = 0,
    prior: Prior | None = None,
    validate_from: int | None = None,
    max_held: Mapping[str, float] | None = None,
    weights: Sequence[float] | None = None,
) -> tuple[Pipeline, UrgencyReport]:
    """Fit the urgency model on samples in date order (oldest first).

    With a ``prior`` (the bundled model), what is returned is never worse than the prior on
    the user's newest mail: the user's model, blends, or the prior itself (module doc).
    ``validate_from`` sets where the validation mail starts (default: the newest 20%).
    ``max_held`` ("warm", "cold": share) lowers a cut that would hold more than that share
    of the other validation mail, trading hold for recall where mail will differ from the
    validation mail (the bundled model on a stranger's mailbox). ``weights`` (one per
    sample, default 1) is how much each message counts in fitting; the cuts count every
    validation message once.
    """
    started = time.perf_counter()
    counts = Counter(labels)
    if len(samples) < 20 or len(counts) < 2:
        raise TrainingError(
            f"need at least 20 messages of at least two kinds to train; got {len(samples)} "
            f"({', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'})"
        )
    y = np.asarray(labels)
    calibrate = min(counts.values()) >= MIN_CALIBRATION_EXAMPLES
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if w is not None and w.shape != y.shape:
        raise ValueError(f"{len(w)} weights for {len(y)} samples")
    measured, mine, trained_on, validation = _validation_scores(
        samples, y, w, seed, calibrate, validate_from
    )
    judge_ = _Judge([samples[int(i)] for i in measured], y[measured], recall_target, max_held or {})
    prior_scores = None if prior is None else _score(prior.pipeline, judge_.samples)
    chosen, notes = _choose(judge_, mine, prior, prior_scores, validation, recall_target)
    chosen_scores = mine
    if prior_scores is not None and chosen.weight < 1.0:
        chosen_scores = mine.mixed(prior_scores, chosen.weight) if chosen.weight else prior_scores
    predicted = judge_.labels(chosen_scores, chosen.thresholds)
    per_class = _per_class(predicted, judge_.truth, sorted(counts))
    thresholds = chosen.thresholds
    if chosen.weight == 0.0:
        assert prior is not None
        final = prior.pipeline
    else:
        own = _fit(_with_cold_share(samples, seed), y, w, seed, calibrate)
        final = own
        if chosen.weight < 1.0:
            assert prior is not None
            final = blend_pipeline(
                [("yours", own, chosen.weight), ("bundled", prior.pipeline, 1 - chosen.weight)],
                bulk_from="bundled",
            )
        # A blend's p(bulk) is the prior's own: its cut stays as it is.
        thresholds = _transfer(
            thresholds,
            chosen_scores,
            _score(final, judge_.samples),
            bulk_kept=chosen.weight < 1.0,
        )
    report = UrgencyReport(
        counts=dict(counts),
        validation=validation,
        trained_on=trained_on,
        validated_on=len(measured),
        thresholds=thresholds,
        warm=Outcome(chosen.warm.delivered, chosen.warm.held),
        cold=Outcome(chosen.cold.delivered, chosen.cold.held),
        urgent_validated=int(judge_.urgent.sum()),
        per_class=per_class,
        prior=_prior_outcome(judge_, prior, prior_scores),
        choice=_choice_words(chosen) if prior is not None else "the model",
        notes=notes,
        seconds=time.perf_counter() - started,
    )
    return final, report


def fit_accounts(samples: Sequence[Sample], labels: Any, seed: int = 0) -> Pipeline:
    """``accounts_pipeline(seed).fit(samples, labels)``, with the SVM solved on the columns the
    mail uses.

    The SVM's weights are sums of training rows, so a hashed column no message has gets none:
    the solver is given only the used columns (their order kept) and the weights are put back
    in place after. The same model, while the solver's memory (its weights and its copy of
    them, accounts x columns each) follows the mail's vocabulary instead of every column.
    """
    pipeline = accounts_pipeline(seed)
    features = pipeline.named_steps["features"]
    svm = pipeline.named_steps["model"]
    rows = features.fit_transform(samples, labels).tocsr()
    width = rows.shape[1]
    used = np.unique(rows.indices)
    position = np.full(width, -1, dtype=rows.indices.dtype)
    position[used] = np.arange(len(used), dtype=rows.indices.dtype)
    compact = type(rows)(  # a CSR matrix, as rows is
        (rows.data, position[rows.indices], rows.indptr), shape=(rows.shape[0], len(used))
    )
    del rows
    svm.fit(compact, labels)
    del compact
    weights = np.zeros((svm.coef_.shape[0], width), dtype=svm.coef_.dtype)
    weights[:, used] = svm.coef_
    svm.coef_ = weights
    svm.n_features_in_ = width
    return pipeline


def train_accounts(
    samples: Sequence[Sample],
    labels: Sequence[str],
    *,
    precision_target: float = 0.98,
    seed: int = 0,
) -> tuple[Pipeline, AccountsReport]:
    """Fit the accounts model on samples in date order (oldest first)."""
    started = time.perf_counter()
    counts = Counter(labels)
    if len(samples) < 10 or len(counts) < 2:
        raise TrainingError(
            f"need at least 10 messages in at least two account folders; got {len(samples)} "
            f"in {len(counts)}"
        )
    cut = _split(len(samples))
    y = np.asarray(labels)
    # The probe (older mail, for the threshold) and the final model (all mail) are independent
    # fits, each most of the training time; the SVM solver releases the GIL, so with two CPUs
    # they run side by side. Both draw their coordinate order from liblinear's one process-wide
    # random stream, so side by side the two models agree with one-after-the-other to the
    # solver's tolerance, not always bit for bit. Each fit holds its weights twice at its end
    # (the solver's and scikit-learn's copy), accounts x columns floats each: with many
    # accounts, one after the other, the probe freed first.
    weights = len(counts) * (ACCOUNT_TEXT_FEATURES + META_FEATURES) * 8
    if usable_cpus() >= 2 and 4 * weights <= SIDE_BY_SIDE_BYTES:
        with ThreadPoolExecutor(max_workers=2) as pool:
            probe_job = pool.submit(fit_accounts, list(samples[:cut]), y[:cut], seed)
            final_job = pool.submit(fit_accounts, list(samples), y, seed)
            scores, classes = decision_scores(probe_job.result(), list(samples[cut:]))
            del probe_job  # free the probe's weights before the end
            final = final_job.result()
    else:
        probe = fit_accounts(list(samples[:cut]), y[:cut], seed)
        scores, classes = decision_scores(probe, list(samples[cut:]))
        del probe
        final = fit_accounts(list(samples), y, seed)
    best = scores.argmax(axis=1)
    confidence = scores[np.arange(len(best)), best]
    correct = np.asarray(classes)[best] == y[cut:]
    threshold = choose_precision_threshold(confidence, correct, precision_target)
    accepted = confidence >= threshold
    report = AccountsReport(
        counts=dict(counts),
        trained_on=cut,
        validated_on=len(samples) - cut,
        threshold=threshold,
        precision=float(correct[accepted].mean()) if accepted.any() else 1.0,
        coverage=float(accepted.mean()),
        accuracy=float(correct.mean()),
        seconds=time.perf_counter() - started,
    )
    return final, report
