"""treepredict.py: the numba evaluator gives LightGBM's own probabilities bit for bit (np.array_equal,
not a tolerance) on boosters trained here with numeric and categorical features, NaNs, zeros,
negatives, unseen and fractional categories, under every missing-value setting, in both kernels
(_scan and _walk) and on any number of threads; estimators.load_base_model uses it for a covered
model file and LightGBM's predict otherwise."""

from __future__ import annotations

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
pytest.importorskip("numba")

from leadscore import estimators, treepredict

N_COLUMNS = 6


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns: 0 numeric with NaNs, 1 categorical of 40 codes (bitsets of two words) with NaNs,
    2 numeric half zeros, 3 numeric with negatives, 4 categorical of 5 codes, 5 numeric."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(size=n),
        rng.integers(0, 40, size=n),
        rng.normal(size=n) * (rng.random(n) < 0.5),
        rng.normal(loc=-1.0, size=n),
        rng.integers(0, 5, size=n),
        rng.exponential(size=n),
    ]).astype(np.float32)
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.05, 1] = np.nan
    logit = (np.nan_to_num(X[:, 0]) + (np.nan_to_num(X[:, 1]) % 3 == 0) + (X[:, 2] == 0) - X[:, 3] * 0.5
             + (X[:, 4] == 2) - X[:, 5] + rng.normal(size=n))
    return X, (logit > 0.5).astype(int)


def _awkward(X: np.ndarray, seed: int) -> np.ndarray:
    """Rows LightGBM never saw in training: unseen, negative, fractional and huge categories, NaN
    where training had none, values within 1e-35 of zero, infinities."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    n = len(X)
    pick = rng.random((n, N_COLUMNS))
    X[:, 1] = np.where(pick[:, 1] < 0.05, 77, X[:, 1])  # unseen category
    X[:, 1] = np.where((pick[:, 1] >= 0.05) & (pick[:, 1] < 0.1), -3, X[:, 1])
    X[:, 1] = np.where((pick[:, 1] >= 0.1) & (pick[:, 1] < 0.15), 2.5, X[:, 1])
    X[:, 1] = np.where((pick[:, 1] >= 0.15) & (pick[:, 1] < 0.18), -0.5, X[:, 1])
    X[:, 1] = np.where((pick[:, 1] >= 0.18) & (pick[:, 1] < 0.2), 3e9, X[:, 1])
    X[:, 4] = np.where(pick[:, 4] < 0.1, np.nan, X[:, 4])  # NaN in a categorical without NaN in training
    X[:, 5] = np.where(pick[:, 5] < 0.1, np.nan, X[:, 5])  # NaN in a numeric without NaN in training
    X[:, 2] = np.where(pick[:, 2] < 0.05, 1e-36, X[:, 2])  # read as zero
    X[:, 3] = np.where(pick[:, 3] < 0.05, -1e-36, X[:, 3])
    X[:, 3] = np.where((pick[:, 3] >= 0.05) & (pick[:, 3] < 0.07), -np.inf, X[:, 3])
    X[:, 0] = np.where(pick[:, 0] < 0.03, np.inf, X[:, 0])
    return X


SETTINGS = {
    "default": {},
    "zero_as_missing": {"zero_as_missing": True},
    "no_missing": {"use_missing": False},
    "wide": {"num_leaves": 60, "min_data_in_leaf": 5},  # leaves in the high half of _scan's words
    "deep": {"num_leaves": 100, "min_data_in_leaf": 3},  # more than 64 leaves: _walk only
}


def _booster(setting: str, seed: int = 0, rounds: int = 40):
    X, y = _data(3000, seed)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 15, "learning_rate": 0.1, "seed": seed,
              "deterministic": True, "num_threads": 1, **SETTINGS[setting]}
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[1, 4]), rounds)


@pytest.fixture(scope="module", params=list(SETTINGS))
def trained(request):
    return request.param, _booster(request.param)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_probabilities_equal_lightgbm_bit_for_bit(trained, dtype, monkeypatch):
    setting, booster = trained
    monkeypatch.setattr(treepredict, "CHUNK_ROWS", 512)  # several chunks, so threads share them
    predictor = treepredict.LightGBMPredictor(booster.model_to_string())
    assert predictor.scan is (setting != "deep")
    if setting in ("wide", "deep"):
        assert predictor.leaf_value.size > 40 * predictor.roots.size  # trees of more than 40 leaves on average
    X = _awkward(_data(2500, seed=7)[0], seed=8)
    if dtype == np.int32:  # LightGBM reads it as float32
        X = np.nan_to_num(X, nan=0.0, posinf=1e6, neginf=-1e6).clip(-1e6, 1e6)
    X = X.astype(dtype)
    expected = booster.predict(X)
    assert expected.std() > 0.05  # a model that separates the rows
    for scan in (True, False):
        for threads in (1, 3):
            got = predictor.predict(X, threads=threads, scan=scan)
            assert got.dtype == np.float64
            assert np.array_equal(got, expected), (setting, scan, threads, np.abs(got - expected).max())
    assert np.array_equal(predictor.predict(X, raw_score=True), booster.predict(X, raw_score=True))


def test_missing_value_settings_give_different_models():
    """The settings above exercise different split kinds (decision_type's missing bits)."""
    kinds = {setting: set(treepredict.LightGBMPredictor(_booster(setting).model_to_string()).node_kind.tolist())
             for setting in ("default", "zero_as_missing", "no_missing")}
    assert treepredict.NUM_NAN in kinds["default"] and treepredict.CATEGORICAL in kinds["default"]
    assert treepredict.NUM_ZERO in kinds["zero_as_missing"]
    assert kinds["no_missing"] <= {treepredict.NUM_NONE, treepredict.CATEGORICAL}


def test_a_saved_model_file_scores_through_the_evaluator_as_lightgbm_does(tmp_path):
    path = tmp_path / "lightgbm.txt"
    _booster("default", seed=3, rounds=60).save_model(str(path))
    predict = estimators.load_base_model("lightgbm", path)
    assert isinstance(predict.native, treepredict.LightGBMPredictor)
    X = _awkward(_data(40_000, seed=11)[0], seed=12)  # above 20,000 rows: several threads
    expected = lgb.Booster(model_file=str(path)).predict(X)
    assert np.array_equal(predict(X), expected)
    with pytest.raises(Exception, match="number of features"):  # another width: LightGBM's own refusal
        predict(X[:, :4])


def test_a_model_the_evaluator_does_not_cover_is_scored_by_lightgbm(tmp_path):
    X, y = _data(2000, seed=5)
    X = np.nan_to_num(X)
    linear = lgb.train({"objective": "binary", "verbose": -1, "linear_tree": True, "num_threads": 1},
                       lgb.Dataset(X, y), 20)
    text = linear.model_to_string()
    assert treepredict.covers(text) == "linear trees"
    with pytest.raises(ValueError, match="linear trees"):
        treepredict.LightGBMPredictor(text)
    xentropy = lgb.train({"objective": "cross_entropy", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 5)
    assert "not binary" in treepredict.covers(xentropy.model_to_string())
    path = tmp_path / "linear.txt"
    linear.save_model(str(path))
    predict = estimators.load_base_model("lightgbm", path)
    assert not hasattr(predict, "native")
    assert np.array_equal(predict(X), lgb.Booster(model_file=str(path)).predict(X))


def test_without_numba_lightgbm_scores(tmp_path, monkeypatch):
    path = tmp_path / "lightgbm.txt"
    _booster("default").save_model(str(path))
    monkeypatch.setattr(treepredict, "available", lambda: False)
    predict = estimators.load_base_model("lightgbm", path)
    assert not hasattr(predict, "native")
    X = _awkward(_data(500, seed=2)[0], seed=3)
    assert np.array_equal(predict(X), lgb.Booster(model_file=str(path)).predict(X))
