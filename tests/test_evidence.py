"""evidence.py and the ensemble's evidence-aware calibration: a lead's customer rows are counted
among the rows the scoring model was fitted on (a fold's fit rows out of fold, every training row
for a score row), a missing or new customer has none, and the calibration that reads them fixes
what one Platt scaling cannot: leads of unseen customers scored too far from the middle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadscore import ensemble
from leadscore import features as feat
from leadscore.errors import LeadscoreError
from leadscore.evidence import EVIDENCE_KEY, Evidence
from leadscore.operating_point import log_loss, sigmoid


def _encoding(customers: list[str | None]) -> tuple[feat.Encoding, np.ndarray]:
    df = pd.DataFrame({"x": np.arange(len(customers), dtype=float), EVIDENCE_KEY: customers})
    flist = [feat.Feature("x", "DOUBLE", "numeric"), feat.Feature(EVIDENCE_KEY, "VARCHAR", "group")]
    enc = feat.Encoding.fit(df, flist)
    return enc, enc.transform(df)


def test_out_of_fold_evidence_counts_the_customer_among_the_fold_fit_rows_only():
    customers = ["a", "a", "a", "b", "b", None, "c", None]
    enc, X = _encoding(customers)
    ev = Evidence.fit(enc, X)
    assert ev is not None and ev.feature == EVIDENCE_KEY and ev.column == 1
    folds = [(np.array([0, 1, 3, 5]), np.array([2, 4, 6, 7])), (np.array([2, 4, 6, 7]), np.array([0, 1, 3, 5]))]
    got = ev.out_of_fold(X, folds)
    # row 2 (a): fold 1 fits rows 0, 1 (a, a) -> 2; row 4 (b): row 3 -> 1; row 6 (c): none -> 0;
    # row 7 (missing): never any evidence, however many missing rows were fitted
    # row 0 (a): fold 2 fits row 2 -> 1; row 1 (a) -> 1; row 3 (b): row 4 -> 1; row 5 (missing) -> 0
    assert got.tolist() == [1, 1, 2, 1, 1, 0, 0, 0]
    # a row no fold validates (forward folds' first block) has none
    assert ev.out_of_fold(X, folds[:1]).tolist() == [0, 0, 2, 0, 1, 0, 0, 0]


def test_a_score_row_counts_every_training_row_of_its_customer_and_a_new_one_none():
    enc, X = _encoding(["a", "a", "a", "b", "b", None, "c"])
    ev = Evidence.fit(enc, X)
    score = enc.transform(pd.DataFrame({"x": [0.0] * 5, EVIDENCE_KEY: ["a", "b", "c", "new", None]}))
    assert ev.of(score).tolist() == [3, 2, 1, 0, 0]
    again = Evidence.from_json(json.loads(json.dumps(ev.to_json())))  # as model.json stores it
    assert again.feature == ev.feature and again.column == ev.column
    assert again.of(score).tolist() == [3, 2, 1, 0, 0]
    with pytest.raises(LeadscoreError, match=f"{EVIDENCE_KEY} .matrix column 1. is not in a matrix of 1 columns"):
        ev.of(score[:, :1])


def test_no_customer_key_or_no_values_means_no_evidence():
    df = pd.DataFrame({"x": [1.0, 2.0], "lead_owner_group_key": ["o1", "o2"]})
    flist = [feat.Feature("x", "DOUBLE", "numeric"), feat.Feature("lead_owner_group_key", "VARCHAR", "group")]
    enc = feat.Encoding.fit(df, flist)
    assert Evidence.fit(enc, enc.transform(df)) is None
    enc, X = _encoding([None, None])  # a mart built with use_group_keys false: the key is all null
    assert Evidence.fit(enc, X) is None


def _customers(n_customers: int = 1500, seed: int = 0):
    """Leads of customers with their own effect u. The blend knows u for customers it has evidence
    on, and for the others scores u = 0: too sure of itself, both ways, where evidence is 0."""
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 12, n_customers)
    cust = np.repeat(np.arange(n_customers), size)
    u = rng.normal(scale=1.5, size=n_customers)[cust]
    x = rng.normal(size=len(cust))
    y = (rng.random(len(cust)) < sigmoid(2.0 * x - 3.0 + u)).astype(int)
    evidence = np.where(rng.random(len(cust)) < 0.4, 0, rng.integers(1, 30, len(cust))).astype(float)
    known = evidence > 0
    score = sigmoid(2.0 * x - 3.0 + np.where(known, u, 0.0))
    return y, score, evidence


def test_the_evidence_calibration_pulls_unseen_customers_toward_the_middle_and_fits_better():
    y, p, evidence = _customers()
    plain = ensemble.platt(p, y)
    cal = ensemble.platt(p, y, evidence)
    assert set(plain) == {"slope", "intercept"} and "evidence" in cal
    # slope at no evidence below the slope at much evidence: unseen customers are pulled in
    assert 0 < cal["slope"] < cal["slope"] + cal["evidence"]["slope"] * np.log1p(20)
    with_ev, with_plain = ensemble.calibrate(p, cal, evidence), ensemble.calibrate(p, plain)
    new = evidence == 0
    assert log_loss(y, with_ev) < log_loss(y, with_plain) - 0.001  # about 0.002 on three seeds
    assert log_loss(y[new], with_ev[new]) < log_loss(y[new], with_plain[new]) - 0.002  # 0.003-0.004
    # within one evidence level the ranking is kept (the slope there is positive)
    assert np.array_equal(np.argsort(with_ev[new], kind="stable"), np.argsort(p[new], kind="stable"))
    # more evidence than the fit saw is capped at the largest it saw, not extrapolated
    top = np.expm1(cal["evidence"]["max_log_rows"])
    assert np.allclose(ensemble.calibrate(p[:5], cal, np.full(5, 10 * top)),
                       ensemble.calibrate(p[:5], cal, np.full(5, top)))
    with pytest.raises(LeadscoreError, match="reads the customer's training rows"):
        ensemble.calibrate(p, cal)


def test_a_calibration_that_would_invert_the_ranking_stays_plain():
    rng = np.random.default_rng(1)
    n = 4000
    p = rng.uniform(0.01, 0.99, n)
    evidence = np.where(np.arange(n) < 3 * n // 4, 0.0, 50.0)
    # with no evidence the scores are right; with much, they point the wrong way
    y = np.where(evidence == 0, rng.random(n) < p, rng.random(n) < 1 - p).astype(int)
    cal = ensemble.platt(p, y, evidence)
    assert "evidence" not in cal and cal["slope"] > 0


def test_the_voting_spec_keeps_the_table_and_predict_reads_the_evidence_from_the_matrix():
    y, p, evidence = _customers(400)
    members = {"m1": p, "m2": np.clip(p * 0.9 + 0.01, 0, 1)}
    folds = [(np.flatnonzero(np.arange(len(y)) % 2 != k), np.flatnonzero(np.arange(len(y)) % 2 == k))
             for k in range(2)]
    table = Evidence(EVIDENCE_KEY, 1, np.arange(40))  # code c has c rows
    spec, oof = ensemble.build_ensemble("voting", members, y, folds, table, evidence)
    assert "evidence" in spec["calibration"] and spec["evidence"] == table.to_json()
    # out of fold: each fold's rows through the combiner fitted on the other fold, with their evidence
    for tr, va in folds:
        fold_spec, _ = ensemble.build_ensemble("voting", {n: m[tr] for n, m in members.items()}, y[tr],
                                               [(np.arange(len(tr)), np.arange(len(tr)))], table, evidence[tr])
        assert np.allclose(oof[va], ensemble.combine({n: m[va] for n, m in members.items()}, fold_spec, evidence[va]))
    X = np.column_stack([np.arange(len(y)), np.clip(evidence, 0, 39)]).astype(np.float32)  # code = rows

    def member(name):
        return lambda X: members[name][X[:, 0].astype(int)]

    got = ensemble.predict(spec, {n: member(n) for n in members}, {"m1": 0.2, "m2": 0.2}, 0.2, X)
    assert np.allclose(got, ensemble.combine(members, spec, np.clip(evidence, 0, 39)))
    # the reasons' single slope is the slope at the training rows' mean log(1 + rows)
    slope, _ = ensemble.mean_calibration(spec["calibration"])
    terms = spec["calibration"]["evidence"]
    assert slope == pytest.approx(spec["calibration"]["slope"] + terms["slope"] * np.log1p(evidence).mean())
    # plain: no evidence given, no table kept
    spec_plain, _ = ensemble.build_ensemble("voting", members, y, folds)
    assert "evidence" not in spec_plain and set(spec_plain["calibration"]) == {"slope", "intercept"}
    with pytest.raises(LeadscoreError, match="both the evidence table and the out-of-fold rows' evidence"):
        ensemble.build_ensemble("voting", members, y, folds, table)
