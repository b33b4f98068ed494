"""Training job: ensemble vs single models, leakage check with shuffled labels, reproducibility,
time budget, prevalence handling. Small synthetic data and tiny budgets keep it fast."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore import features as feat
from leadscore import registry, train

SMALL = {"trials": 2, "folds": 3, "progress": False}


def make_feature_table(path: Path, n_train: int = 1500, n_score: int = 500, seed: int = 0,
                       shuffle_labels: bool = False, signal: float = 1.0, intercept: float = -3.6) -> pd.DataFrame:
    """Write a synthetic main.fct_lead_features (all supported column types, nulls, a category
    that only appears in score rows) into the DuckDB file at `path`. Returns the score rows'
    true labels (lead_id, is_converted)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_score
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x3 = rng.exponential(size=n)
    cat_a = rng.choice(["retail", "education", "hotel", "office", "government", "other"], size=n)
    cat_b = rng.choice([f"owner{i}" for i in range(30)], size=n)
    flag = rng.random(n) < 0.3
    effect_a = pd.Series(cat_a).map({"retail": 1.0, "education": 0.5, "hotel": 0.0, "office": -0.5,
                                     "government": -1.0, "other": 0.0}).to_numpy()
    z = signal * (1.3 * x1 + 0.9 * np.sin(2 * x2) + 0.8 * effect_a + 0.9 * flag + 0.8 * (x1 > 1) * (x3 > 1)) + intercept
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    if shuffle_labels:
        y = rng.permutation(y)
    x1_obs = np.where(rng.random(n) < 0.15, np.nan, x1)
    cat_b_obs = np.where(rng.random(n) < 0.1, None, cat_b).astype(object)
    split = np.array(["train"] * n_train + ["score"] * n_score)
    cat_a = cat_a.astype(object)
    cat_a[n_train:][rng.random(n_score) < 0.05] = "never seen in training"
    df = pd.DataFrame({
        "lead_id": [f"L{i:06d}" for i in range(n)],
        "id": np.where(split == "score", np.arange(n), -1),
        "split": split,
        "is_converted": np.where(split == "train", y, None),
        "x1": x1_obs, "x2": x2.astype(np.float32), "x3": x3,
        "n_items": rng.integers(0, 50, size=n),
        "flag": flag,
        "cat_a": cat_a, "cat_b": cat_b_obs,
    })
    con = duckdb.connect(str(path))
    try:
        con.register("synthetic", df)
        con.execute(
            "create or replace table main.fct_lead_features as select lead_id, "
            "case when id >= 0 then id end::bigint as id, split, is_converted::boolean as is_converted, "
            "x1::double as x1, x2::float as x2, x3::decimal(12,4) as x3, n_items::integer as n_items, "
            "flag::boolean as flag, cat_a::varchar as cat_a, cat_b::varchar as cat_b from synthetic"
        )
        con.unregister("synthetic")
    finally:
        con.close()
    return pd.DataFrame({"lead_id": df["lead_id"][n_train:].to_numpy(), "is_converted": y[n_train:]})


def _score_rows(db_file: Path) -> pd.DataFrame:
    con = duckdb.connect(str(db_file))
    try:
        model = registry.load_model(con)
        batches = list(feat.iter_score_batches(con, batch_size=170))
    finally:
        con.close()
    df = pd.concat(batches, ignore_index=True)
    df["p"] = model.predict_proba(df)
    df["pred"] = df["p"] >= model.cutoff
    return df


def test_features_schema_encoding_and_batches(db_file: Path) -> None:
    make_feature_table(db_file, n_train=300, n_score=250)
    con = duckdb.connect(str(db_file))
    try:
        flist = feat.read_features(con)
        assert [(f.name, f.kind) for f in flist] == [
            ("x1", "numeric"), ("x2", "numeric"), ("x3", "numeric"), ("n_items", "numeric"), ("flag", "numeric"),
            ("cat_a", "categorical"), ("cat_b", "categorical")]
        train_df = feat.load_split(con, "train", flist)
        enc = feat.Encoding.fit(train_df, flist)
        batches = list(feat.iter_score_batches(con, batch_size=100))
    finally:
        con.close()
    assert [len(b) for b in batches] == [100, 100, 50]
    score = pd.concat(batches, ignore_index=True)
    assert score["lead_id"].is_unique and score["lead_id"].is_monotonic_increasing
    X = enc.transform(score)
    assert X.dtype == np.float32 and not np.isnan(X).any()
    j = [f.name for f in flist].index("cat_a")
    unseen = (score["cat_a"] == "never seen in training").to_numpy()
    assert unseen.any() and (X[unseen, j] == feat.OTHER_CODE).all()
    assert "x1__missing" in enc.column_names
    assert feat.Encoding.from_json(enc.to_json()).transform(score).tobytes() == X.tobytes()
    # hash changes with a type change
    assert feat.feature_hash(flist) != feat.feature_hash([(f.name, "VARCHAR") for f in flist])


@pytest.mark.slow
def test_ensemble_at_least_as_good_as_best_single_model(db_file: Path) -> None:
    truth = make_feature_table(db_file, n_train=2000, n_score=1500, seed=1, signal=1.8, intercept=-4.8)
    res = train.train_model(db_file, time_budget=60, seed=0, **SMALL)
    best_single = max(m["oof_f1"] for m in res.per_model.values())
    assert set(res.per_model) == set(train.MODEL_NAMES)
    assert res.cv_f1 >= best_single - 1e-12
    assert 0.05 < res.train_positive_rate < 0.15
    assert res.cv_f1 > 0.4  # real signal is found
    assert 0 < res.cutoff < 1 and abs(sum(res.weights.values()) - 1) < 1e-9
    scored = _score_rows(db_file).merge(truth, on="lead_id")
    tp = (scored.pred & scored.is_converted).sum()
    f1 = 2 * tp / (scored.pred.sum() + scored.is_converted.sum())
    assert f1 > 0.75 * res.cv_f1  # held-out rows confirm the out-of-fold estimate
    report = res.report_dir
    for name in ("metrics.json", "precision_recall.png", "f1_by_cutoff.png", "calibration.png", "lift_gain.png",
                 "feature_importance.png"):
        assert (report / name).is_file(), name


@pytest.mark.slow
def test_shuffled_labels_stay_at_baseline(db_file: Path) -> None:
    truth = make_feature_table(db_file, n_train=2000, n_score=1000, seed=2, shuffle_labels=True)
    res = train.train_model(db_file, time_budget=60, seed=0, **SMALL)
    p = res.train_positive_rate
    baseline = 2 * p / (1 + p)
    assert res.cv_f1 < 0.25, (res.cv_f1, baseline)
    for m in res.per_model.values():
        assert m["oof_f1"] < 0.25
        assert m["oof_auc"] < 0.6
    scored = _score_rows(db_file).merge(truth, on="lead_id")
    tp = (scored.pred & scored.is_converted).sum()
    f1 = 2 * tp / max(1, scored.pred.sum() + scored.is_converted.sum())
    assert f1 < 0.25, f1


@pytest.mark.slow
def test_same_seed_same_cutoff_and_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outs = []
    for run in ("a", "b"):
        path = tmp_path / run / "leadscore.duckdb"
        path.parent.mkdir()
        monkeypatch.setenv("LEADSCORE_DB", str(path))
        make_feature_table(path, n_train=1200, n_score=300, seed=3)
        res = train.train_model(path, time_budget=120, seed=7, ensemble="stacking", **SMALL)
        outs.append((res, _score_rows(path)))
    (ra, sa), (rb, sb) = outs
    assert ra.model_version != rb.model_version
    assert ra.cutoff == rb.cutoff
    assert ra.cv_f1 == rb.cv_f1
    np.testing.assert_array_equal(sa["p"].to_numpy(), sb["p"].to_numpy())


@pytest.mark.slow
def test_resume_reuses_the_studies(db_file: Path) -> None:
    make_feature_table(db_file, n_train=800, n_score=100, seed=4)
    first = train.train_model(db_file, time_budget=60, seed=1, models=("lightgbm",), **SMALL)
    again = train.train_model(db_file, time_budget=60, seed=1, models=("lightgbm",), **SMALL)
    assert first.per_model["lightgbm"]["trials_this_run"] == 2
    assert again.per_model["lightgbm"]["trials_this_run"] == 0  # the cap counts the stored trials
    assert again.cutoff == first.cutoff
    fresh = train.train_model(db_file, time_budget=60, seed=1, models=("lightgbm",), resume=False, **SMALL)
    assert fresh.per_model["lightgbm"]["trials_this_run"] == 2


@pytest.mark.slow
def test_time_budget_is_honoured(db_file: Path) -> None:
    make_feature_table(db_file, n_train=3000, n_score=300, seed=5)
    start = time.monotonic()
    res = train.train_model(db_file, time_budget=20, seed=0, folds=3, progress=False)
    wall = time.monotonic() - start
    assert wall < 22, wall  # contract: within 110% of the budget, everything included
    assert res.seconds <= wall
    assert sum(m["trials_this_run"] for m in res.per_model.values()) > 4  # time was used, not wasted


@pytest.mark.slow
def test_tiny_budget_still_gives_a_valid_model(db_file: Path) -> None:
    make_feature_table(db_file, n_train=600, n_score=100, seed=6)
    res = train.train_model(db_file, time_budget=1, seed=0, folds=3, progress=False)
    assert "lightgbm" in res.per_model
    con = duckdb.connect(str(db_file))
    try:
        assert registry.current_version(con) == res.model_version
    finally:
        con.close()
    assert len(_score_rows(db_file)) == 100


@pytest.mark.slow
def test_target_prevalence_given_and_auto(db_file: Path) -> None:
    make_feature_table(db_file, n_train=1500, n_score=400, seed=8)
    base = train.train_model(db_file, time_budget=60, seed=0, models=("lightgbm", "xgboost"), **SMALL)
    given = train.train_model(db_file, time_budget=60, seed=0, models=("lightgbm", "xgboost"),
                              target_prevalence=0.33, **SMALL)
    assert given.target_prevalence == 0.33 and given.target_prevalence_mode == "given"
    # a richer population: more leads flagged, the model says so through its probabilities
    con = duckdb.connect(str(db_file))
    try:
        m_given = registry.load_model(con, given.model_version)
        m_base = registry.load_model(con, base.model_version)
        score = pd.concat(feat.iter_score_batches(con), ignore_index=True)
    finally:
        con.close()
    assert m_given.target_prevalence == 0.33
    assert m_given.predict_proba(score).mean() > 2 * m_base.predict_proba(score).mean()
    assert (m_given.predict_proba(score) >= m_given.cutoff).sum() > (m_base.predict_proba(score) >= m_base.cutoff).sum()
    auto = train.train_model(db_file, time_budget=60, seed=0, models=("lightgbm",), target_prevalence="auto", **SMALL)
    assert auto.target_prevalence_mode == "auto"
    assert 0.02 < auto.target_prevalence < 0.25  # score rows convert like training rows here


def test_em_prevalence_estimate_recovers_a_shifted_rate() -> None:
    rng = np.random.default_rng(0)
    pi, target = 0.08, 0.33
    # calibrated posteriors at pi for a population whose true rate is `target`
    y = rng.random(20000) < target
    score = np.where(y, rng.normal(1.5, 1, y.size), rng.normal(-1.5, 1, y.size))
    # p(y|s) at prior pi: likelihood ratio of two unit normals times the prior odds
    lr = np.exp(3 * score)
    p = lr * pi / (lr * pi + (1 - pi))
    est = train.estimate_prevalence_em(p, pi)
    assert abs(est - target) < 0.02


def test_f1_optimal_cutoff_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.1
    p = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.15, y.size), 0, 1)
    cutoff, f1, _, _ = train.f1_optimal_cutoff(y, p)
    brute = max(train.f1_at(y, p, t) for t in np.unique(p))
    assert f1 == pytest.approx(brute)
    assert train.f1_at(y, p, cutoff) == pytest.approx(f1)


def test_bad_arguments_raise_leadscore_errors(db_file: Path) -> None:
    from leadscore.errors import LeadscoreError

    with pytest.raises(LeadscoreError, match="does not exist"):
        train.train_model(db_file, time_budget=5, progress=False)
    make_feature_table(db_file, n_train=100, n_score=10)
    with pytest.raises(LeadscoreError, match="ensemble"):
        train.train_model(db_file, time_budget=5, ensemble="bagging", progress=False)
    with pytest.raises(LeadscoreError, match="prevalence"):
        train.train_model(db_file, time_budget=5, target_prevalence=1.5, progress=False)
