"""Combining base models: soft voting with out-of-fold-fitted weights, or stacking.

Both work on probabilities already mapped back to the training rate, so the models speak one
probability scale. Voting weights minimise the out-of-fold log-loss over the simplex; the blend
is then Platt-scaled on its own out-of-fold probabilities, so that they fit for prior shift.
Where the training rows carry the customer's id (evidence.py), the Platt slope and intercept
move with log(1 + the customer's training rows): a lead of a customer the models never saw is
pulled toward the middle, one of a well-known customer is not. That changes the ranking across
customers (not within one customer), and it lowered out-of-fold log-loss beyond fold noise on
the foreign data set and on three demo worlds (README, "What has and has not lifted foreign F1").
Whether the ensemble is used at all is decided by selection.select_model against the fixed
baseline, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from leadscore.errors import LeadscoreError
from leadscore.evidence import Evidence
from leadscore.operating_point import log_loss, logit, shift_prior, sigmoid

ENSEMBLE_KINDS = ("voting", "stacking")


def fit_voting_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log-loss of P @ w (SLSQP, deterministic start)."""
    from scipy.optimize import minimize

    m = P.shape[1]
    if m == 1:
        return np.ones(1)
    yf = y.astype(float)

    def loss(w):
        return log_loss(yf, P @ w)

    def grad(w):
        p = np.clip(P @ w, 1e-7, 1 - 1e-7)
        return P.T @ ((p - yf) / (p * (1 - p))) / len(yf)

    res = minimize(loss, np.full(m, 1.0 / m), jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}],
                   options={"maxiter": 500, "ftol": 1e-10})
    w = np.clip(res.x, 0.0, None)
    w[w < 1e-4] = 0.0
    return w / w.sum()


def platt(p: np.ndarray, y: np.ndarray, evidence: np.ndarray | None = None) -> dict[str, Any]:
    """Logistic calibration of a blend on its out-of-fold rows: slope and intercept on logit(p),
    and with `evidence` (each row's customer rows, evidence.py) a slope and an intercept on
    log(1 + rows) beside them. Kept plain when the evidence terms would turn the slope
    non-positive anywhere in the range of rows seen: calibration must never invert the ranking."""
    from sklearn.linear_model import LogisticRegression

    z = logit(p)
    if evidence is not None:
        lr_rows = np.log1p(np.asarray(evidence, dtype=np.float64))
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(np.column_stack([z, lr_rows, z * lr_rows]), y)
        slope, ev_intercept, ev_slope = (float(c) for c in lr.coef_[0])
        top = float(lr_rows.max())
        if slope > 0 and slope + ev_slope * top > 0:
            return {"slope": slope, "intercept": float(lr.intercept_[0]),
                    "evidence": {"slope": ev_slope, "intercept": ev_intercept, "max_log_rows": top,
                                 "mean_log_rows": float(lr_rows.mean())}}
    plain = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1), y)
    return {"slope": float(plain.coef_[0][0]), "intercept": float(plain.intercept_[0])}


def calibrate(p: np.ndarray, cal: dict[str, Any], evidence: np.ndarray | None = None) -> np.ndarray:
    """Apply `platt`'s calibration; log(1 + rows) is capped at the largest the fit saw."""
    slope, intercept = float(cal["slope"]), float(cal["intercept"])
    terms = cal.get("evidence")
    if terms:
        if evidence is None:
            raise LeadscoreError("this ensemble's calibration reads the customer's training rows (evidence.py); "
                                 "none were given")
        lr_rows = np.minimum(np.log1p(np.asarray(evidence, dtype=np.float64)), float(terms["max_log_rows"]))
        slope = slope + float(terms["slope"]) * lr_rows
        intercept = intercept + float(terms["intercept"]) * lr_rows
    return sigmoid(slope * logit(p) + intercept)


def mean_calibration(cal: dict[str, Any] | None) -> tuple[float, float]:
    """(slope, intercept) of a calibration at the training rows' mean log(1 + rows): one pair for
    what needs a single number (the reasons' log-odds weights)."""
    if not cal:
        return 1.0, 0.0
    terms = cal.get("evidence") or {}
    m = float(terms.get("mean_log_rows", 0.0))
    return (float(cal["slope"]) + float(terms.get("slope", 0.0)) * m,
            float(cal["intercept"]) + float(terms.get("intercept", 0.0)) * m)


def build_ensemble(kind: str, oof: dict[str, np.ndarray], y: np.ndarray,
                   folds: list[tuple[np.ndarray, np.ndarray]], evidence: Evidence | None = None,
                   oof_evidence: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """(ensemble spec for model.json, out-of-fold ensemble probabilities). With `evidence` (its
    table, for scoring) and `oof_evidence` (each out-of-fold row's customer rows in its fold's
    fit), voting's calibration reads the customer's evidence.

    The spec is fitted on every out-of-fold row; the probabilities it returns are out of fold
    themselves, each fold's from a combiner (voting weights and calibration, or the stacking
    meta-model) fitted on the other folds' rows. Why: they are what the ensemble is judged on
    against the baseline and what the cutoff is read off, and a combiner scoring the rows it was
    fitted on looks a little better than it will on score rows."""
    if (evidence is None) != (oof_evidence is None):
        raise LeadscoreError("build_ensemble needs both the evidence table and the out-of-fold rows' evidence, or neither")
    names = list(oof)
    P = np.column_stack([oof[n] for n in names])
    if kind == "voting":
        def fit(rows: np.ndarray | slice) -> dict[str, Any]:
            w = fit_voting_weights(P[rows], y[rows])
            return {"kind": "voting", "weights": {n: float(x) for n, x in zip(names, w, strict=True)},
                    "calibration": platt(np.clip(P[rows] @ w, 0, 1), y[rows],
                                         None if oof_evidence is None else oof_evidence[rows])}

        spec = fit(slice(None))
        if evidence is not None and "evidence" in spec["calibration"]:
            spec["evidence"] = evidence.to_json()
        out = np.zeros(len(y))
        for tr, va in folds:
            out[va] = combine({n: P[va, i] for i, n in enumerate(names)}, fit(tr),
                              None if oof_evidence is None else oof_evidence[va])
        return spec, out
    if kind == "stacking":
        from sklearn.linear_model import LogisticRegression

        Z = logit(P)
        out = np.zeros(len(y))
        for tr, va in folds:  # the meta-model is itself out of fold, so its OOF score is honest
            lr = LogisticRegression(C=1.0, max_iter=1000).fit(Z[tr], y[tr])
            out[va] = lr.predict_proba(Z[va])[:, 1]
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(Z, y)
        spec = {"kind": "stacking", "inputs": names, "coef": [float(c) for c in lr.coef_[0]],
                "intercept": float(lr.intercept_[0])}
        return spec, out
    raise LeadscoreError(f"unknown ensemble kind {kind!r}: expected one of {', '.join(ENSEMBLE_KINDS)}")


def single(name: str) -> dict[str, Any]:
    """The spec of 'use this one base model as it is'."""
    return {"kind": "voting", "weights": {name: 1.0}}


def used_models(spec: dict[str, Any]) -> list[str]:
    """Base models the spec reads: a voting weight of 0 means kept for the record, not evaluated."""
    if spec["kind"] == "voting":
        return [name for name, w in spec["weights"].items() if w]
    return list(spec["inputs"])


def combine(corrected: dict[str, np.ndarray], spec: dict[str, Any],
            evidence: np.ndarray | None = None) -> np.ndarray:
    """The ensemble probability (on the training rate) from prior-corrected base probabilities;
    `evidence`: the rows' customer rows, for a calibration that reads them."""
    if spec["kind"] == "voting":
        out = np.zeros_like(next(iter(corrected.values())), dtype=np.float64)
        for name, w in spec["weights"].items():
            if w:
                out += float(w) * corrected[name]
        out = np.clip(out, 0.0, 1.0)
        cal = spec.get("calibration")
        if cal:
            out = calibrate(out, cal, evidence)
        return out
    if spec["kind"] == "stacking":
        z = np.full_like(next(iter(corrected.values())), float(spec["intercept"]), dtype=np.float64)
        for name, c in zip(spec["inputs"], spec["coef"], strict=True):
            z += float(c) * logit(corrected[name])
        return sigmoid(z)
    raise LeadscoreError(f"unknown ensemble kind {spec['kind']!r}")


def spec_evidence(spec: dict[str, Any]) -> Evidence | None:
    """The evidence table a spec's calibration reads (evidence.py); None when it reads none."""
    return Evidence.from_json(spec["evidence"]) if spec.get("evidence") else None


def predict(
    spec: dict[str, Any],
    base_predict: dict[str, Callable[[np.ndarray], np.ndarray]],
    effective_priors: dict[str, float],
    train_rate: float,
    X: np.ndarray,
    evidence: Evidence | None = None,
) -> np.ndarray:
    """P(converted) on the training rate for model matrix `X`: each base model the spec uses,
    mapped from the rate it was fitted at (resampling changes it) back to the training rate,
    then combined. Scoring (model.LoadedModel) and training (the prevalence estimate on score
    rows) both go through here, so the two can never disagree on how a blend is formed.
    `evidence`: `spec_evidence(spec)` parsed once by a caller that predicts many batches (a loaded
    model); read from the spec when not given."""
    corrected = {
        name: shift_prior(base_predict[name](X), effective_priors[name], train_rate) for name in used_models(spec)
    }
    table = evidence if evidence is not None else spec_evidence(spec)
    return combine(corrected, spec, None if table is None else table.of(X))


def log_odds_weights(spec: dict[str, Any], contributing: Sequence[str]) -> dict[str, float]:
    """The weight of each of the `contributing` members' log-odds (per-feature contributions,
    reasons.py) in the ensemble's log-odds: the voting weights times the Platt slope (the blend
    averages probabilities, so this is its log-odds analogue; a slope that moves with the
    customer's evidence is taken at the training rows' mean), or the stacking coefficients (the
    meta-model is linear in the members' log-odds: exact). Rescaled so that the contributing
    members carry the whole ensemble's weight when some member (a forest) has no contributions."""
    if spec["kind"] == "voting":
        raw = {n: float(w) for n, w in spec["weights"].items() if w}
        slope = mean_calibration(spec.get("calibration"))[0]
    elif spec["kind"] == "stacking":
        raw = {n: float(c) for n, c in zip(spec["inputs"], spec["coef"], strict=True)}
        slope = 1.0
    else:
        raise LeadscoreError(f"unknown ensemble kind {spec['kind']!r}")
    used = [n for n in contributing if n in raw]
    if not used:
        raise LeadscoreError("none of the contributing models is used by the ensemble")
    total = sum(abs(w) for w in raw.values())
    kept = sum(abs(raw[n]) for n in used)
    scale = total / kept if kept else 0.0
    return {n: slope * scale * raw[n] for n in used}
