"""The figures of an evaluation, from arrays: labels y in {0, 1} and probabilities p in [0, 1].

Pure (arrays in, an EvaluationResult out, numpy only, no database, no files), so every figure
can be checked against a hand-computed example and against scikit-learn (tests/test_metrics.py).
`leadscore evaluate` (leadscore.evaluate) stores these figures in ops.evaluations; the quality
benchmark (bench/quality.py) uses the same code. Definitions, for n leads:

* F1 at the cutoff c: flagged = p >= c (as `predicted_converted`); F1 = 2 TP / (2 TP + FP + FN),
  0 when that denominator is 0.
* best F1: the largest F1 over every cutoff equal to one of the observed p (flag p >= t); ties
  between cutoffs go to the highest. `best_cutoff` is that t.
* AUC: area under the ROC curve, ties in p counted as one half (the Mann-Whitney statistic,
  = sklearn.metrics.roc_auc_score). None when all labels are equal.
* average precision: sum over distinct thresholds, highest first, of (R_k - R_{k-1}) * P_k, tied
  scores forming one threshold (= sklearn.metrics.average_precision_score, no interpolation).
  None when there is no positive.
* log-loss: mean of -[y ln q + (1 - y) ln(1 - q)] with q = p clipped to [1e-15, 1 - 1e-15]
  (natural log; a score of exactly 0 or 1 is finite but heavily penalised).
* Brier score: mean of (p - y)^2.
* flagged share: share of the evaluated leads with p >= c, to compare with the actual positive
  rate (mean of y); `flagged_ratio` = flagged share / actual rate.
* the F1 interval (`f1_intervals`): the 2.5% and 97.5% quantiles of F1 over bootstrap
  resamples of the leads (2,000, seeded, so the same outcomes give the same interval): how far
  F1 on this many leads moves from the sample alone (at 6,000 leads and 500 conversions a
  standard deviation of about 0.02, an interval of about +-0.035), and, for two sets of flags
  on the same leads, of their paired difference.

leadscore.operating_point has similar functions for training (`f1_at`, `best_f1`, `log_loss`:
a cutoff chosen on out-of-fold scores, with sample weights). They are not reused
here because they define two figures differently: log-loss clips to [1e-7, 1 - 1e-7], and the
F1-optimal cutoff is the lowest of tied scores, moved halfway to the next lower score. Using
them would change the figures stored in ops.evaluations (and the definitions written beside
them). They also need scikit-learn, which these figures are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.errors import LeadscoreError

LOG_LOSS_EPS = 1e-15
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 1


@dataclass(frozen=True)
class EvaluationResult:
    """Every figure of one evaluation (definitions in the module doc)."""

    rows: int
    positives: int
    actual_positive_rate: float
    cutoff: float
    flagged: int
    flagged_share: float
    flagged_ratio: float | None          # flagged_share / actual_positive_rate (None: no positive)
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float                      # at the cutoff; 0 when nothing is flagged
    recall: float                         # at the cutoff; 0 when there is no positive
    f1: float                             # at the cutoff
    best_f1: float
    best_cutoff: float
    auc: float | None
    average_precision: float | None
    log_loss: float
    brier: float


def _check_arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or len(y) != len(p):
        raise LeadscoreError(f"labels and probabilities must be two 1-d arrays of one length, got {y.shape} and {p.shape}")
    if len(y) == 0:
        raise LeadscoreError("nothing to evaluate: no labeled lead with a score")
    if not np.isin(y, (0, 1)).all():
        raise LeadscoreError("labels must be 0 or 1")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise LeadscoreError("probabilities must be finite and within 0..1")
    return y.astype(np.int64), p


def _threshold_counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores, highest first, with the TP and FP counts of flagging p >= each one."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(ps) != 0), len(ps) - 1]
    tp = np.cumsum(ys)[last_of_group]
    fp = (last_of_group + 1) - tp
    return ps[last_of_group], tp.astype(np.float64), fp.astype(np.float64)


def pr_curve(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at every distinct score, highest threshold first."""
    y, p = _check_arrays(y, p)
    thr, tp, fp = _threshold_counts(y, p)
    positives = float(y.sum())
    precision = tp / (tp + fp)
    recall = tp / positives if positives else np.zeros_like(tp)
    return precision, recall, thr


def evaluate_scores(y: Any, p: Any, cutoff: float) -> EvaluationResult:
    """Every figure of an evaluation from labels `y` (0/1) and probabilities `p` (see module doc)."""
    y, p = _check_arrays(y, p)
    n = len(y)
    pos = int(y.sum())
    neg = n - pos

    flagged = p >= cutoff
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = pos - tp
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0

    thr, tps, fps = _threshold_counts(y, p)
    f1s = 2 * tps / (tps + fps + pos)  # tps + fps >= 1 at every threshold
    best = int(np.argmax(f1s))  # first maximum = highest cutoff among ties

    if pos and neg:
        tpr = np.r_[0.0, tps / pos]
        fpr = np.r_[0.0, fps / neg]
        auc: float | None = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    else:
        auc = None
    if pos:
        recall = tps / pos
        average_precision: float | None = float(np.sum(np.diff(np.r_[0.0, recall]) * tps / (tps + fps)))
    else:
        average_precision = None

    q = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    log_loss = float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))
    brier = float(np.mean((p - y) ** 2))
    rate = pos / n
    n_flagged = int(flagged.sum())
    share = n_flagged / n
    return EvaluationResult(
        rows=n,
        positives=pos,
        actual_positive_rate=rate,
        cutoff=float(cutoff),
        flagged=n_flagged,
        flagged_share=share,
        # from the counts: share / rate rounds twice (468/585 leads came out 0.7999999999999999)
        flagged_ratio=n_flagged / pos if pos else None,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / pos if pos else 0.0,
        f1=float(f1),
        best_f1=float(f1s[best]),
        best_cutoff=float(thr[best]),
        auc=auc,
        average_precision=average_precision,
        log_loss=log_loss,
        brier=brier,
    )


def f1_intervals(y: Any, flagged: Any, other: Any | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """95% bootstrap interval of F1 for the leads flagged `flagged` and, when `other` flags the
    same leads by another model, of F1 - F1(other), the leads resampled once for both (paired).

    Two models' F1 on the same leads are correlated, so their paired difference, not two
    separate intervals, says whether one is worse. F1 depends on a resample only through how
    many of its leads fall in each cell of (outcome, flagged, other flagged), so a resample of n
    leads is drawn as one multinomial over those 8 cells: the same distribution as resampling
    the leads, at a cost that does not grow with n."""
    y = np.asarray(y, dtype=bool)
    a = np.asarray(flagged, dtype=bool)
    b = np.zeros_like(a) if other is None else np.asarray(other, dtype=bool)
    if not (len(y) == len(a) == len(b)) or len(y) == 0:
        raise LeadscoreError(f"f1_intervals needs labels and flags of one non-zero length, got {len(y)}, {len(a)}, "
                             f"{len(b)}")
    n = len(y)
    cells = np.bincount(y * 4 + a * 2 + b, minlength=8)  # index: outcome, flagged, other flagged
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=resamples).astype(np.float64)
    outcome, by_a, by_b = (np.arange(8) >> 2) & 1, (np.arange(8) >> 1) & 1, np.arange(8) & 1

    def f1(flag_bit: np.ndarray) -> np.ndarray:
        tp = draws[:, (outcome == 1) & (flag_bit == 1)].sum(axis=1)
        wrong = draws[:, outcome != flag_bit].sum(axis=1)  # false positives and false negatives
        denominator = 2 * tp + wrong
        return np.divide(2 * tp, denominator, out=np.zeros(resamples), where=denominator > 0)

    f1_a = f1(by_a)
    out: dict[str, Any] = {"f1_ci95": [float(x) for x in np.quantile(f1_a, [0.025, 0.975])],
                           "resamples": resamples}
    if other is not None:
        out["diff_ci95"] = [float(x) for x in np.quantile(f1_a - f1(by_b), [0.025, 0.975])]
    return out
