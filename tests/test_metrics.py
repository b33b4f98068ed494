"""leadscore.metrics at array level: the figures of `leadscore evaluate` against hand-computed
examples and against scikit-learn (AUC and average precision with tied scores included), the
tie rule for the best cutoff, the precision-recall curve and the checks on the input arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leadscore.errors import LeadscoreError
from leadscore.metrics import evaluate_scores, f1_intervals, pr_curve

# ------------------------------------------------------------------------ hand-computed example

# 10 leads, best score first; 4 converted, 6 did not.
HAND_P = [0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05]
HAND_Y = [1, 1, 0, 1, 0, 0, 1, 0, 0, 0]


def test_hand_computed_example():
    r = evaluate_scores(np.array(HAND_Y), np.array(HAND_P), cutoff=0.5)
    # cutoff 0.5 flags 0.9 0.8 0.7 0.6 0.55: TP = 3 (0.9 0.8 0.6), FP = 2 (0.7 0.55), FN = 1 (0.3)
    assert (r.true_positives, r.false_positives, r.false_negatives, r.flagged) == (3, 2, 1, 5)
    # F1 = 2TP / (2TP + FP + FN) = 6 / 9; precision 3/5, recall 3/4
    assert r.f1 == pytest.approx(6 / 9)
    assert r.precision == pytest.approx(0.6)
    assert r.recall == pytest.approx(0.75)
    # best cutoff: F1 at t = 0.9 .. 0.05 is 2/5, 4/6, 4/7, 6/8, 6/9, 6/10, 8/11, 8/12, 8/13, 8/14:
    # the best is 6/8 = 0.75 at t = 0.6
    assert r.best_f1 == pytest.approx(0.75)
    assert r.best_cutoff == pytest.approx(0.6)
    # AUC: (positive, negative) pairs ranked right, of 4 x 6 = 24:
    # 0.9 -> 6, 0.8 -> 6, 0.6 -> 5 (all but 0.7), 0.3 -> 3 (0.2 0.1 0.05): 20 / 24
    assert r.auc == pytest.approx(20 / 24)
    # AP: precision where each positive is reached: 1/1, 2/2, 3/4, 4/7; mean = (2.75 + 4/7) / 4
    assert r.average_precision == pytest.approx((1 + 1 + 3 / 4 + 4 / 7) / 4)  # 0.830357
    # log-loss: -(2 ln .9 + 2 ln .8 + 2 ln .6 + 2 ln .3 + ln .45 + ln .95) / 10
    #   = (2 * (0.1053605 + 0.2231436 + 0.5108256 + 1.2039728) + 0.7985077 + 0.0512933) / 10
    #   = (4.0866050 + 0.8498010) / 10 = 0.4936406
    assert r.log_loss == pytest.approx(0.4936406, abs=1e-6)
    # Brier: (.01 + .04 + .49 + .16 + .3025 + .16 + .49 + .04 + .01 + .0025) / 10 = 1.705 / 10
    assert r.brier == pytest.approx(0.1705)
    # 5 of 10 flagged against 4 of 10 converted: 1.25x
    assert r.flagged_share == pytest.approx(0.5)
    assert r.actual_positive_rate == pytest.approx(0.4)
    assert r.flagged_ratio == pytest.approx(1.25)
    assert (r.rows, r.positives) == (10, 4)


def test_metrics_agree_with_sklearn_with_tied_scores():
    from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    p = np.round(rng.beta(0.6, 4.0, 500), 2)  # many ties
    y = (rng.random(500) < p * 1.4).astype(int)
    r = evaluate_scores(y, p, cutoff=0.2)
    assert r.f1 == pytest.approx(f1_score(y, p >= 0.2))
    assert r.auc == pytest.approx(roc_auc_score(y, p))
    assert r.average_precision == pytest.approx(average_precision_score(y, p))
    assert r.brier == pytest.approx(brier_score_loss(y, p))
    q = np.clip(p, 1e-15, 1 - 1e-15)
    assert r.log_loss == pytest.approx(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    best = max(f1_score(y, p >= t) for t in np.unique(p))
    assert r.best_f1 == pytest.approx(best)
    assert f1_score(y, p >= r.best_cutoff) == pytest.approx(best)


def test_edge_cases_one_class_and_clipped_log_loss():
    r = evaluate_scores([0, 0, 0], [0.1, 0.2, 0.9], cutoff=0.5)
    assert r.auc is None and r.average_precision is None and r.flagged_ratio is None
    assert r.f1 == 0.0 and r.recall == 0.0 and r.precision == 0.0
    # a converted lead scored exactly 0 costs -ln(1e-15) = 34.54, not infinity
    r = evaluate_scores([1, 0], [0.0, 0.0], cutoff=0.5)
    assert r.log_loss == pytest.approx(-math.log(1e-15) / 2)
    assert r.flagged == 0 and r.f1 == 0.0 and r.auc == pytest.approx(0.5)
    with pytest.raises(LeadscoreError):
        evaluate_scores([], [], cutoff=0.5)


def test_a_score_equal_to_the_cutoff_is_flagged():
    r = evaluate_scores([1, 0, 0], [0.5, 0.4, 0.5], cutoff=0.5)
    assert (r.flagged, r.true_positives, r.false_positives, r.false_negatives) == (2, 1, 1, 0)
    assert r.f1 == pytest.approx(2 / 3)


def test_tied_best_f1_takes_the_highest_cutoff():
    # 2 positives; flagging the top 1 gives F1 = 2*1 / (1 + 2) = 2/3, the top 2: 2/4, the top 3:
    # 2/5, all 4: 2*2 / (4 + 2) = 2/3 again. The tie goes to the highest cutoff, 0.9.
    r = evaluate_scores([1, 0, 0, 1], [0.9, 0.6, 0.4, 0.2], cutoff=0.5)
    assert r.best_f1 == pytest.approx(2 / 3)
    assert r.best_cutoff == 0.9


def test_perfect_and_uninformative_rankings():
    r = evaluate_scores([1, 1, 0, 0, 0], [0.9, 0.7, 0.3, 0.2, 0.1], cutoff=0.5)
    assert (r.auc, r.average_precision, r.best_f1, r.f1) == (1.0, 1.0, 1.0, 1.0)
    assert r.best_cutoff == 0.7
    # one score for every lead: one threshold, AUC 1/2, AP = the positive rate, best F1 flags all
    r = evaluate_scores([1, 0, 0, 1], [0.3, 0.3, 0.3, 0.3], cutoff=0.5)
    assert r.auc == pytest.approx(0.5)
    assert r.average_precision == pytest.approx(0.5)
    assert r.best_f1 == pytest.approx(2 * 2 / (4 + 2)) and r.best_cutoff == 0.3
    assert r.flagged == 0 and r.f1 == 0.0


def test_all_positive_has_average_precision_but_no_auc():
    r = evaluate_scores([1, 1], [0.2, 0.6], cutoff=0.5)
    assert r.auc is None
    assert r.average_precision == pytest.approx(1.0)
    assert r.flagged_ratio == pytest.approx(0.5)
    assert r.log_loss == pytest.approx(-(math.log(0.2) + math.log(0.6)) / 2)


def test_pr_curve_hand_computed_with_ties():
    # thresholds 0.8 (rows 1-2: 1 TP, 1 FP), 0.5 (+ rows 3-4: 3 TP, 1 FP), 0.2 (+ row 5: 3 TP, 2 FP)
    precision, recall, thr = pr_curve([1, 0, 1, 1, 0], [0.8, 0.8, 0.5, 0.5, 0.2])
    assert thr.tolist() == [0.8, 0.5, 0.2]
    assert precision.tolist() == pytest.approx([1 / 2, 3 / 4, 3 / 5])
    assert recall.tolist() == pytest.approx([1 / 3, 1.0, 1.0])


def test_pr_curve_without_positives_has_zero_recall():
    precision, recall, thr = pr_curve([0, 0], [0.4, 0.1])
    assert thr.tolist() == [0.4, 0.1]
    assert precision.tolist() == [0.0, 0.0] and recall.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pr_curve_and_cutoff_figures_agree_with_sklearn(seed):
    from sklearn.metrics import precision_recall_curve, precision_score, recall_score

    rng = np.random.default_rng(seed)
    p = np.round(rng.random(300), 2)  # ties
    y = (rng.random(300) < p).astype(int)
    precision, recall, thr = pr_curve(y, p)
    sk_precision, sk_recall, sk_thr = precision_recall_curve(y, p)
    # scikit-learn: lowest threshold first, then a final (precision 1, recall 0) point
    assert thr.tolist() == sk_thr[::-1].tolist()
    assert precision == pytest.approx(sk_precision[:-1][::-1])
    assert recall == pytest.approx(sk_recall[:-1][::-1])
    r = evaluate_scores(y, p, cutoff=0.5)
    assert r.precision == pytest.approx(precision_score(y, p >= 0.5))
    assert r.recall == pytest.approx(recall_score(y, p >= 0.5))


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [
        ([0, 1], [0.5], "two 1-d arrays of one length"),
        ([[0, 1]], [[0.5, 0.5]], "two 1-d arrays of one length"),
        ([0, 2], [0.5, 0.5], "labels must be 0 or 1"),
        ([0, 1], [0.5, 1.5], "within 0..1"),
        ([0, 1], [0.5, -0.1], "within 0..1"),
        ([0, 1], [0.5, float("nan")], "finite"),
    ],
)
def test_bad_arrays_are_refused(y, p, expected):
    with pytest.raises(LeadscoreError, match=expected):
        evaluate_scores(y, p, cutoff=0.5)
    with pytest.raises(LeadscoreError, match=expected):
        pr_curve(y, p)


def test_flagged_ratio_at_the_edge_is_exact():
    # 468 flagged of 5,000 leads against 585 positives is 0.8 exactly; share / rate gave
    # 0.7999999999999999, which failed a check of "at least 0.8x"
    y = np.r_[np.ones(585, dtype=int), np.zeros(4415, dtype=int)]
    p = np.r_[np.full(468, 0.9), np.full(5000 - 468, 0.1)]
    r = evaluate_scores(y, p, cutoff=0.5)
    assert r.flagged_ratio == 0.8 and 0.8 <= r.flagged_ratio


# ------------------------------------------------------------------ the F1 interval (bootstrap)


def _labels(n: int = 4000, rate: float = 0.1, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


def _f1(y: np.ndarray, flag: np.ndarray) -> float:
    tp = int((flag & y).sum())
    return 2 * tp / (2 * tp + int((flag & ~y).sum()) + int((~flag & y).sum()))


def test_the_f1_interval_holds_the_figure_and_a_model_against_itself_differs_by_nothing():
    y = _labels()
    rng = np.random.default_rng(0)
    flag = np.where(y, rng.random(len(y)) < 0.7, rng.random(len(y)) < 0.03)
    got = f1_intervals(y, flag, flag, resamples=500)
    lo, hi = got["f1_ci95"]
    assert lo < _f1(y, flag) < hi and hi - lo < 0.1
    assert got["diff_ci95"] == [0.0, 0.0]


def test_a_clearly_better_model_has_a_paired_interval_above_zero_and_a_near_copy_straddles_it():
    y = _labels()
    rng = np.random.default_rng(1)
    good = np.where(y, rng.random(len(y)) < 0.8, rng.random(len(y)) < 0.02)
    poor = np.where(y, rng.random(len(y)) < 0.5, rng.random(len(y)) < 0.05)
    assert f1_intervals(y, good, poor, resamples=500)["diff_ci95"][0] > 0
    near = good.copy()
    near[np.flatnonzero(~y)[:3]] = True  # three more false alarms
    lo, hi = f1_intervals(y, near, good, resamples=500)["diff_ci95"]
    assert lo < 0 <= hi or lo <= 0 < hi
    assert f1_intervals(y, good, resamples=500).get("diff_ci95") is None


@pytest.mark.parametrize("seed", [0, 7])
def test_the_intervals_repeat_for_a_seed(seed):
    y = _labels()
    flag = np.random.default_rng(2).random(len(y)) < 0.1
    a = f1_intervals(y, flag, ~flag, resamples=200, seed=seed)
    assert a == f1_intervals(y, flag, ~flag, resamples=200, seed=seed)


def test_the_multinomial_draw_is_the_bootstrap_of_the_leads():
    """f1_intervals draws each resample as counts over 8 cells; a resample of the leads
    themselves must give the same interval, within the Monte Carlo error of 2,000 draws."""
    y = _labels(n=3000)
    rng = np.random.default_rng(4)
    flag = np.where(y, rng.random(len(y)) < 0.6, rng.random(len(y)) < 0.04)
    direct = []
    for _ in range(2000):
        i = rng.integers(0, len(y), len(y))
        direct.append(_f1(y[i], flag[i]))
    lo, hi = f1_intervals(y, flag)["f1_ci95"]
    assert abs(lo - np.quantile(direct, 0.025)) < 0.01 and abs(hi - np.quantile(direct, 0.975)) < 0.01


def test_the_interval_narrows_with_more_leads_and_refuses_mismatched_arrays():
    y = _labels()
    flag = np.where(y, np.random.default_rng(5).random(len(y)) < 0.7, False)
    lo, hi = f1_intervals(y, flag)["f1_ci95"]
    lo4, hi4 = f1_intervals(np.tile(y, 4), np.tile(flag, 4))["f1_ci95"]
    assert 0.4 < (hi4 - lo4) / (hi - lo) < 0.6  # four times the leads: half the width
    assert f1_intervals(y, y)["f1_ci95"] == [1.0, 1.0]  # every flag right in every resample
    with pytest.raises(LeadscoreError, match="one non-zero length"):
        f1_intervals(y, flag[:-1])
