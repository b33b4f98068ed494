"""reasons.py: per-feature log-odds contributions of the base models, combined with the ensemble
weights, and the three readable reasons per lead. On small model folders written here (LightGBM,
XGBoost, RandomForest fitted on a toy frame), without training or a registry; a real scoring
run's reasons are checked in test_score.py and, through dbt, in test_scored_leads.py."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from leadscore import ensemble, estimators, model, reasons, registry
from leadscore.errors import LeadscoreError
from leadscore.features import KEY_COLUMNS, Encoding, Feature, feature_hash
from leadscore.operating_point import logit

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "dbt_project" / "seeds" / "feature_reasons.csv"
FEATURES = [Feature("amount", "DOUBLE", "numeric"), Feature("segment", "VARCHAR", "categorical"),
            Feature("noise", "DOUBLE", "numeric")]
PI = 0.3


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "segment": rng.choice(["retail", "hotel", "office"], size=n).astype(object),
        "noise": rng.normal(size=n),
    })


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A model folder as training writes it, with a LightGBM, an XGBoost and a RandomForest
    member; model.json's ensemble is rewritten per test (`_with`)."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    root = tmp_path_factory.mktemp("model") / "v1"
    root.mkdir()
    df = _frame(600, 0)
    rng = np.random.default_rng(1)
    z = 1.5 * df["amount"].fillna(0) + (df["segment"] == "retail") - 0.8 + rng.normal(scale=0.5, size=len(df))
    y = (z > 0).to_numpy()
    enc = Encoding.fit(df, FEATURES)
    X = enc.transform(df)
    fitted = {
        "lightgbm": lgb.LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1, random_state=0).fit(X, y),
        "xgboost": xgb.XGBClassifier(n_estimators=30, max_depth=3, random_state=0).fit(X, y),
        "random_forest": RandomForestClassifier(n_estimators=15, max_leaf_nodes=16, random_state=0).fit(X, y),
    }
    for kind, est in fitted.items():
        estimators.save_base_model(kind, est, root / estimators.MODEL_FILES[kind])
    meta = {
        "format": registry.FORMAT_VERSION, "version": "v1", "feature_hash": feature_hash(FEATURES),
        "encoding": enc.to_json(), "cutoff": 0.4, "train_positive_rate": PI, "target_prevalence": None,
        "models": [{"name": k, "kind": k, "file": estimators.MODEL_FILES[k], "effective_prior": PI} for k in fitted],
        "ensemble": ensemble.single("lightgbm"),
    }
    (root / registry.MODEL_FILE).write_text(json.dumps(meta))
    registry.write_checksums(root)
    return root


def _with(folder: Path, tmp_path: Path, **changes) -> model.LoadedModel:
    """A copy of the model folder with model.json changed (checksums rewritten to match)."""
    import shutil

    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    meta = json.loads((copy / registry.MODEL_FILE).read_text())
    meta.update(changes)
    (copy / registry.MODEL_FILE).write_text(json.dumps(meta))
    registry.write_checksums(copy)
    return model.load_model_dir(copy)


def test_lightgbm_contributions_add_up_to_its_raw_score(folder):
    import lightgbm as lgb

    m = model.load_model_dir(folder)
    X = m.encoding.transform(_frame(200, 5))
    booster = lgb.Booster(model_file=str(folder / "lightgbm.txt"))
    phi = reasons.member_contributions("lightgbm", booster, X)
    assert phi.shape == (200, len(FEATURES) + 1)  # one per column, the bias last
    assert np.abs(phi.sum(axis=1) - booster.predict(X, raw_score=True)).max() < 1e-6
    assert np.abs(phi[:, :-1]).sum() > 0 and np.ptp(phi[:, -1]) < 1e-12  # the bias is one constant


def test_xgboost_contributions_add_up_to_its_margin(folder):
    import xgboost as xgb

    m = model.load_model_dir(folder)
    X = m.encoding.transform(_frame(200, 6))
    bst = xgb.Booster()
    bst.load_model(str(folder / "xgboost.ubj"))
    phi = reasons.member_contributions("xgboost", bst, X)
    assert np.abs(phi.sum(axis=1) - bst.predict(xgb.DMatrix(X), output_margin=True)).max() < 1e-5


def test_forest_paths_add_up_to_the_forests_log_odds(folder):
    m = model.load_model_dir(folder)
    X = m.encoding.transform(_frame(300, 7))
    forest = estimators.load_skops(folder / "random_forest.skops")
    phi = reasons.forest_contributions(forest, X, chunk=64)
    p = forest.predict_proba(X)[:, 1]
    assert np.abs(phi.sum(axis=1) - logit(p)).max() < 1e-6
    # the noise column carries little: the forest's own splits on amount/segment dominate
    assert np.abs(phi[:, 2]).mean() < np.abs(phi[:, 0]).mean()


def test_a_single_lightgbm_model_explains_its_score_exactly(folder, tmp_path):
    """Contributions plus bias are the score's log-odds, target-prevalence shift included."""
    m = _with(folder, tmp_path, target_prevalence=0.6)
    df = _frame(100, 8)
    X = m.encoding.transform(df)
    ex = reasons.explainer(m)
    assert ex.source == "native" and list(ex.models) == ["lightgbm"]
    assert np.abs(ex.contributions(X).sum(axis=1) - logit(m.predict_matrix(X))).max() < 1e-6


def test_combination_uses_the_ensemble_weights():
    voting = {"kind": "voting", "weights": {"lightgbm": 0.2, "xgboost": 0.3, "random_forest": 0.5, "extra_trees": 0.0}}
    # the forest has no contributions: the others' weights are renormalised over them
    assert ensemble.log_odds_weights(voting, ["lightgbm", "xgboost"]) == pytest.approx({"lightgbm": 0.4, "xgboost": 0.6})
    assert ensemble.log_odds_weights(voting, ["lightgbm", "xgboost", "random_forest"]) == pytest.approx(
        {"lightgbm": 0.2, "xgboost": 0.3, "random_forest": 0.5})
    calibrated = {**voting, "calibration": {"slope": 2.0, "intercept": -1.0}}
    assert ensemble.log_odds_weights(calibrated, ["xgboost"]) == pytest.approx({"xgboost": 2.0})
    # stacking is linear in the members' log-odds: its coefficients apply as they are
    stacking = {"kind": "stacking", "inputs": ["lightgbm", "xgboost"], "coef": [0.7, 0.5], "intercept": -0.2}
    assert ensemble.log_odds_weights(stacking, ["lightgbm", "xgboost"]) == pytest.approx({"lightgbm": 0.7, "xgboost": 0.5})
    a, b = np.array([[1.0, -2.0, 0.5]]), np.array([[3.0, 1.0, -0.5]])
    assert reasons.combine({"a": a, "b": b}, {"a": 0.4, "b": 0.6}) == pytest.approx(np.array([[2.2, -0.2, -0.1]]))


def test_an_ensembles_explainer_weights_its_members(folder, tmp_path):
    spec = {"kind": "voting", "weights": {"lightgbm": 0.25, "xgboost": 0.25, "random_forest": 0.5}}
    m = _with(folder, tmp_path, ensemble=spec)
    X = m.encoding.transform(_frame(50, 9))
    ex = reasons.explainer(m)
    assert ex.source == "native" and sorted(ex.models) == ["lightgbm", "xgboost"]
    assert ex.weights == pytest.approx({"lightgbm": 0.5, "xgboost": 0.5})
    parts = {n: reasons.member_contributions(k, b, X) for n, (k, b) in ex.models.items()}
    expected = 0.5 * parts["lightgbm"][:, :-1] + 0.5 * parts["xgboost"][:, :-1]
    assert np.abs(ex.contributions(X)[:, :-1] - expected).max() < 1e-12


def test_a_forest_only_model_falls_back_to_its_tree_paths(folder, tmp_path):
    m = _with(folder, tmp_path, ensemble=ensemble.single("random_forest"))
    df = _frame(40, 10)
    X = m.encoding.transform(df)
    ex = reasons.explainer(m)
    assert ex.source == "forest paths"
    assert np.abs(ex.contributions(X).sum(axis=1) - logit(m.predict_matrix(X))).max() < 1e-6
    assert all(len(texts) == 40 and all(texts) for texts in ex.explain(df, X))


def test_a_changed_member_file_is_refused(folder, tmp_path):
    m = _with(folder, tmp_path)
    with (m.artifact_dir / "lightgbm.txt").open("a") as fh:
        fh.write("\n")
    with pytest.raises(LeadscoreError, match="sha256"):
        reasons.explainer(m)


def test_encoded_columns_are_reported_under_their_source_feature():
    # a format-1 model's missing indicator counts for its feature
    groups = reasons.feature_groups(["a", "b", "c", "a__missing"], ["a", "b", "c"])
    assert groups.tolist() == [0, 1, 2, 0]
    phi = np.array([[0.5, -0.1, 0.05, 0.25, 9.0]])  # the last column is the bias: never a feature
    per_feature = reasons.by_feature(phi, groups, 3)
    assert per_feature.tolist() == [[0.75, -0.1, 0.05]]
    top = reasons.top_features(np.array([[0.1, -0.9, 0.3, -0.3, 0.0]]))
    assert top.tolist() == [[1, 2, 3]]  # by size, the equal ones by position


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> dict[str, reasons.Template]:
    """The seed as scoring reads it: loaded into a database table, then through load_templates."""
    con = duckdb.connect(str(tmp_path_factory.mktemp("seed") / "seed.duckdb"))
    try:
        assert reasons.load_templates(con) == {}  # no seed built: the generic texts
        con.execute(f"create table main.feature_reasons as select * from read_csv('{SEED}', all_varchar = true)")
        return reasons.load_templates(con)
    finally:
        con.close()


def test_rendering_a_known_row_gives_the_expected_sentences(catalog):
    df = pd.DataFrame({
        "customer_idx_evidence_conversions": [9.0, np.nan],
        "customer_idx_evidence_rows": [12.0, np.nan],
        "bant_submit": [0.75, 0.25],
        "is_missing_customer_job": [False, True],
        "customer_idx_target_rate": [0.4123, None],
        "extra_lead_band": ["gold", None],
    })
    features = list(df.columns)
    per_feature = np.array([[0.84, -0.31, 0.02, 0.1, 0.0, -0.2],
                            [0.5, 0.0, -0.4, 0.3, 0.2, 0.1]])
    texts = reasons.render(df, features, reasons.top_features(per_feature), per_feature, catalog)
    first, second, third = texts
    assert first[0] == "customer converted 9 of 12 earlier leads (out-of-fold scale): raises the odds (+0.84)"
    assert second[0] == "customer has 12 labeled leads (9 converted; out-of-fold scale): lowers the odds (-0.31)"
    assert third[0] == "extra_lead_band = gold: lowers the odds (-0.20)"  # no template: the generic text
    # null values: the seed's missing text; a boolean uses its true/false texts
    assert first[1] == "customer's all-time record not used (dated lead): raises the odds (+0.50)"
    assert second[1] == "25% of the BANT questions answered: lowers the odds (-0.40)"
    assert third[1] == "contact's job not given: raises the odds (+0.30)"
    row = {"is_missing_customer_job": False}
    assert reasons.sentence(catalog["is_missing_customer_job"], "is_missing_customer_job", row.get) == "contact's job given"
    assert reasons.sentence(catalog["customer_idx_target_rate"], "customer_idx_target_rate",
                            {"customer_idx_target_rate": 0.4123}.get) == "customer converts at 41.2% (smoothed)"
    assert reasons.sentence(None, "extra_x", {}.get) == "extra_x: not known"


def test_counts_and_other_numbers_read_as_people_write_them(catalog):
    """An evidence count on the out-of-fold scale ((K - 1) / K of a customer's training leads) is
    fractional and can be large: it reads 2,313, not 2.31e+03; small fractions keep three digits."""
    big = {"customer_idx_evidence_conversions": 2312.8, "customer_idx_evidence_rows": 2313.6}
    assert reasons.sentence(catalog["customer_idx_evidence_conversions"], "customer_idx_evidence_conversions",
                            big.get) == "customer converted 2,313 of 2,314 earlier leads (out-of-fold scale)"
    small = {"customer_idx_evidence_conversions": 9.6, "customer_idx_evidence_rows": 12.0}
    assert reasons.sentence(catalog["customer_idx_evidence_conversions"], "customer_idx_evidence_conversions",
                            small.get) == "customer converted 9.6 of 12 earlier leads (out-of-fold scale)"
    # whole numbers as render passes them (reasons._plain: int), and the generic text of a feature
    # without a template
    assert reasons.sentence(catalog["lead_desc_length"], "lead_desc_length", {"lead_desc_length": 12500}.get) \
        == "description of 12,500 characters"
    assert reasons.sentence(None, "extra_amount", {"extra_amount": 1234567.891}.get) == "extra_amount = 1,234,568"
    expected = {2312.8: "2,313", 999.7: "1,000", 123.4: "123", 99.96: "100", 99.94: "99.9", 9.6: "9.6",
                12.0: "12", 0.4123: "0.412", 0.05: "0.05", 0.0000123456: "0.0000123", -2312.8: "-2,313",
                0.0: "0", 5: "5", 2312: "2,312", -1500: "-1,500", float("inf"): "inf"}
    assert {v: reasons.readable_number(v) for v in expected} == expected
    assert reasons.render(pd.DataFrame({"customer_idx_evidence_conversions": [2300.0],
                                        "customer_idx_evidence_rows": [2300.0]}),
                          ["customer_idx_evidence_conversions"], np.array([[0]]), np.array([[0.5]]),
                          catalog)[0] == ["customer converted 2,300 of 2,300 earlier leads (out-of-fold scale): "
                                          "raises the odds (+0.50)"]


def _contract_features() -> dict[str, str]:
    models = yaml.safe_load((REPO / "models_sql" / "marts" / "_models.yml").read_text())["models"]
    fct = next(m for m in models if m["name"] == "fct_lead_features")
    return {c["name"]: c["data_type"] for c in fct["columns"] if c["name"] not in KEY_COLUMNS}


def test_every_feature_a_model_can_use_has_a_template(catalog):
    """Every feature column of fct_lead_features' contract has its row in the seed, and every
    template names only `value` or feature columns and formats a value of the column's type.
    (A promoted extra_<name> column is not in the contract: it gets the documented generic text.)"""
    features = _contract_features()
    assert sorted(catalog) == sorted(features)
    sample = {"varchar": "retail", "boolean": True, "double": 0.25, "bigint": 12, "integer": 3}
    for name, t in catalog.items():
        for text in filter(None, (t.template, t.false_template, t.missing_template)):
            for field, _ in reasons.template_fields(text):
                assert field == "value" or field in features, f"{name}: {text!r} names {field!r}"
        if features[name] == "boolean":
            assert t.false_template, f"{name} is a boolean: it needs a false_template"
        values = {f: sample[features[f if f != "value" else name]] for f, _ in reasons.template_fields(t.template)}
        rendered = t.template.format(**values)  # every format spec fits its column's type
        assert "{" not in rendered and rendered.strip()


# ------------------------------------------------------------------ per-leaf table TreeSHAP


def _tricky_booster(**params):
    """A LightGBM booster with NaNs, zeros, a categorical column of 70 levels (bitsets over more
    than one 32-bit word) and trees of more than 64 splits (masks over more than one word)."""
    import lightgbm as lgb

    rng = np.random.default_rng(7)
    n = 3000
    X = np.column_stack([
        np.where(rng.random(n) < 0.15, np.nan, rng.normal(size=n)),
        np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n)),
        rng.integers(0, 70, size=n).astype(float),
        rng.normal(size=n),
    ])
    logit_ = np.nan_to_num(X[:, 0]) + X[:, 1] + np.isin(X[:, 2], [3, 40, 41, 66]) - 0.5 * X[:, 3]
    y = (logit_ + rng.normal(scale=0.7, size=n) > 0.3).astype(int)
    data = lgb.Dataset(X, y, categorical_feature=[2], free_raw_data=False)
    settings = {"objective": "binary", "num_leaves": 90, "min_data_in_leaf": 3, "max_cat_to_onehot": 2,
                "cat_smooth": 1, "min_data_per_group": 2, "verbose": -1, "seed": 0, **params}
    booster = lgb.train(settings, data, num_boost_round=25)
    rows = np.vstack([X[:400], [[np.nan, 0.0, -1.0, 1e-40], [0.0, np.nan, 99.0, -1e-36], [1e-36, 1.0, np.nan, 0.0],
                                [2.0, -3.0, 69.0, np.nan]]])
    return booster, rows


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_table_treeshap_equals_lightgbms_contributions(params):
    pytest.importorskip("numba")
    from leadscore import treeshap

    booster, X = _tricky_booster(**params)
    assert max(int(t["num_leaves"]) for t in booster.dump_model()["tree_info"]) > 65  # two mask words
    fast = treeshap.LightGBMTreeShap(booster, X.shape[1])
    expected = booster.predict(X, pred_contrib=True)
    got = fast.contributions(X)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-10
    # the tables filled by the first call give the same numbers again, and so does any thread count
    assert np.array_equal(fast.contributions(X, threads=2), got)


def test_table_treeshap_from_the_model_text_needs_no_booster():
    """Built from the saved text (what the explainer does, without importing LightGBM) it gives
    the Booster-built numbers, and its bias is LightGBM's own pred_contrib bias bit for bit."""
    pytest.importorskip("numba")
    from leadscore import treeshap

    booster, X = _tricky_booster()
    from_text = treeshap.LightGBMTreeShap(booster.model_to_string(), X.shape[1])
    assert from_text.bias == booster.predict(np.zeros((1, X.shape[1])), pred_contrib=True)[0, -1]
    assert np.array_equal(from_text.contributions(X), treeshap.LightGBMTreeShap(booster, X.shape[1]).contributions(X))


def test_table_treeshap_with_small_tables_gives_the_same_numbers(monkeypatch):
    """Leaves over TABLE_MAX_FEATURES distinct features get their terms computed per lead, not
    from a table: the numbers do not change, bit for bit (the same additions in the same order)."""
    pytest.importorskip("numba")
    from leadscore import treeshap

    booster, X = _tricky_booster()
    reference = treeshap.LightGBMTreeShap(booster, X.shape[1]).contributions(X)
    monkeypatch.setattr(treeshap, "TABLE_MAX_FEATURES", 2)
    small = treeshap.LightGBMTreeShap(booster, X.shape[1])
    depths = np.diff(small.leaf_slot_start)
    assert (depths > 2).any() and ((depths > 0) & (depths <= 2)).any()  # both kinds of leaf
    assert np.array_equal(small.contributions(X), reference)
    assert np.array_equal(small.contributions(X, threads=2), reference)


def test_table_treeshap_of_one_lead_and_of_none():
    """A batch of one lead gives that lead's row of a larger batch; an empty batch, no rows."""
    pytest.importorskip("numba")
    from leadscore import treeshap

    booster, X = _tricky_booster()
    fast = treeshap.LightGBMTreeShap(booster, X.shape[1])
    everyone = fast.contributions(X)
    assert np.array_equal(fast.contributions(X[401:402]), everyone[401:402])
    assert fast.contributions(X[:0]).shape == (0, X.shape[1] + 1)


def test_the_explainer_gives_the_same_reasons_with_and_without_the_table_treeshap(folder, catalog):
    pytest.importorskip("numba")
    m = model.load_model_dir(folder)
    ex = reasons.explainer(m, catalog)
    assert set(ex.fast) == {"lightgbm"}
    assert ex.models["lightgbm"][1]._booster is None  # the table TreeSHAP needs no Booster
    df = _frame(300, 9)
    X = m.encoding.transform(df)
    fast_contributions = ex.contributions(X)
    fast_texts = ex.explain(df, X)
    ex.fast = {}  # LightGBM's own pred_contrib, from the Booster loaded on first use
    assert np.abs(ex.contributions(X) - fast_contributions).max() < 1e-10
    assert ex.models["lightgbm"][1]._booster is not None
    assert ex.explain(df, X) == fast_texts
