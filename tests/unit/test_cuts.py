"""Choosing cuts on validation scores: the urgent cut under a hold constraint, messages the rules
deliver anyway, and the precision cut for bulk and accounts."""

from __future__ import annotations

import numpy as np
import pytest

from commsproxy.classifier.cuts import (
    choose_precision_threshold,
    choose_recall_threshold,
    choose_urgent_cut,
    outcome,
)


def scores(urgent: list[float], others: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """p(urgent) of urgent then other messages, and which are urgent."""
    p = np.asarray(urgent + others, dtype=np.float64)
    return p, np.arange(p.size) < len(urgent)


def forced_none(p: np.ndarray) -> np.ndarray:
    return np.zeros(p.size, dtype=bool)


# -- outcome ---------------------------------------------------------------------------------


def test_outcome_counts_delivered_urgent_and_held_others() -> None:
    p, urgent = scores([0.9, 0.5, 0.1], [0.6, 0.2, 0.1, 0.0])
    assert outcome(p, urgent, forced_none(p), 0.5) == pytest.approx((2 / 3, 0.75))
    # A forced message is delivered: an urgent one counts as delivered, another as not held.
    forced = np.asarray([False, False, True, False, True, False, False])
    assert outcome(p, urgent, forced, 0.5) == (1.0, 0.5)


def test_outcome_without_urgent_or_other_mail() -> None:
    p = np.asarray([0.2, 0.8])
    assert outcome(p, np.zeros(2, bool), forced_none(p), 0.5) == (1.0, 0.5)
    assert outcome(p, np.ones(2, bool), forced_none(p), 0.5) == (0.5, 0.0)


# -- the urgent cut --------------------------------------------------------------------------


def test_separable_scores_meet_both_targets() -> None:
    # 19 urgent at 0.50..0.95, 40 others at 0.00..0.39: (19+1) * 5% = 1 miss allowed.
    p, urgent = scores(list(np.linspace(0.5, 0.95, 19)), list(np.linspace(0.0, 0.39, 40)))
    cut = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.95, min_held=0.5)
    assert cut.threshold == pytest.approx(0.5)  # the lowest urgent score
    assert cut.delivered == 1.0
    assert cut.held == 1.0
    assert cut.feasible
    assert cut.urgent == 19


def test_hold_constraint_raises_the_cut_and_reports_infeasible() -> None:
    # Urgent mail scores like the rest: the recall cut (the lowest urgent score, 0.05) would
    # hold only 10% of the other mail.
    urgent_scores = [0.05 * i for i in range(1, 20)]
    others = [0.04] * 4 + [0.1 * i for i in range(1, 10)] * 4
    p, urgent = scores(urgent_scores, others)
    recall_only = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.95, min_held=0.0)
    assert recall_only.threshold == pytest.approx(0.05)
    assert recall_only.held == pytest.approx(0.1)
    assert recall_only.feasible

    cut = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.95, min_held=0.5)
    assert not cut.feasible
    assert cut.threshold > recall_only.threshold
    assert cut.held >= 0.5
    # Just above the 20th lowest other score (0.4): holds 4 + 4 * 4 = 20 of 40, no more.
    assert cut.threshold == pytest.approx(0.4)
    assert cut.threshold > 0.4
    assert cut.held == 0.5
    assert cut.delivered < 0.95
    assert (cut.delivered, cut.held) == outcome(p, urgent, forced_none(p), cut.threshold)


def test_max_held_lowers_the_cut_for_more_recall() -> None:
    p, urgent = scores(list(np.linspace(0.5, 0.95, 19)), list(np.linspace(0.0, 0.39, 40)))
    cut = choose_urgent_cut(
        p, urgent, forced_none(p), recall_target=0.95, min_held=0.5, max_held=0.7
    )
    assert cut.feasible
    assert cut.threshold < 0.5
    assert cut.held == pytest.approx(0.7)  # 28 of 40
    assert cut.delivered == 1.0


def test_max_held_leaves_a_cut_that_holds_less_alone() -> None:
    p, urgent = scores(list(np.linspace(0.5, 0.95, 19)), list(np.linspace(0.0, 0.39, 40)))
    plain = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.95, min_held=0.5)
    capped = choose_urgent_cut(
        p, urgent, forced_none(p), recall_target=0.95, min_held=0.5, max_held=1.0
    )
    assert capped == plain


def test_forced_messages_count_as_delivered() -> None:
    # Two urgent messages score lowest of all, but the rules deliver them (explicit cues):
    # the cut need not fall to them.
    urgent_scores = [0.01, 0.02, *np.linspace(0.5, 0.95, 17)]
    p, urgent = scores(urgent_scores, list(np.linspace(0.1, 0.39, 40)))
    forced = np.zeros(p.size, dtype=bool)
    forced[:2] = True
    cut = choose_urgent_cut(p, urgent, forced, recall_target=0.95, min_held=0.5)
    assert cut.threshold == pytest.approx(0.5)
    assert cut.delivered == 1.0
    assert cut.held == 1.0
    assert cut.feasible
    # Without the rules the cut falls to 0.01 and holds nothing.
    unforced = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.95, min_held=0.0)
    assert unforced.threshold == pytest.approx(0.01)
    assert unforced.held == 0.0


def test_forced_other_mail_is_not_held() -> None:
    p, urgent = scores(list(np.linspace(0.5, 0.95, 19)), list(np.linspace(0.0, 0.39, 40)))
    forced = np.zeros(p.size, dtype=bool)
    forced[19:39] = True  # half the other mail carries a cue
    cut = choose_urgent_cut(p, urgent, forced, recall_target=0.95, min_held=0.6)
    assert cut.held == 0.5
    assert not cut.feasible  # nothing can be raised to hold what the rules deliver


def test_no_urgent_mail() -> None:
    p = np.linspace(0.0, 0.9, 10)
    cut = choose_urgent_cut(p, np.zeros(10, bool), forced_none(p), recall_target=0.95, min_held=0.5)
    assert cut.urgent == 0
    assert cut.delivered == 1.0
    assert cut.held == 1.0  # the cut is 1.0: everything waits
    assert cut.feasible


def test_all_urgent_mail_forced() -> None:
    p, urgent = scores([0.1, 0.2, 0.3], list(np.linspace(0.0, 0.9, 10)))
    forced = urgent.copy()
    cut = choose_urgent_cut(p, urgent, forced, recall_target=0.95, min_held=0.5)
    assert cut.threshold == 1.0
    assert cut.delivered == 1.0
    assert cut.held == 1.0
    assert cut.feasible
    assert cut.urgent == 3


def test_only_urgent_mail_holds_nothing() -> None:
    p = np.linspace(0.1, 0.9, 9)
    cut = choose_urgent_cut(p, np.ones(9, bool), forced_none(p), recall_target=0.95, min_held=0.5)
    assert cut.held == 0.0
    assert not cut.feasible
    assert cut.delivered == 1.0


def test_urgent_cut_agrees_with_the_recall_cut_without_forced_mail() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(200)
    urgent = rng.random(200) < 0.2
    cut = choose_urgent_cut(p, urgent, forced_none(p), recall_target=0.9, min_held=0.0)
    assert cut.threshold == pytest.approx(choose_recall_threshold(p, urgent, 0.9))


# -- precision cut ---------------------------------------------------------------------------


def test_precision_cut_is_the_lowest_that_meets_the_target() -> None:
    confidence = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.asarray([True, True, False, True, False])
    # Precision from the top: 1, 1, 2/3, 3/4, 3/5.
    assert choose_precision_threshold(confidence, correct, 0.75) == 0.6
    assert choose_precision_threshold(confidence, correct, 0.9) == 0.8
    assert choose_precision_threshold(confidence, correct, 0.6) == 0.5


def test_precision_cut_when_nothing_reaches_the_target() -> None:
    confidence = np.asarray([0.9, 0.8])
    assert choose_precision_threshold(confidence, np.asarray([False, True]), 0.97) == np.inf
    assert choose_precision_threshold(np.zeros(0), np.zeros(0, bool), 0.97) == np.inf
