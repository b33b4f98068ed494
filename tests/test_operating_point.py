"""Operating point: cutoffs, prior shift and the prevalence of an unlabeled population."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore import operating_point as op


def _population(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels at `rate` and a score whose class-conditional distributions never change."""
    y = rng.random(n) < rate
    s = np.where(y, rng.normal(1.5, 1, n), rng.normal(-1.5, 1, n))
    return y, s


def _posterior(s: np.ndarray, pi: float) -> np.ndarray:
    lr = np.exp(3 * s)  # likelihood ratio of the two unit normals
    return lr * pi / (lr * pi + (1 - pi))


def test_em_prevalence_estimate_recovers_a_shifted_rate() -> None:
    rng = np.random.default_rng(0)
    pi = 0.08
    _, s = _population(rng, 20000, 0.33)
    assert abs(op.estimate_prevalence_em(_posterior(s, pi), pi) - 0.33) < 0.02


@pytest.mark.parametrize("target", [0.08, 0.33, 0.5])
def test_the_estimate_recovers_the_rate_with_an_honest_interval_and_passes_its_check(target: float) -> None:
    rng = np.random.default_rng(1)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, target)
    est = op.estimate_prevalence(y_tr, _posterior(s_tr, pi), 0.5, _posterior(s_sc, pi), pi, seed=0, n_boot=200)
    assert abs(est.estimate - target) < 0.03
    assert 0 < est.stderr < 0.02
    assert est.ci_low <= target <= est.ci_high
    assert est.label_shift_holds and est.warning() is None
    assert est.bins == op.PREVALENCE_BINS and est.fit_df == op.PREVALENCE_BINS - 2
    assert abs(est.bbse_estimate - target) < 0.03  # BBSE beside it, on the same rows


def test_the_estimate_does_not_need_calibrated_scores() -> None:
    """Bins at quantiles of the out-of-fold scores: a monotone distortion of every score (an
    uncalibrated model) moves no row across a bin, so the estimate stays where it was."""
    rng = np.random.default_rng(2)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, 0.33)
    p_tr, p_sc = _posterior(s_tr, pi), _posterior(s_sc, pi)
    squash = lambda p: op.sigmoid(2.0 * op.logit(p) + 2.5)  # noqa: E731 - a monotone distortion
    plain = op.estimate_prevalence(y_tr, p_tr, 0.5, p_sc, pi, n_boot=20)
    squashed = op.estimate_prevalence(y_tr, squash(p_tr), float(squash(np.array([0.5]))[0]), squash(p_sc), pi, n_boot=20)
    assert abs(squashed.estimate - 0.33) < 0.03
    assert squashed.estimate == pytest.approx(plain.estimate, abs=1e-9)


def test_with_two_bins_the_estimate_is_bbse_at_the_bins_edge() -> None:
    """BBSE is the binned estimate with two bins, either side of one cutoff."""
    rng = np.random.default_rng(3)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, 0.25)
    p_tr, p_sc = _posterior(s_tr, pi), _posterior(s_sc, pi)
    edge = float(op.score_bin_edges(p_tr, 2)[0])  # the median out-of-fold score
    est = op.estimate_prevalence(y_tr, p_tr, edge, p_sc, pi, n_boot=2, bins=2)
    assert est.bins == 2
    assert est.estimate == pytest.approx(est.bbse_estimate, abs=2e-3)  # but for the half-row pseudo-counts


def test_the_check_says_when_more_than_the_class_balance_changed() -> None:
    """Score rows whose scores moved within each class (drifted features) are no mixture of the
    training classes: the check fails, and the warning says the interval does not cover it."""
    rng = np.random.default_rng(4)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, 0.33)
    drifted = s_sc - 0.6 * (s_sc > 0)  # the converters' scores fall: a feature the model leans on went missing
    est = op.estimate_prevalence(y_tr, _posterior(s_tr, pi), 0.5, _posterior(drifted, pi), pi, n_boot=20)
    assert not est.label_shift_holds and est.fit_p_value < op.LABEL_SHIFT_P_VALUE
    assert est.to_dict()["label_shift_holds"] is False
    assert "more than the class balance changed" in est.warning() and "--target-prevalence" in est.warning()


def test_f1_optimal_cutoff_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.1
    p = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, y.size), 0, 1)
    cutoff, f1, _, _ = op.f1_optimal_cutoff(y, p)
    brute = max(op.f1_at(y, p, t) for t in np.unique(p))
    assert f1 == pytest.approx(brute)
    assert op.f1_at(y, p, cutoff) == pytest.approx(f1)


def _calibrated_sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from a fixed score model and outcomes drawn from them: calibrated."""
    _, s = _population(rng, n, 0.08)
    p = _posterior(s, 0.08) * 0.9  # never certain, so F1 has a flat top to wander on
    return rng.random(n) < p, p


def test_bagged_cutoff_scores_better_on_the_population_than_one_argmax() -> None:
    """The reason the bagged cutoff exists: on a sample of a couple of thousand leads the argmax
    of F1 wanders along the curve's flat top. The median over bootstrap resamples wanders less,
    so the cutoff chosen on a sample does better on the population the sample came from: on
    average over 120 samples, and by more than the noise of that average (paired t > 2)."""
    y_pop, p_pop = _calibrated_sample(np.random.default_rng(3), 200_000)
    gains = []
    for k in range(120):
        y, p = _calibrated_sample(np.random.default_rng(100 + k), 2000)
        plain = op.f1_at(y_pop, p_pop, op.f1_optimal_cutoff(y, p)[0])
        bagged = op.f1_at(y_pop, p_pop, op.bagged_f1_cutoff(y, p, seed=k)[0])
        gains.append(bagged - plain)
    gains = np.array(gains)
    t = gains.mean() / (gains.std(ddof=1) / np.sqrt(len(gains)))
    assert gains.mean() > 0 and t > 2, (gains.mean(), t)


def test_bagged_cutoff_reports_its_own_rates_and_repeats_with_the_seed() -> None:
    y, p = _calibrated_sample(np.random.default_rng(4), 5000)
    w = np.where(y, 3.0, 0.8)  # a reweighted population, as --target-prevalence makes
    cutoff, f1, precision, recall = op.bagged_f1_cutoff(y, p, w, seed=7)
    assert (f1, precision, recall) == pytest.approx(op.rates_at(y, p, cutoff, w))
    assert op.f1_at(y, p, cutoff, w) == pytest.approx(f1)
    assert f1 <= op.f1_optimal_cutoff(y, p, w)[1] + 1e-12  # never above the in-sample maximum
    assert op.bagged_f1_cutoff(y, p, w, seed=7) == (cutoff, f1, precision, recall)
    assert op.bagged_f1_cutoff(y, p, seed=7)[0] > cutoff  # positives weighted up: a lower cutoff


def test_bagged_cutoff_survives_resamples_without_a_positive() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.9])
    cutoff, f1, precision, recall = op.bagged_f1_cutoff(y, p, seed=0)
    assert 0.4 < cutoff <= 0.9
    assert (f1, precision, recall) == (1.0, 1.0, 1.0)


def test_shift_prior_round_trips_and_moves_the_mean() -> None:
    p = np.array([0.01, 0.2, 0.5, 0.9])
    there = op.shift_prior(p, 0.08, 0.33)
    assert (there > p).all()
    np.testing.assert_allclose(op.shift_prior(there, 0.33, 0.08), p, rtol=1e-9)


def test_fold_log_losses_are_per_fold() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.5, 0.5])
    folds = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    np.testing.assert_allclose(op.fold_log_losses(y, p, folds), [-np.log(0.9), -np.log(0.5)])
