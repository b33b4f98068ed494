"""estimators.py: every base-model family is saved in a format that cannot run code (LightGBM
text, XGBoost UBJSON, skops, JSON for the linear member) and loads back predicting exactly what
it predicted in memory; the imbalance plan and its effective prior; the pipelines; forest scoring that is bit-for-bit
the same on any number of threads."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from leadscore import estimators as est
from leadscore.errors import LeadscoreError

FAMILIES = [est.BASELINE, *est.MODEL_NAMES]
# the first bytes of each file: text, UBJSON object, zip (skops), JSON; never a pickle (b"\x80")
MAGIC = {"lightgbm": b"tree", "xgboost": b"{", "random_forest": b"PK", "extra_trees": b"PK",
         "logistic": b'{"format": "leadscore-binned-logistic-1"'}


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.integers(0, 5, size=n)]).astype(np.float32)
    y = (X[:, 0] + 0.5 * (X[:, 2] == 3) + rng.normal(scale=0.5, size=n) > 0.8).astype(int)
    return X, y


def _fit(name: str, X: np.ndarray, y: np.ndarray, params: dict | None = None):
    base = est.BASELINE_PARAMS if name == est.BASELINE else est.DEFAULT_PARAMS[name]
    small = {"n_estimators": 15} if "n_estimators" in base else {}  # the trees: few, for speed
    params = {**base, **small, **(params or {})}
    pipe, fit_kwargs, eff = est.build_pipeline(est.KINDS[name], params, float(y.mean()), cat_idx=[2], code_idx=[2],
                                               seed=0, n_threads=1)
    pipe.fit(X, y, **fit_kwargs)
    return pipe.named_steps["model"], eff


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_saves_in_a_code_free_format_and_loads_predicting_the_same(name, tmp_path):
    X, y = _data()
    model, _ = _fit(name, X, y)
    kind = est.KINDS[name]
    path = tmp_path / est.MODEL_FILES[name]
    est.save_base_model(kind, model, path)
    assert path.read_bytes()[:len(MAGIC[kind])] == MAGIC[kind]
    loaded = est.load_base_model(kind, path)
    Xnew, _ = _data(200, seed=1)
    in_memory = est.predict_base(kind, model, Xnew, 1)
    from_file = loaded(Xnew)
    assert from_file.dtype == np.float64 and from_file.shape == (200,)
    assert np.allclose(from_file, in_memory, rtol=0, atol=1e-6)
    assert in_memory.std() > 0  # a model that learned something, so the comparison means something


def test_an_unknown_kind_is_refused(tmp_path):
    with pytest.raises(LeadscoreError, match="unknown base model kind 'catboost'"):
        est.load_base_model("catboost", tmp_path / "x")
    with pytest.raises(LeadscoreError, match="unknown model kind catboost"):
        est.build_pipeline("catboost", {}, 0.1, [], [], 0, 1)


def test_a_skops_file_of_the_other_forest_is_refused(tmp_path):
    X, y = _data()
    forest, _ = _fit("random_forest", X, y)
    path = tmp_path / "extra_trees.skops"
    est.save_base_model("random_forest", forest, path)
    with pytest.raises(LeadscoreError, match="holds a RandomForestClassifier, expected ExtraTreesClassifier"):
        est.load_base_model("extra_trees", path)


# -- imbalance --------------------------------------------------------------------------------------

PI = 0.1  # natural minority/majority ratio 1/9


@pytest.mark.parametrize("params, expected", [
    ({"imbalance": "none"}, (None, None, False, PI)),
    ({"imbalance": "class_weight"}, (None, None, True, 0.5)),
    ({"imbalance": "smote", "smote_ratio": 0.5}, (0.5, None, False, 0.5 / 1.5)),
    ({"imbalance": "smote", "smote_ratio": 0.1}, (None, None, False, PI)),  # below the natural ratio: a no-op
    ({"imbalance": "under", "under_ratio": 0.25}, (None, 0.25, False, 0.2)),
    # SMOTE is capped at the undersampling ratio, and an undersampling that then adds nothing is dropped
    ({"imbalance": "smote_under", "smote_ratio": 0.6, "under_ratio": 0.4}, (0.4, None, False, 0.4 / 1.4)),
    ({"imbalance": "smote_under", "smote_ratio": 0.3, "under_ratio": 1.0}, (0.3, 1.0, False, 0.5)),
])
def test_imbalance_plan_and_its_effective_prior(params, expected):
    smote, under, weighted, effective = est.imbalance_plan(params, PI)
    assert (smote, under, weighted) == expected[:3]
    assert effective == pytest.approx(expected[3])


def test_resamplers_sit_in_the_pipeline_before_the_model():
    pipe, _, eff = est.build_pipeline("lightgbm", {**est.DEFAULT_PARAMS["lightgbm"], "imbalance": "smote_under",
                                                   "smote_ratio": 0.3, "under_ratio": 0.6}, PI, [2], [2], 0, 1)
    assert [n for n, _ in pipe.steps] == ["smote", "under", "model"] and eff == pytest.approx(0.6 / 1.6)
    pipe, kwargs, _ = est.build_pipeline("lightgbm", est.DEFAULT_PARAMS["lightgbm"], PI, [2], [2], 0, 1)
    assert [n for n, _ in pipe.steps] == ["model"] and kwargs == {"model__categorical_feature": [2]}
    assert "imbalance" not in pipe.named_steps["model"].get_params()


def test_resampling_changes_the_rate_the_model_sees_not_the_training_rows():
    X, y = _data(600)
    model, eff = _fit("lightgbm", X, y, {"imbalance": "under", "under_ratio": 1.0})
    assert eff == 0.5
    p = est.predict_base("lightgbm", model, X, 1)
    assert p.mean() > y.mean() + 0.1  # fitted at a 50% rate: shift_prior maps it back to the training rate


@pytest.mark.parametrize("positives, ratio", [(100, 0.3), (100, 0.5), (300, 0.6), (100, 0.12), (300, 0.3)])
def test_resampling_targets_are_imbalanced_learns_own_where_it_accepts_the_ratio(positives, ratio):
    """Same rows resampled as imbalanced-learn's float ratio gives, whenever it accepts one."""
    from imblearn.utils import check_sampling_strategy

    y = np.array([1] * positives + [0] * 900)
    for sampling, ours in (("over-sampling", est.oversample_to), ("under-sampling", est.undersample_to)):
        try:
            theirs = check_sampling_strategy(ratio, y, sampling)
        except ValueError:
            theirs = {}  # refused: ours leaves the rows as they are
        assert check_sampling_strategy(functools.partial(ours, ratio=ratio), y, sampling) == theirs


def test_a_fold_already_past_the_ratio_fits_as_it_is():
    """imbalance_plan judges the ratio against the training rate; a fold holding more positives
    than that (small training sets) is fitted unresampled instead of failing."""
    from imblearn.over_sampling import SMOTE

    X, y = _data(600)
    fold_ratio = float(y.sum() / (len(y) - y.sum()))
    params = {**est.DEFAULT_PARAMS["lightgbm"], "imbalance": "smote_under",
              "smote_ratio": 0.9 * fold_ratio, "under_ratio": 0.97 * fold_ratio}
    training_rate = 0.8 * float(y.mean())  # the whole training set's rate, lower than this fold's
    pipe, _, _ = est.build_pipeline("lightgbm", params, training_rate, [], [], 0, 1)
    assert [n for n, _ in pipe.steps] == ["smote", "under", "model"]
    with pytest.raises(ValueError):  # what a float ratio did with this fold
        SMOTE(sampling_strategy=0.9 * fold_ratio).fit_resample(X, y)
    pipe.fit(X, y)
    assert pipe.named_steps["model"].n_features_in_ == X.shape[1]


def test_model_params_turn_max_features_fractions_into_numbers():
    assert est.model_params({"max_features": "0.35", "n_estimators": 10}) == {"max_features": 0.35, "n_estimators": 10}
    assert est.model_params({"max_features": "sqrt"}) == {"max_features": "sqrt"}


# -- threads and forests ------------------------------------------------------------------------------

def test_forest_scores_are_bit_for_bit_the_same_on_any_number_of_threads():
    X, y = _data(300)
    forest, _ = _fit("extra_trees", X, y)
    Xbig = np.tile(_data(500, seed=2)[0], (10, 1))
    one = est.forest_predict(forest, Xbig, n_threads=1)
    chunked = est.forest_predict(forest, Xbig, n_threads=3, chunk=700)
    assert one.tobytes() == chunked.tobytes()


def test_threads_follow_the_environment_then_the_row_count(monkeypatch):
    monkeypatch.delenv("LEADSCORE_THREADS", raising=False)
    assert est.threads(19_999) == 1
    assert 1 <= est.threads(20_000) <= 4
    monkeypatch.setenv("LEADSCORE_THREADS", "3")
    assert est.threads(10) == 3
    monkeypatch.setenv("LEADSCORE_THREADS", "0")
    assert est.threads() == 1


def test_the_package_leaves_openmps_waiting_policy_to_the_operator():
    """PASSIVE set by the package made a free machine's LightGBM fits three times slower (README,
    "Threads"): importing the training code and fitting must leave OMP_WAIT_POLICY as it found it,
    unset or the operator's own value. In fresh processes: conftest sets it for the test workers."""
    code = ("import os, numpy as np; from leadscore import estimators, train, tuning, score; "
            "X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32); "
            "y = (X[:, 0] > 0.5).astype(int); "
            "p, kw, _ = estimators.build_pipeline('lightgbm', {'n_estimators': 5}, float(y.mean()), [], [], 0, 2); "
            "p.fit(X, y, **kw); print(os.environ.get('OMP_WAIT_POLICY', '<unset>'))")
    for given, expected in ((None, "<unset>"), ("ACTIVE", "ACTIVE")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if given is not None:
            env["OMP_WAIT_POLICY"] = given
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
