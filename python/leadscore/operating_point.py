"""Probabilities, cutoffs and prevalence: where a model's scores become yes/no decisions.

Everything here takes arrays and returns numbers or arrays; nothing reads the database.

* Prior shift (`shift_prior`): the odds of a probability calibrated at rate `a` multiplied by
  odds(b) / odds(a) give the probability at rate `b` when only the class balance changed
  (Saerens et al. 2002). It maps a resampled model back to the training rate and the training
  rate to a scoring population's rate.
* Cutoff (`f1_optimal_cutoff`): the F1-maximising threshold on out-of-fold probabilities; with
  sample weights it is the *expected* F1 of a population whose classes are reweighted. A model's
  operating cutoff is `bagged_f1_cutoff`: the median of that threshold over bootstrap resamples.
* Prevalence of an unlabeled population (`estimate_prevalence`): the mixture of the two
  classes' binned out-of-fold score distributions that best explains the score rows' scores
  (maximum likelihood over 20 quantile bins), with a bootstrap standard error and a chi-square
  check of its assumption. Black-box shift estimation (BBSE, Lipton et al. 2018) is the same
  estimate with two bins, either side of the cutoff; it was the estimate until the binned one
  proved closer on the foreign data's shifted files (BBSE under-estimated a rate of 0.33-0.5 by
  0.01-0.02) and far less wrong when the score rows' features drift too, for 0.01 more error on
  the demo's 1:2 file (bench/QUALITY.md, "The prevalence estimate"). Both need only that
  p(score | y) is the same in training and scoring rows, not calibrated probabilities on the
  scoring rows; the EM of Saerens et al. on the probabilities themselves is computed beside
  them for comparison (it needs calibration on the scoring rows, which target-rate features do
  not guarantee: their evidence scale differs between out-of-fold training rows and score rows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# scikit-learn (and scipy behind it) is imported inside f1_optimal_cutoff, its only user here:
# scoring imports this module for shift_prior and does not need them (1.5 s of its start-up)


def _clip(p: np.ndarray | float) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)


def logit(p: np.ndarray | float) -> np.ndarray:
    p = _clip(p)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def shift_prior(p: np.ndarray, from_prior: float, to_prior: float) -> np.ndarray:
    """Probabilities calibrated at `from_prior` re-expressed at `to_prior` (odds ratio)."""
    if from_prior == to_prior:
        return np.asarray(p, dtype=np.float64)
    return sigmoid(logit(p) + float(logit(to_prior)) - float(logit(from_prior)))


def log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    p = _clip(p)
    y = np.asarray(y, dtype=np.float64)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(ll, weights=w))


def fold_log_losses(y: np.ndarray, p: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Log-loss of out-of-fold probabilities, one value per validation fold (for paired
    comparisons: the fold-to-fold spread is the noise a candidate must beat)."""
    return np.array([log_loss(y[va], p[va]) for _, va in folds])


def f1_optimal_cutoff(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """(cutoff, f1, precision, recall) maximising F1 for the rule `p >= cutoff`.

    Candidates are the distinct scores (scikit-learn's precision_recall_curve). The returned
    cutoff lies halfway between the chosen score and the next lower one, so it does not sit on a
    training score; the F1 on these rows is the same."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    from sklearn.metrics import precision_recall_curve

    prec, rec, thr = precision_recall_curve(y, p, sample_weight=sample_weight)
    prec, rec = prec[:-1], rec[:-1]
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
    i = int(np.argmax(f1))
    t = float(thr[i])
    below = p[p < t]
    cutoff = (t + float(below.max())) / 2 if below.size else t
    return cutoff, float(f1[i]), float(prec[i]), float(rec[i])


def f1_at(y: np.ndarray, p: np.ndarray, cutoff: float, sample_weight: np.ndarray | None = None) -> float:
    return rates_at(y, p, cutoff, sample_weight)[0]


def rates_at(y: np.ndarray, p: np.ndarray, cutoff: float,
             sample_weight: np.ndarray | None = None) -> tuple[float, float, float]:
    """(F1, precision, recall) of the rule `p >= cutoff`."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= cutoff
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    tp = float(w[pred & y].sum())
    fp = float(w[pred & ~y].sum())
    fn = float(w[~pred & y].sum())
    if tp == 0:
        return 0.0, 0.0, 0.0
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp), tp / (tp + fn)


CUTOFF_RESAMPLES = 30


def bagged_f1_cutoff(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None,
                     resamples: int = CUTOFF_RESAMPLES, seed: int = 0) -> tuple[float, float, float, float]:
    """(cutoff, f1, precision, recall): the median of the F1-maximising cutoffs of `resamples`
    bootstrap resamples of the rows, with F1, precision and recall at it on all the rows.

    Why not the plain argmax: near its maximum the F1 curve is flat, so which cutoff wins on one
    sample of rows moves with that sample's noise (its spread over random 90% subsets of 60,000
    out-of-fold rows: 0.008-0.024). The median over resamples keeps the cutoff and drops most of
    that noise. Judged on 150 random 90% / 10% splits of the blend's out-of-fold probabilities,
    F1 on the held-out tenth rose by 0.0006-0.0008 at the training rate on every world tested
    (2 s.e. 0.0002-0.0004), and stayed within -0.0001 to +0.0006 after a prior shift to 0.33
    (README, "What has and has not lifted foreign F1"). Same rows, weights and seed: the same
    cutoff."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    rng = np.random.default_rng(seed)
    cutoffs = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        yr = y[rows]
        if yr.min() == yr.max():  # a resample with one class has no F1 to maximise
            continue
        cutoffs.append(f1_optimal_cutoff(yr, p[rows], None if w is None else w[rows])[0])
    if not cutoffs:
        return f1_optimal_cutoff(y, p, w)
    cutoff = float(np.median(cutoffs))
    return (cutoff, *rates_at(y, p, cutoff, w))


def best_f1(y: np.ndarray, p: np.ndarray) -> float:
    return f1_optimal_cutoff(y, p)[1]


def prevalence_weights(y: np.ndarray, pi: float, target: float | None) -> np.ndarray | None:
    """Sample weights that turn training rows at rate pi into an expected population at `target`."""
    if target is None:
        return None
    y = np.asarray(y).astype(bool)
    return np.where(y, target / pi, (1 - target) / (1 - pi))


def estimate_prevalence_em(p: np.ndarray, pi: float, tol: float = 1e-7, max_iter: int = 10_000) -> float:
    """Saerens, Latinne & Decaestecker (2002): EM estimate of the positive rate of an unlabeled
    population from posteriors `p` calibrated at training rate `pi`."""
    p = np.asarray(p, dtype=np.float64)
    prior = pi
    for _ in range(max_iter):
        new = float(np.mean(shift_prior(p, pi, prior)))
        if abs(new - prior) < tol:
            prior = new
            break
        prior = new
    return float(np.clip(prior, 1e-4, 1 - 1e-4))


def bbse(tpr: float, fpr: float, flagged_share: float) -> float:
    """Black-box shift estimate for two classes: flagged = q * tpr + (1 - q) * fpr, solved for q."""
    if tpr - fpr <= 1e-9:
        return float("nan")
    return float(np.clip((flagged_share - fpr) / (tpr - fpr), 1e-4, 1 - 1e-4))


# The score scale is cut into this many bins at quantiles of the training rows' out-of-fold
# scores for the prevalence estimate. BBSE is the same estimate with two bins (either side of one
# cutoff); more bins read more of each class's score distribution (Garg et al. 2020: the finer the
# calibration, the lower the estimate's error), and 20 to 40 gave the same estimates on every
# world tried (README "The model and its operating point").
PREVALENCE_BINS = 20
# Below this p-value the score rows' scores are not a mixture of the two training classes' score
# distributions: more than the class balance changed, and the estimate's interval does not cover
# the error that makes.
LABEL_SHIFT_P_VALUE = 0.001


def score_bin_edges(oof: np.ndarray, bins: int = PREVALENCE_BINS) -> np.ndarray:
    """The inner edges of `bins` bins at quantiles of the out-of-fold scores (ties merge bins)."""
    return np.unique(np.quantile(np.asarray(oof, dtype=np.float64), np.linspace(0, 1, bins + 1)))[1:-1]


def bin_shares(bin_of_row: np.ndarray, k: int) -> np.ndarray:
    """The share of rows in each of `k` bins, each bin with half a row added, so that a bin a
    class never reaches is unlikely for it rather than impossible."""
    return (np.bincount(bin_of_row, minlength=k) + 0.5) / (len(bin_of_row) + 0.5 * k)


def class_histograms(bin_of_train: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """P(bin | converted) and P(bin | not converted) over the training rows (`bin_shares`)."""
    y = np.asarray(y).astype(bool)
    return bin_shares(bin_of_train[y], k), bin_shares(bin_of_train[~y], k)


def mixture_rate(h1: np.ndarray, h0: np.ndarray, counts: np.ndarray, start: float, tol: float = 1e-9,
                 max_iter: int = 10_000) -> float:
    """The maximum-likelihood share q of converters among rows whose bins were counted
    (`counts`), when each row's bin is drawn from q * h1 + (1 - q) * h0: EM over the bins."""
    q, n = start, float(counts.sum())
    for _ in range(max_iter):
        new = float(np.sum(counts * (q * h1 / (q * h1 + (1 - q) * h0))) / n)
        if abs(new - q) < tol:
            q = new
            break
        q = new
    return float(np.clip(q, 1e-4, 1 - 1e-4))


@dataclass
class PrevalenceEstimate:
    method: str
    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    em_estimate: float
    tpr: float
    fpr: float
    flagged_share: float
    score_rows: int
    # added with the binned estimate: BBSE's figure beside it, and the check of its assumption
    bbse_estimate: float | None = None
    bins: int | None = None
    fit_chi2: float | None = None
    fit_df: int | None = None
    fit_p_value: float | None = None

    @property
    def label_shift_holds(self) -> bool:
        """False where the score rows' scores are not a mixture of the training classes' (the
        check's p-value under LABEL_SHIFT_P_VALUE): the estimate may then be off by more than
        its interval says."""
        return self.fit_p_value is None or self.fit_p_value >= LABEL_SHIFT_P_VALUE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label_shift_holds": self.label_shift_holds}

    def warning(self) -> str | None:
        """The line to print when the label-shift check fails, else None."""
        if self.label_shift_holds:
            return None
        return (f"the score rows' scores are not a mixture of the training classes' (chi-square {self.fit_chi2:.1f} "
                f"on {self.fit_df} degrees of freedom, p = {self.fit_p_value:.1e}): more than the class balance "
                f"changed, so the prevalence estimate {self.estimate:.4f} may be off by more than its interval "
                f"(BBSE at the cutoff says {self.bbse_estimate:.4f}); give the rate with --target-prevalence if it is known")


def estimate_prevalence(y_train: np.ndarray, oof: np.ndarray, cutoff: float, p_score: np.ndarray, pi: float,
                        seed: int = 0, n_boot: int = 400, bins: int = PREVALENCE_BINS) -> PrevalenceEstimate:
    """Positive rate of the scoring rows: the maximum-likelihood mixture of the two classes'
    out-of-fold score distributions, binned (`bins` quantile bins), that best explains the score
    rows' scores (MLLS, Saerens et al. 2002, on histogram-binned scores; Alexandari et al. 2020).

    Like BBSE it needs only that p(score | class) is the same in training and scoring rows, not
    calibrated probabilities on the scoring rows, and a monotone distortion of the scores moves
    no row across a quantile bin. The standard error bootstraps both sides (training rows and
    score rows resampled independently). A chi-square test of the fitted mixture against the
    score rows' bin counts checks the assumption itself (`label_shift_holds`). BBSE at `cutoff`
    and the EM on calibrated probabilities are kept beside it for comparison."""
    y = np.asarray(y_train).astype(bool)
    oof = np.asarray(oof, dtype=np.float64)
    p_score = np.asarray(p_score, dtype=np.float64)
    edges = score_bin_edges(oof, bins)
    k = len(edges) + 1
    b_tr = np.searchsorted(edges, oof, side="right")
    b_sc = np.searchsorted(edges, p_score, side="right")
    h1, h0 = class_histograms(b_tr, y, k)
    counts = np.bincount(b_sc, minlength=k).astype(np.float64)
    est = mixture_rate(h1, h0, counts, float(y.mean()))

    rng = np.random.default_rng(seed)
    pos, neg = b_tr[y], b_tr[~y]
    boots = np.empty(n_boot)
    for i in range(n_boot):
        g1 = bin_shares(pos[rng.integers(0, len(pos), len(pos))], k)
        g0 = bin_shares(neg[rng.integers(0, len(neg), len(neg))], k)
        c = np.bincount(b_sc[rng.integers(0, len(b_sc), len(b_sc))], minlength=k).astype(np.float64)
        boots[i] = mixture_rate(g1, g0, c, est)
    stderr = float(boots.std(ddof=1)) if n_boot > 1 else float("nan")
    lo, hi = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))) if n_boot else (float("nan"),) * 2

    from scipy.stats import chi2

    expected = counts.sum() * (est * h1 + (1 - est) * h0)
    stat = float(np.sum((counts - expected) ** 2 / expected))
    df = max(k - 2, 1)

    flag_tr, flag_sc = oof >= cutoff, p_score >= cutoff
    tpr, fpr, share = float(flag_tr[y].mean()), float(flag_tr[~y].mean()), float(flag_sc.mean())
    return PrevalenceEstimate(
        method=f"mlls, {k} bins", estimate=est, stderr=stderr, ci_low=lo, ci_high=hi,
        em_estimate=estimate_prevalence_em(p_score, pi), tpr=tpr, fpr=fpr, flagged_share=share,
        score_rows=int(len(p_score)), bbse_estimate=bbse(tpr, fpr, share), bins=k,
        fit_chi2=stat, fit_df=df, fit_p_value=float(chi2.sf(stat, df)),
    )
