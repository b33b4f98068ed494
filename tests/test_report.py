"""report.py: quantile calibration bins, the Brier score, the importance of the whole ensemble,
and a report whose every plot names the model version and the validation scheme."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from leadscore import report
from leadscore.features import Encoding, Feature

COLUMNS = ["a", "b", "c"]


def _forest(values: list[float]) -> SimpleNamespace:
    """Stands in for a fitted RandomForest/ExtraTrees: all report reads is feature_importances_."""
    return SimpleNamespace(feature_importances_=np.array(values))


def test_quantile_bins_have_equal_counts() -> None:
    p = np.random.default_rng(0).permutation(np.linspace(0.001, 0.4, 1000)) ** 2  # crowded near 0
    bins = report.quantile_bins(p, bins=10)
    assert np.bincount(bins).tolist() == [100] * 10
    # ordered: every probability of a lower bin is below every one of a higher bin
    assert all(p[bins == b].max() < p[bins == b + 1].min() for b in range(9))
    table = report.calibration_table((p > 0.05).astype(int), p)
    assert [r["rows"] for r in table] == [100] * 10
    assert [r["observed_rate"] for r in table][:2] == [0.0, 0.0] and table[-1]["observed_rate"] == 1.0


def test_weighted_quantile_bins_have_equal_weight_and_ties_stay_together() -> None:
    p = np.arange(1, 31) / 100.0
    w = np.where(np.arange(30) < 10, 2.0, 1.0)  # the ten lowest rows weigh 20 of 40
    bins = report.quantile_bins(p, w, bins=4)
    assert np.bincount(bins, weights=w).tolist() == [10.0, 10.0, 10.0, 10.0]
    assert np.bincount(bins).tolist() == [5, 5, 10, 10]  # equal weight, not equal rows
    tied = np.array([0.1] * 6 + [0.2] * 2 + [0.3] * 2)
    b = report.quantile_bins(tied, bins=5)
    assert len(set(b[:6])) == 1 and b.max() == 2  # a tie is never split; bins renumbered


def test_brier_matches_sklearn_and_skill_is_against_the_base_rate() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500) * 0.3
    y = (rng.random(500) < p).astype(int)
    w = rng.uniform(0.5, 2.0, 500)
    for weights in (None, w):
        got = report.brier(y, p, weights)
        assert got["brier_score"] == pytest.approx(brier_score_loss(y, p, sample_weight=weights))
        rate = np.average(y, weights=weights)
        constant = brier_score_loss(y, np.full(500, rate), sample_weight=weights)
        assert got["brier_reference"] == pytest.approx(constant)
        assert got["brier_skill_score"] == pytest.approx(1 - got["brier_score"] / constant)
    assert report.brier(y, y.astype(float))["brier_skill_score"] == 1.0


def test_ensemble_importance_combines_member_shares_with_the_weights() -> None:
    members = {"random_forest": _forest([2.0, 1.0, 1.0]), "extra_trees": _forest([0.0, 0.3, 0.1]),
               "xgboost": None}  # trained, but its voting weight of 0 leaves it out
    spec = {"kind": "voting", "weights": {"random_forest": 0.25, "extra_trees": 0.75, "xgboost": 0.0}}
    imp = report.importances(members, spec, COLUMNS)
    # a: .25*.5 + 0; b: .25*.25 + .75*.75; c: .25*.25 + .75*.25
    assert imp.shares == pytest.approx({"a": 0.125, "b": 0.625, "c": 0.25})
    assert list(imp.shares) == ["b", "c", "a"]  # largest first
    assert set(imp.members) == {"random_forest", "extra_trees"}
    assert imp.members["extra_trees"]["shares"] == pytest.approx({"b": 0.75, "c": 0.25, "a": 0.0})
    assert "voting weights" in imp.source

    stacked = {"kind": "stacking", "inputs": ["random_forest", "extra_trees"], "coef": [-3.0, 1.0], "intercept": 0}
    imp = report.importances(members, stacked, COLUMNS)
    assert imp.members["random_forest"]["weight"] == pytest.approx(0.75)
    assert imp.shares == pytest.approx({"a": 0.375, "b": 0.375, "c": 0.25})
    assert "|stacking coefficient|" in imp.source


def test_missing_indicators_count_for_their_feature() -> None:
    enc = Encoding(features=[Feature("a", "DOUBLE", "numeric"), Feature("b", "DOUBLE", "numeric")],
                   indicators=["a"])
    assert enc.column_names == ["a", "b", "a__missing"]
    imp = report.importances({"random_forest": _forest([1.0, 2.0, 1.0])}, {"kind": "voting",
                             "weights": {"random_forest": 1.0}}, enc.column_names, enc)
    assert imp.shares == pytest.approx({"a": 0.5, "b": 0.5})
    assert imp.source == "random_forest's impurity decrease"


def test_fitted_boosters_read_their_own_gain() -> None:
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = (X[:, 2] + 0.1 * rng.normal(size=300) > 0).astype(int)  # only c matters
    fitted = {
        "lightgbm": lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y),
        "xgboost": xgb.XGBClassifier(n_estimators=20, max_depth=2).fit(X, y),
    }
    spec = {"kind": "voting", "weights": {"lightgbm": 0.5, "xgboost": 0.5}}
    imp = report.importances(fitted, spec, COLUMNS)
    assert sum(imp.shares.values()) == pytest.approx(1.0)
    assert next(iter(imp.shares)) == "c" and imp.shares["c"] > 0.8
    for m in imp.members.values():
        assert m["measure"] == "total gain" and next(iter(m["shares"])) == "c"


@pytest.mark.parametrize(("validation", "target", "words"), [
    ({"scheme": "random_kfold", "folds": 5}, None, ["5-fold stratified", "training rate 8.0%"]),
    ({"scheme": "forward", "folds": 4, "f1_by_month": [
        {"month": "2024-01", "rows": 300, "positives": 30, "flagged": 20, "f1": 0.5},
        {"month": "2024-02", "rows": 300, "positives": 20, "flagged": 25, "f1": 0.4}]},
     0.33, ["forward in time, 4 expanding windows", "target prevalence of 33.0%"]),
])
def test_report_writes_every_plot_and_names_the_model(tmp_path: Path, validation: dict, target: float | None,
                                                      words: list[str]) -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(0.6, 8, 600)
    y = (rng.random(600) < p).astype(int)
    w = None if target is None else np.where(y == 1, 4.0, 0.8)
    metrics = {"model_version": "v20261122T101500Z-abc123", "validation": validation, "cv_f1": 0.4,
               "train_positive_rate": 0.08, "target_prevalence": target}
    imp = report.importances({"random_forest": _forest([2.0, 1.0, 1.0]), "extra_trees": _forest([0.0, 0.3, 0.1])},
                             {"kind": "voting", "weights": {"random_forest": 0.25, "extra_trees": 0.75}}, COLUMNS)
    out = report.write_report(tmp_path, y=y, p=p, cutoff=0.2, sample_weight=w, metrics=metrics, importance=imp,
                              per_model_oof={"random_forest": p})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["model_version"] == "v20261122T101500Z-abc123"
    expected = [*report.PLOTS, *(["f1_by_month.png"] if "f1_by_month" in validation else [])]
    assert saved["plots"] == expected
    for name in expected:
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert saved["brier_score"] == pytest.approx(brier_score_loss(y, p, sample_weight=w))
    assert saved["brier_skill_score"] == out["brier_skill_score"]
    assert len(saved["calibration"]) == 10
    leads = [r["leads"] for r in saved["calibration"]]
    assert max(leads) - min(leads) <= 2 * (1 if w is None else 4.0)  # equal (weighted) groups, up to one row
    assert saved["feature_importance_members"]["extra_trees"]["weight"] == 0.75
    assert saved["feature_importance"] == pytest.approx({"a": 0.125, "b": 0.625, "c": 0.25})
    subtitle = report.plot_subtitle(metrics)
    assert subtitle.startswith("v20261122T101500Z-abc123 · out-of-fold")
    assert all(word in subtitle for word in words)
    assert "rate" not in report.plot_subtitle(metrics, prevalence=False)
