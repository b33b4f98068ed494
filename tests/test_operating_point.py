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
def test_bbse_recovers_the_rate_with_an_honest_interval(target: float) -> None:
    rng = np.random.default_rng(1)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, target)
    est = op.estimate_prevalence(y_tr, _posterior(s_tr, pi), 0.5, _posterior(s_sc, pi), pi, seed=0, n_boot=200)
    assert abs(est.estimate - target) < 0.03
    assert 0 < est.stderr < 0.02
    assert est.ci_low <= target <= est.ci_high


def test_bbse_does_not_need_calibrated_scores() -> None:
    """BBSE reads only which side of the cutoff a lead falls: a monotone distortion of the
    probabilities (an uncalibrated model) leaves its estimate where it was."""
    rng = np.random.default_rng(2)
    pi = 0.08
    y_tr, s_tr = _population(rng, 30000, pi)
    _, s_sc = _population(rng, 6000, 0.33)
    p_tr = _posterior(s_tr, pi)
    squash = lambda p: op.sigmoid(2.0 * op.logit(p) + 2.5)  # noqa: E731 - a monotone distortion
    est = op.estimate_prevalence(y_tr, squash(p_tr), float(squash(np.array([0.5]))[0]), squash(_posterior(s_sc, pi)),
                                 pi, n_boot=50)
    assert abs(est.estimate - 0.33) < 0.03


def test_f1_optimal_cutoff_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.1
    p = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, y.size), 0, 1)
    cutoff, f1, _, _ = op.f1_optimal_cutoff(y, p)
    brute = max(op.f1_at(y, p, t) for t in np.unique(p))
    assert f1 == pytest.approx(brute)
    assert op.f1_at(y, p, cutoff) == pytest.approx(f1)


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
