"""Fitting the models, validating them in time order, and choosing their thresholds.

Validation always trains on the older part of the mail and tests on the newer part, as the model
will be used: a random split would let next month's thread teach this month's verdict. The
thresholds are chosen there:

- urgency: the highest probability cut that still delivers ``recall_target`` of urgent mail at
  once (hiding an urgent message costs far more than showing a newsletter early);
- accounts: the lowest confidence at which ``precision_target`` of the filings are right
  (filing into the wrong customer's folder is worse than not filing).

Then the model is fitted again on all the mail, and the threshold kept (for accounts, the two
fits run side by side when there are two CPUs).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from .features import Sample
from .pipeline import (
    MIN_CALIBRATION_EXAMPLES,
    accounts_pipeline,
    decision_scores,
    urgency_pipeline,
)

__all__ = [
    "AccountsReport",
    "TrainingError",
    "UrgencyReport",
    "apply_threshold",
    "choose_precision_threshold",
    "choose_recall_threshold",
    "train_accounts",
    "train_urgency",
    "usable_cpus",
]

URGENT = "urgent"
VALIDATION_SHARE = 0.2
# Fewer urgent messages than this in the newest mail: validate by cross-validation instead.
MIN_VALIDATION_URGENT = 5
# Fewer urgent validation messages than this cannot tune a recall threshold (95% of six is
# not a measurement); the likeliest label decides instead.
MIN_THRESHOLD_URGENT = 20
# A tuned cut must hold at least this share of the other validation mail to be used.
MIN_HELD_SHARE = 0.1


class TrainingError(ValueError):
    """Not enough (or not varied enough) mail to train on; the message says what is missing."""


@dataclass
class ClassMetrics:
    precision: float
    recall: float
    support: int


@dataclass
class UrgencyReport:
    counts: dict[str, int]
    validation: str  # how the threshold and the metrics were measured
    trained_on: int
    validated_on: int
    threshold: float | None  # None: the likeliest label decides (too few urgent to tune one)
    urgent_delivered: float  # share of urgent validation mail delivered at once
    held: float  # share of all validation mail below it (waits for a batch)
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        rule = (
            f"threshold {self.threshold:.3f}"
            if self.threshold is not None
            else "too few urgent examples to tune a threshold for; urgent when likeliest"
        )
        return (
            f"would hold {self.held:.0%} of mail; {self.urgent_delivered:.0%} of urgent mail "
            f"delivered at once ({rule})"
        )


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


def choose_recall_threshold(p_positive: np.ndarray, positive: np.ndarray, target: float) -> float:
    """A cut that new positives reach with probability `target`, as measured on `positive`.

    A new positive's score is equally likely to fall in any of the n+1 gaps between the n
    validation scores, so the cut at the r-th lowest score, r = (n+1)(1-target), misses a
    share r/(n+1) = 1-target of new positives; a fractional r is interpolated between its
    neighbours. The plain empirical quantile (recall >= target on validation itself) misses
    more on new mail: at 28 urgent messages it delivers 93%, not 95%. Below one gap (fewer
    than 1/(1-target) positives), the lowest score is the cut. 0.0 without positives.
    """
    scores = np.sort(p_positive[positive])
    if scores.size == 0:
        return 0.0
    rank = max(1.0, (scores.size + 1) * (1 - target))
    low = min(int(rank), scores.size)
    high = min(low + 1, scores.size)
    fraction = rank - int(rank)
    return float(scores[low - 1] + fraction * (scores[high - 1] - scores[low - 1]))


def choose_precision_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """The lowest cut t with precision(confidence >= t) >= target (1.0+ when none reaches it)."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, order.size + 1)
    good = np.nonzero(precision >= target)[0]
    if good.size == 0:
        return float("inf")
    return float(confidence[order][good[-1]])


def apply_threshold(
    proba: np.ndarray, classes: Sequence[str], threshold: float | None
) -> list[str]:
    """Urgent when p(urgent) reaches the threshold; otherwise the likelier of the others.

    Without a threshold (too few urgent examples to tune one) the likeliest label wins.
    """
    urgent = list(classes).index(URGENT) if URGENT in classes else -1
    if threshold is None:
        return [classes[i] for i in proba.argmax(axis=1)]
    others = proba.copy()
    if urgent >= 0:
        others[:, urgent] = -1.0
    best = [classes[i] for i in others.argmax(axis=1)]
    if urgent < 0:
        return best
    return [URGENT if p >= threshold else b for p, b in zip(proba[:, urgent], best, strict=True)]


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _split(n: int) -> int:
    return max(1, min(n - 1, round(n * (1 - VALIDATION_SHARE))))


def train_urgency(
    samples: Sequence[Sample],
    labels: Sequence[str],
    *,
    recall_target: float = 0.95,
    seed: int = 0,
) -> tuple[Pipeline, UrgencyReport]:
    """Fit the urgency model on samples in date order (oldest first)."""
    started = time.perf_counter()
    counts = Counter(labels)
    if len(samples) < 20 or len(counts) < 2:
        raise TrainingError(
            f"need at least 20 messages of at least two kinds to train; got {len(samples)} "
            f"({', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'})"
        )
    cut = _split(len(samples))
    y = np.asarray(labels)
    calibrate = min(counts.values()) >= MIN_CALIBRATION_EXAMPLES
    # Thresholds are measured on mail as it arrived; rebuilt messages only teach, unless
    # without them there are too few urgent messages to measure on at all.
    real = np.asarray([not sample.rebuilt for sample in samples])
    if np.sum((y == URGENT) & real) < MIN_THRESHOLD_URGENT:
        real[:] = True
    real_urgent = (y == URGENT) & real
    validation = "time-ordered: trained on older mail, tested on the newest"
    newest_urgent = int(real_urgent[cut:].sum())
    # Time order when the newest mail can tune the threshold, or when nothing else could
    # (fewer urgent messages in all the mail than a threshold needs, but some in the newest).
    if (
        newest_urgent >= MIN_THRESHOLD_URGENT
        or counts[URGENT] < 3
        or (newest_urgent >= MIN_VALIDATION_URGENT and real_urgent.sum() < MIN_THRESHOLD_URGENT)
    ):
        probe = urgency_pipeline(seed, calibrate=calibrate).fit(list(samples[:cut]), y[:cut])
        measured = cut + np.flatnonzero(real[cut:])
        proba, classes = decision_scores(probe, [samples[int(i)] for i in measured])
    else:
        # The newest mail holds too few urgent messages to measure recall on, so the
        # threshold comes from out-of-fold predictions over all the mail instead.
        validation = "3-fold cross-validation (too few urgent messages in the newest mail)"
        folds = StratifiedKFold(3, shuffle=True, random_state=seed)
        measured = np.flatnonzero(real)
        proba = cross_val_predict(
            urgency_pipeline(seed, calibrate=calibrate),
            list(samples),
            y,
            cv=folds,
            method="predict_proba",
        )[measured]
        classes = sorted(counts)
        cut = 0
    truth = y[measured]
    urgent_truth = truth == URGENT
    threshold: float | None = None
    if URGENT in classes and urgent_truth.sum() >= MIN_THRESHOLD_URGENT:
        p_urgent = proba[:, classes.index(URGENT)]
        threshold = choose_recall_threshold(p_urgent, urgent_truth, recall_target)
        if np.mean(p_urgent[~urgent_truth] < threshold) < MIN_HELD_SHARE:
            # A cut that holds (almost) nothing is no triage at all: the model cannot tell
            # urgent mail apart at that recall, so the likeliest label decides instead.
            threshold = None
    predicted = np.asarray(apply_threshold(proba, classes, threshold))
    per_class = {}
    for label in sorted(counts):
        chosen = predicted == label
        actual = truth == label
        hits = int(np.sum(chosen & actual))
        per_class[label] = ClassMetrics(
            precision=hits / max(1, int(chosen.sum())),
            recall=hits / max(1, int(actual.sum())),
            support=int(actual.sum()),
        )
    delivered = float(np.mean(predicted[urgent_truth] == URGENT)) if urgent_truth.any() else 1.0
    held = float(np.mean(predicted != URGENT))
    final = urgency_pipeline(seed, calibrate=calibrate).fit(list(samples), y)
    if threshold is not None:
        threshold = _transfer_threshold(final, [samples[int(i)] for i in measured], held)
    report = UrgencyReport(
        counts=dict(counts),
        validation=validation,
        trained_on=cut,
        validated_on=len(truth),
        threshold=threshold,
        urgent_delivered=delivered,
        held=held,
        per_class=per_class,
        seconds=time.perf_counter() - started,
    )
    return final, report


def _transfer_threshold(final: Pipeline, validation: list[Sample], held: float) -> float:
    """The final model's cut that holds the same share of the validation mail.

    The threshold was measured on a model fitted without the validation mail; the final
    model, fitted on everything, scores on another scale (calibration on a few dozen urgent
    messages is rough). What carries over is the decision: the share of mail delivered at
    once. So the final cut is the quantile of the final model's scores at that share.
    """
    proba, classes = decision_scores(final, validation)
    scores = proba[:, classes.index(URGENT)]
    if held <= 0.0:
        return float(scores.min())
    return float(np.quantile(scores, held, method="higher"))


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
    # they run side by side. The result is the same either way: each fit is seeded.
    with ThreadPoolExecutor(max_workers=min(2, usable_cpus())) as pool:
        probe_job = pool.submit(accounts_pipeline(seed).fit, list(samples[:cut]), y[:cut])
        final_job = pool.submit(accounts_pipeline(seed).fit, list(samples), y)
        scores, classes = decision_scores(probe_job.result(), list(samples[cut:]))
        del probe_job  # weights are accounts x 2^18 floats: free the probe's before the end
        final = final_job.result()
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
