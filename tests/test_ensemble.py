"""ensemble.py on arrays: voting weights on the simplex that fit out of fold, a single model
passed through unchanged, stacking whose out-of-fold scores never see their own labels, and
the one `predict` path shared by scoring and training. No files, no database."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore import ensemble
from leadscore.errors import LeadscoreError
from leadscore.operating_point import log_loss, logit, shift_prior, sigmoid


def _toy(n: int = 3000, seed: int = 0):
    """Labels from a latent score; members of decreasing quality, all on the same probability scale."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < sigmoid(2.0 * z - 1.5)).astype(int)
    members = {
        "good": sigmoid(2.0 * z - 1.5 + rng.normal(scale=0.6, size=n)),
        "noisy": sigmoid(1.0 * z - 1.5 + rng.normal(scale=1.5, size=n)),
        "useless": np.clip(rng.random(n), 0.05, 0.95),
    }
    folds = [(np.flatnonzero(np.arange(n) % 3 != k), np.flatnonzero(np.arange(n) % 3 == k)) for k in range(3)]
    return y, members, folds


def test_voting_weights_are_on_the_simplex_and_the_blend_beats_its_members():
    y, members, _ = _toy()
    P = np.column_stack(list(members.values()))
    w = ensemble.fit_voting_weights(P, y)
    assert w.shape == (3,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    losses = [log_loss(y, P[:, j]) for j in range(3)]
    blend = log_loss(y, P @ w)
    assert blend < max(losses)  # beats the worst member by far
    assert blend <= min(losses) + 1e-9  # and is never worse than the best (a vertex of the simplex)
    assert w[0] == max(w) and w[2] < 0.05  # the useless member gets (almost) nothing


def test_one_member_gets_weight_one():
    y, members, _ = _toy(200)
    assert ensemble.fit_voting_weights(members["good"].reshape(-1, 1), y).tolist() == [1.0]


def test_combine_and_predict_with_a_single_model_give_that_model():
    _, members, _ = _toy(500)
    spec = ensemble.single("good")
    assert ensemble.used_models(spec) == ["good"]
    assert np.array_equal(ensemble.combine(members, spec), members["good"])
    X = np.arange(500, dtype=np.float32).reshape(-1, 1)

    def never(X):
        raise AssertionError("a model the spec does not use is never evaluated")

    base = {"good": lambda X: members["good"][X[:, 0].astype(int)], "noisy": never}
    got = ensemble.predict(spec, base, {"good": 0.2, "noisy": 0.5}, 0.2, X)
    assert np.array_equal(got, members["good"])
    # a model fitted at another rate (resampling) is mapped back to the training rate first
    shifted = ensemble.predict(spec, base, {"good": 0.5, "noisy": 0.5}, 0.2, X)
    assert np.allclose(shifted, shift_prior(members["good"], 0.5, 0.2))


def test_a_zero_voting_weight_is_kept_for_the_record_but_not_used():
    spec = {"kind": "voting", "weights": {"a": 0.75, "b": 0.0, "c": 0.25}}
    assert ensemble.used_models(spec) == ["a", "c"]
    p = {"a": np.array([0.2, 0.8]), "c": np.array([0.6, 0.4])}  # no "b" needed
    assert np.allclose(ensemble.combine(p, spec), [0.3, 0.7])


def test_voting_build_returns_its_spec_and_the_calibrated_oof_blend():
    y, members, folds = _toy()
    spec, oof = ensemble.build_ensemble("voting", members, y, folds)
    w = np.array([spec["weights"][n] for n in members])
    assert spec["kind"] == "voting" and sum(spec["weights"].values()) == pytest.approx(1.0)
    raw = np.clip(np.column_stack(list(members.values())) @ w, 0, 1)
    fitted = ensemble.combine(members, spec)  # the spec on the rows it was fitted on
    cal = spec["calibration"]
    assert np.allclose(fitted, sigmoid(cal["slope"] * logit(raw) + cal["intercept"]))
    assert cal["slope"] > 0  # Platt scaling is monotone: the ranking of the blend is kept
    assert np.array_equal(np.argsort(fitted, kind="stable"), np.argsort(raw, kind="stable"))
    assert log_loss(y, fitted) <= log_loss(y, raw) + 1e-6
    # the out-of-fold blend: each fold by the weights and calibration fitted on the other folds
    for tr, va in folds:
        w_tr = ensemble.fit_voting_weights(np.column_stack(list(members.values()))[tr], y[tr])
        blend = np.clip(np.column_stack(list(members.values())) @ w_tr, 0, 1)
        c = ensemble.platt(blend[tr], y[tr])
        assert np.allclose(oof[va], sigmoid(c["slope"] * logit(blend[va]) + c["intercept"]))
    # so a combiner never scores the rows it was fitted on: the in-sample blend looks better
    assert log_loss(y, oof) > log_loss(y, fitted)


def test_voting_oof_scores_never_see_their_own_labels():
    y, members, folds = _toy()
    _, oof = ensemble.build_ensemble("voting", members, y, folds)
    tr0, va0 = folds[0]
    flipped = y.copy()
    flipped[va0] = 1 - flipped[va0]
    _, oof2 = ensemble.build_ensemble("voting", members, flipped, folds)
    assert np.array_equal(oof2[va0], oof[va0])
    assert not np.allclose(oof2[tr0], oof[tr0])


def test_stacking_oof_scores_never_see_their_own_labels():
    y, members, folds = _toy()
    spec, oof = ensemble.build_ensemble("stacking", members, y, folds)
    assert spec["kind"] == "stacking" and spec["inputs"] == list(members)
    assert oof.shape == y.shape and np.all((oof > 0) & (oof < 1))
    tr0, va0 = folds[0]
    flipped = y.copy()
    flipped[va0] = 1 - flipped[va0]  # other labels in fold 0 only
    _, oof2 = ensemble.build_ensemble("stacking", members, flipped, folds)
    assert np.array_equal(oof2[va0], oof[va0])  # fold 0's scores come from the other folds' labels
    assert not np.allclose(oof2[tr0], oof[tr0])  # which fold 0's labels do change


def test_stacking_combine_is_the_logistic_meta_model():
    spec = {"kind": "stacking", "inputs": ["a", "b"], "coef": [1.5, -0.5], "intercept": 0.25}
    p = {"a": np.array([0.1, 0.7]), "b": np.array([0.4, 0.9])}
    expected = sigmoid(0.25 + 1.5 * logit(p["a"]) - 0.5 * logit(p["b"]))
    assert np.allclose(ensemble.combine(p, spec), expected)
    assert ensemble.used_models(spec) == ["a", "b"]


def test_an_unknown_kind_is_refused():
    y, members, folds = _toy(100)
    with pytest.raises(LeadscoreError, match="unknown ensemble kind 'bagging': expected one of voting, stacking"):
        ensemble.build_ensemble("bagging", members, y, folds)
    with pytest.raises(LeadscoreError, match="unknown ensemble kind 'bagging'"):
        ensemble.combine(members, {"kind": "bagging"})
