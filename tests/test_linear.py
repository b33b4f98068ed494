"""linear.py: the binned logistic member. Its lookups against hand-built tables, the exact
additivity the reasons rely on, the JSON file, numba and numpy agreeing, and the blend test that
keeps a member which trails alone (tuning.blend_gain)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from leadscore import ensemble, estimators, linear, model, reasons, registry
from leadscore.errors import LeadscoreError
from leadscore.features import Encoding, Feature, feature_hash
from leadscore.linear import BinnedLogistic
from leadscore.operating_point import logit
from leadscore.tuning import Data, blend_gain


def _data(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0: a category code (0 missing, 2..5 levels); column 1: a number whose effect is a
    step at 0.5; column 2: noise. True log-odds -2 + level effect + 1.5 * (x > 0.5)."""
    rng = np.random.default_rng(seed)
    code = rng.choice([0, 2, 3, 4, 5], size=n).astype(np.float32)
    x = rng.normal(size=n).astype(np.float32)
    noise = rng.normal(size=n).astype(np.float32)
    effect = np.select([code == 2, code == 3, code == 4], [1.0, -1.0, 0.5], 0.0)
    z = -2.0 + effect + 1.5 * (x > 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    return np.column_stack([code, x, noise]), y


def test_weights_come_from_the_right_range_or_level():
    X, y = _data()
    m = BinnedLogistic(C=10.0, n_bins=4, categorical=(0,)).fit(X, y)
    codes, cuts = m.columns_[0], m.columns_[1]
    assert codes["kind"] == "codes" and codes["values"].tolist() == [0, 2, 3, 4, 5]
    # a number: its minimum, then the quartiles of the fitted rows, as cut points (side 'left')
    q = np.quantile(X[:, 1], [0.25, 0.5, 0.75])
    assert cuts["kind"] == "cuts" and np.allclose(cuts["values"], [X[:, 1].min(), *q])
    rows = np.array([[3, q[1] + 0.01, 0.0],   # level 3, third quartile range
                     [9, 100.0, 0.0],         # a code never seen in training, above every cut
                     [2, X[:, 1].min(), 0.0]], dtype=np.float32)  # the minimum: its own range
    w0, w1 = codes["weights"], cuts["weights"]
    expected = [w0[2] + w1[3], 0.0 + w1[4], w0[1] + w1[0]]
    noise = [m.columns_[2]["weights"][np.searchsorted(m.columns_[2]["values"], 0.0)]] * 3
    assert m.decision_function(rows) == pytest.approx(m.intercept_ + np.array(expected) + noise, abs=1e-12)
    # the fitted effects have the generating signs: level 2 above level 3, x > 0.5 above x < 0
    assert w0[1] > w0[3] > w0[2] and w1[4] > w1[1]


def test_contributions_add_up_to_the_log_odds_and_centre_on_the_training_rows():
    X, y = _data(seed=1)
    m = BinnedLogistic(categorical=(0,)).fit(X, y)
    Xn, _ = _data(500, seed=2)
    phi = m.contributions(Xn)
    assert phi.shape == (500, 4)
    assert np.abs(phi.sum(axis=1) - m.decision_function(Xn)).max() < 1e-12
    assert np.abs(m.contributions(X)[:, :-1].mean(axis=0)).max() < 1e-12  # centred where fitted
    assert np.ptp(phi[:, -1]) == 0  # the bias is one constant
    refit = m.fit(Xn, _data(500, seed=2)[1])  # the same object fitted again uses its new tables
    assert np.array_equal(refit.decision_function(Xn), BinnedLogistic().set_params(**m.get_params()).fit(
        Xn, _data(500, seed=2)[1]).decision_function(Xn))
    p = m.predict_proba(Xn)
    assert np.allclose(p[:, 1], 1 / (1 + np.exp(-m.decision_function(Xn)))) and np.allclose(p.sum(axis=1), 1)


def test_the_json_file_gives_the_same_scores_and_refuses_other_files(tmp_path: Path):
    X, y = _data(seed=3)
    m = BinnedLogistic(C=1.0, n_bins=8, categorical=(0,)).fit(X, y)
    path = tmp_path / "logistic.json"
    m.save(path)
    assert json.loads(path.read_text())["format"] == linear.FORMAT  # plain JSON, nothing to execute
    again = BinnedLogistic.load(path)
    assert np.array_equal(again.predict_proba(X), m.predict_proba(X))
    assert np.array_equal(again.contributions(X), m.contributions(X))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LeadscoreError, match="other.json"):
        BinnedLogistic.load(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:100])
    with pytest.raises(LeadscoreError, match="cut.json"):
        BinnedLogistic.load(tmp_path / "cut.json")
    with pytest.raises(LeadscoreError, match="3 matrix columns"):
        m.predict_proba(X[:, :2])


def test_compiled_and_numpy_lookups_agree(monkeypatch: pytest.MonkeyPatch):
    if not linear._compiled():
        pytest.skip("numba is not installed: only the numpy lookup exists")
    X, y = _data(seed=4)
    m = BinnedLogistic(categorical=(0,)).fit(X, y)
    m.threads = 2
    Xn = np.vstack([_data(20_000, seed=5)[0], [[7, np.inf, -np.inf]]]).astype(np.float32)  # > one chunk
    compiled = (m.decision_function(Xn), m.contributions(Xn))
    monkeypatch.setattr(linear, "_COMPILED", False)
    plain = (m.decision_function(Xn), m.contributions(Xn))
    assert np.abs(compiled[0] - plain[0]).max() < 1e-12  # only the order of the additions differs
    assert np.array_equal(compiled[1], plain[1])


def test_the_saved_member_scores_as_fitted_and_explains_itself(tmp_path: Path):
    """Through the model folder, as scoring loads it: predict_base on the in-memory estimator,
    load_base_model on the JSON file and the explainer's exact sum agree."""
    import pandas as pd

    rng = np.random.default_rng(6)
    features = [Feature("amount", "DOUBLE", "numeric"), Feature("segment", "VARCHAR", "categorical")]
    df = pd.DataFrame({"amount": np.where(rng.random(800) < 0.1, np.nan, rng.normal(size=800)),
                       "segment": rng.choice(["retail", "hotel", "office"], size=800).astype(object)})
    y = (rng.random(800) < 1 / (1 + np.exp(-(df["amount"].fillna(-1) + (df["segment"] == "retail") - 1)))).astype(int)
    enc = Encoding.fit(df, features)
    X = enc.transform(df)
    pipe, fit_kwargs, eff = estimators.build_pipeline("logistic", estimators.DEFAULT_PARAMS["logistic"], y.mean(),
                                                      enc.categorical_indices, enc.category_code_indices, 0, 1)
    pipe.fit(X, y, **fit_kwargs)
    est = pipe.named_steps["model"]
    root = tmp_path / "v1"
    root.mkdir()
    estimators.save_base_model("logistic", est, root / estimators.MODEL_FILES["logistic"])
    predict = estimators.load_base_model("logistic", root / estimators.MODEL_FILES["logistic"])
    assert np.abs(predict(X) - estimators.predict_base("logistic", est, X, 1)).max() < 1e-12
    meta = {"format": registry.FORMAT_VERSION, "version": "v1", "feature_hash": feature_hash(features),
            "encoding": enc.to_json(), "cutoff": 0.4, "train_positive_rate": float(y.mean()), "target_prevalence": None,
            "models": [{"name": "logistic", "kind": "logistic", "file": "logistic.json", "effective_prior": eff}],
            "ensemble": ensemble.single("logistic")}
    (root / registry.MODEL_FILE).write_text(json.dumps(meta))
    registry.write_checksums(root)
    loaded = model.load_model_dir(root)
    ex = reasons.explainer(loaded)
    assert ex.source == "native" and list(ex.models) == ["logistic"]
    assert np.abs(ex.contributions(X).sum(axis=1) - logit(loaded.predict_matrix(X))).max() < 1e-9
    per_feature = reasons.by_feature(ex.contributions(X), ex.groups, len(ex.features))
    assert np.abs(per_feature[:, 0]).mean() > 0 and np.abs(per_feature[:, 1]).mean() > 0


def test_a_member_that_errs_differently_helps_the_blend_and_a_copy_does_not():
    """The drop rule's second chance: a candidate that sees another part of the signal lowers a
    blend's log-loss beyond the fold noise even when it is worse alone; a copy of the leader
    cannot."""
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(7)
    n = 6000
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2 + 1.2 * a + 0.8 * b)))).astype(np.int8)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(n), y))
    leader = 1 / (1 + np.exp(-(-1.9 + 1.2 * a)))  # knows a only
    other = 1 / (1 + np.exp(-(-1.9 + 0.8 * b)))  # knows b only: worse alone
    data = Data(X=np.zeros((n, 1), dtype=np.float32), y=y, pi=float(y.mean()), folds=folds, cat_idx=[], code_idx=[],
                seed=0, n_threads=1)
    gain, noise = blend_gain(leader, other, data)
    assert gain > noise > 0
    gain, noise = blend_gain(leader, leader.copy(), data)
    assert not gain > noise


def _grouped(n_groups: int = 300, per_group: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Column 0: a number (step effect at 0); column 1: a label-derived stand-in (noise here);
    column 2: a group key, each group's intercept drawn with standard deviation 1.5."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=len(group))
    u = rng.normal(scale=1.5, size=n_groups)[group]
    y = (rng.random(len(group)) < 1 / (1 + np.exp(-(-2.0 + 1.0 * (x > 0) + u)))).astype(np.int8)
    return np.column_stack([x, rng.normal(size=len(group)), group + 2.0]).astype(np.float32), y


def test_a_group_key_is_a_random_intercept_with_its_own_prior_variance():
    X, y = _grouped()
    plain = BinnedLogistic(C=0.3, n_bins=4, categorical=(2,)).fit(X, y)
    same = BinnedLogistic(C=0.3, n_bins=4, groups=(2,), group_scale=1.0).fit(X, y)
    # scale 1: the group key is a categorical like any other, weights and all
    assert np.allclose(same.decision_function(X), plain.decision_function(X), atol=1e-8)
    spreads = [np.std(BinnedLogistic(C=0.3, n_bins=4, groups=(2,), group_scale=s).fit(X, y).columns_[2]["weights"])
               for s in (1.0, 10.0, 100.0)]
    assert spreads[0] < spreads[1] < spreads[2]  # a larger prior variance shrinks the intercepts less
    # new leads of the same groups: a variance near the groups' true one (0.3 * 10 = 3 against
    # 1.5 ** 2) predicts them better than the other weights' variance
    held = np.random.default_rng(9).random(len(y)) < 0.3

    def loss(scale: float) -> float:
        m = BinnedLogistic(C=0.3, n_bins=4, groups=(2,), group_scale=scale).fit(X[~held], y[~held])
        p = np.clip(m.predict_proba(X[held])[:, 1], 1e-9, 1 - 1e-9)
        return float(-np.mean(y[held] * np.log(p) + (1 - y[held]) * np.log(1 - p)))

    assert loss(10.0) < loss(1.0)


def test_left_out_columns_weigh_nothing_and_the_file_keeps_the_groups(tmp_path: Path):
    X, y = _grouped(seed=1)
    m = BinnedLogistic(C=0.3, n_bins=4, groups=(2,), group_scale=10.0, exclude=(1,)).fit(X, y)
    assert m.columns_[1]["weights"].tolist() == [0.0]
    moved = X.copy()
    moved[:, 1] = np.random.default_rng(2).normal(size=len(X))  # what a left-out column holds is no matter
    assert np.array_equal(m.decision_function(moved), m.decision_function(X))
    assert np.array_equal(m.contributions(X)[:, 1], np.zeros(len(X)))
    # the same fit as on the matrix without that column
    without = BinnedLogistic(C=0.3, n_bins=4, groups=(1,), group_scale=10.0).fit(X[:, [0, 2]], y)
    assert np.allclose(m.decision_function(X), without.decision_function(X[:, [0, 2]]), atol=1e-8)
    m.save(tmp_path / "logistic.json")
    again = BinnedLogistic.load(tmp_path / "logistic.json")
    assert (again.groups, again.group_scale, again.exclude) == ((2,), 10.0, (1,))
    assert np.array_equal(again.predict_proba(X), m.predict_proba(X))
    assert np.array_equal(again.contributions(X), m.contributions(X))


def test_a_saved_member_scores_without_importing_scikit_learn(tmp_path: Path):
    """Scoring loads the linear member from its JSON file; scikit-learn (1.4 s of a scoring run's
    start) is imported only to fit one."""
    import subprocess
    import sys

    X, y = _data(seed=6)
    m = BinnedLogistic(categorical=(0,)).fit(X, y)
    m.save(tmp_path / "logistic.json")
    np.save(tmp_path / "X.npy", X[:50])
    np.save(tmp_path / "p.npy", m.predict_proba(X[:50]))
    code = ("import sys, numpy as np; from leadscore.linear import BinnedLogistic; "
            f"m = BinnedLogistic.load(__import__('pathlib').Path({str(tmp_path / 'logistic.json')!r})); "
            f"assert np.array_equal(m.predict_proba(np.load({str(tmp_path / 'X.npy')!r})), np.load({str(tmp_path / 'p.npy')!r})); "
            "m.contributions(np.load(" + repr(str(tmp_path / "X.npy")) + ")); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(ValueError, match="invalid parameter"):
        BinnedLogistic().set_params(alpha=1.0)
