"""The base models: families, fixed parameters, search spaces, imbalance pipelines, and the
formats they are saved in and loaded from.

A base model has a *name* (its role: `lightgbm_baseline`, `lightgbm`, `xgboost`, ...) and a
*kind* (its library: `lightgbm`, `xgboost`, `random_forest`, `extra_trees`, `logistic`). Files are
written in formats that cannot run code when loaded: LightGBM text, XGBoost UBJSON, skops for the
scikit-learn forests (loaded with an explicit trusted-type list), and JSON for the linear member
(linear.BinnedLogistic).

The imbalance remedy is a hyper-parameter of every tuned family (none, class weights, SMOTE,
random undersampling, SMOTE then undersampling). Resamplers sit inside imbalanced-learn
Pipelines, so they only ever see the training folds; the model's probabilities are mapped back
to the training rate by the odds of its effective prior (operating_point.shift_prior).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# OpenMP's waiting policy is left to the operator: its default (spin, then sleep) is what makes a
# second thread pay on a free machine, PASSIVE what a shared one needs (README, "Threads", has
# the measurements; the test suite sets PASSIVE for its two workers in tests/conftest.py).

from leadscore.errors import LeadscoreError

# The tuned families, in the order they get budget. The baseline is a LightGBM of fixed textbook
# parameters: every other candidate must beat it out of fold to be used (selection.select_model).
# The linear member comes first: alone it trails the trees, but its errors differ most from
# theirs, so the blend gains most from it (on the foreign data, 0.0027 out-of-fold log-loss per
# fold against 0.0006 for a tuned LightGBM), and a 120 s budget leaves room for one family or two.
MODEL_NAMES = ("logistic", "lightgbm", "xgboost", "extra_trees", "random_forest")
BASELINE = "lightgbm_baseline"
KINDS = {BASELINE: "lightgbm", **{n: n for n in MODEL_NAMES}}
MODEL_FILES = {
    BASELINE: "lightgbm_baseline.txt",
    "lightgbm": "lightgbm.txt",
    "xgboost": "xgboost.ubj",
    "random_forest": "random_forest.skops",
    "extra_trees": "extra_trees.skops",
    "logistic": "logistic.json",
}
IMBALANCE_CHOICES = ("none", "class_weight", "smote", "under", "smote_under")
SEARCH_SPACE_VERSION = "ss7"
# Relative cost of one fold with default parameters (measured on the generated 60k leads), used
# to guess whether a model's first cross-validation fits in the time left before trying it. The
# linear member: 1.7 s a fold with group keys (3.9 s without) against the baseline's 12.7 s on
# the foreign data's 48,000 training rows a fold.
COST_FACTOR = {BASELINE: 2.0, "lightgbm": 1.0, "xgboost": 2.2, "random_forest": 1.4, "extra_trees": 0.8,
               "logistic": 0.3}

BASELINE_PARAMS: dict[str, Any] = {
    "n_estimators": 600, "learning_rate": 0.03, "num_leaves": 31, "min_child_samples": 20,
    "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 0.0, "imbalance": "none",
}

# The first trial of every study: cheap, sane parameters.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    # cat_*: categorical splits regularised harder than LightGBM's defaults (10, 10, 100): a
    # level's gradient statistics shrunk toward none and a split's groups kept large, so the
    # many-level columns (customer job, product subcategory, the segment cross) do not overfit.
    # At 120 s it lowered this member's out-of-fold log-loss by 0.0010-0.0029 on every world of the
    # quality benchmark (foreign 0.1343 -> 0.1329); the ensemble, which already holds the baseline
    # beside it, moved by 0.00015 at most (README, "What has and has not lifted foreign F1")
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                 "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "cat_l2": 50.0, "cat_smooth": 50.0,
                 "min_data_per_group": 200, "imbalance": "none"},
    "xgboost": {"n_estimators": 200, "learning_rate": 0.08, "max_depth": 5, "min_child_weight": 1.0,
                "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "imbalance": "none"},
    "random_forest": {"n_estimators": 150, "max_leaf_nodes": 256, "min_samples_leaf": 3, "max_features": "sqrt",
                      "max_samples": 0.5, "imbalance": "none"},
    "extra_trees": {"n_estimators": 150, "max_leaf_nodes": 256, "min_samples_leaf": 3, "max_features": "sqrt",
                    "max_samples": 0.5, "imbalance": "none"},
    # group_scale: the group keys' prior variance relative to the other weights' (read only when
    # the features carry group keys)
    "logistic": {"C": 0.3, "n_bins": 20, "group_scale": 10.0, "imbalance": "none"},
}



# The only non-default types a RandomForest/ExtraTrees skops file may contain. skops trusts
# scikit-learn estimators and numpy/builtins itself; everything else is refused.
TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]



def _ratio(pi: float) -> float:
    return pi / (1 - pi)


def imbalance_plan(params: dict[str, Any], pi: float) -> tuple[float | None, float | None, bool, float]:
    """(smote ratio, undersample ratio, class weights?, effective prior) for one parameter set.

    Ratios are minority/majority after resampling; one at or below the natural ratio is a no-op."""
    natural = _ratio(pi)
    imb = params.get("imbalance", "none")
    smote = under = None
    weighted = False
    if imb == "class_weight":
        weighted = True
    if imb in ("smote", "smote_under"):
        smote = float(params["smote_ratio"])
    if imb in ("under", "smote_under"):
        under = float(params["under_ratio"])
    if smote is not None and under is not None:
        smote = min(smote, under)
    if smote is not None and smote <= natural * 1.05:
        smote = None
    if under is not None and under <= max(natural, smote or 0) * 1.05:
        under = None
    final_ratio = natural
    if smote is not None:
        final_ratio = smote
    if under is not None:
        final_ratio = under
    effective = 0.5 if weighted else final_ratio / (1 + final_ratio)
    return smote, under, weighted, effective


def reads_group_keys(kind: str) -> bool:
    """Whether a model kind reads the group keys (features.GROUP_KEY_SUFFIX, the matrix's last
    columns): only the linear member, as one shrunk intercept per customer and owner fitted
    jointly with its other effects (a mixed-effects logistic regression). The trees read the
    columns before them, where the same identifiers enter as out-of-fold rates and counts."""
    return kind == "logistic"


def member_matrix(kind: str, X: np.ndarray, tree_width: int) -> np.ndarray:
    """The columns of the encoded matrix `X` that a base model of `kind` was fitted on."""
    if reads_group_keys(kind) or X.shape[1] <= tree_width:
        return X
    return X[:, :tree_width]


def on_its_columns(kind: str, predict: Callable[[np.ndarray], np.ndarray],
                   tree_width: int) -> Callable[[np.ndarray], np.ndarray]:
    """A base model's predict that takes the whole encoded matrix and hands it the columns it was
    fitted on (member_matrix)."""
    return lambda X: predict(member_matrix(kind, X, tree_width))


def _counts(y: Any) -> tuple[Any, int, Any, int]:
    """(minority class, its rows, majority class, its rows) of a binary target."""
    values, counts = np.unique(np.asarray(y), return_counts=True)
    lo, hi = int(np.argmin(counts)), int(np.argmax(counts))
    return values[lo], int(counts[lo]), values[hi], int(counts[hi])


def oversample_to(y: Any, ratio: float) -> dict:
    """SMOTE's target for minority/majority `ratio`, as imbalanced-learn computes it for a float,
    but measured on the rows the sampler is given. imbalance_plan judges the ratio against the
    training rate; one fold of a small training set can already hold more positives than that
    (2,000 rows: a fold's rate moves by a few tenths of a point), and a float then makes
    imbalanced-learn refuse to fit. Here that fold is left as it is."""
    minority, n_min, _, n_maj = _counts(y)
    extra = int(n_maj * ratio - n_min)
    return {minority: n_min + extra} if extra > 0 else {}


def undersample_to(y: Any, ratio: float) -> dict:
    """RandomUnderSampler's target for `ratio`, like oversample_to: a fold already at or above
    the ratio keeps its rows."""
    _, n_min, majority, n_maj = _counts(y)
    keep = int(n_min / ratio)
    return {majority: keep} if keep <= n_maj else {}


def build_pipeline(kind: str, params: dict[str, Any], pi: float, cat_idx: list[int], code_idx: list[int],
                   seed: int, n_threads: int, smotenc: bool = False, group_idx: Sequence[int] = (),
                   exclude_idx: Sequence[int] = ()):
    """An imbalanced-learn Pipeline: [SMOTE/SMOTENC] -> [RandomUnderSampler] -> model.
    Returns (pipeline, fit kwargs, effective prior). `group_idx`, `exclude_idx`: the linear
    member's group-key columns and the columns it leaves out (tuning.Data)."""
    from imblearn.over_sampling import SMOTE, SMOTENC
    from imblearn.pipeline import Pipeline
    from imblearn.under_sampling import RandomUnderSampler

    smote, under, weighted, effective = imbalance_plan(params, pi)
    steps: list[tuple[str, Any]] = []
    if smote is not None:
        # Plain SMOTE on the encoded matrix: categorical codes and missing indicators are
        # interpolated like numbers, which tree models split like their nearest code. SMOTENC
        # (`smotenc=True`) treats them properly but took 17 s instead of 0.4 s per fold on the
        # 60k generated leads (its one-hot inverse transform), a third of a 300 s budget's trial.
        target = functools.partial(oversample_to, ratio=smote)
        if smotenc and cat_idx:
            steps.append(("smote", SMOTENC(categorical_features=cat_idx, sampling_strategy=target, random_state=seed)))
        else:
            steps.append(("smote", SMOTE(sampling_strategy=target, random_state=seed)))
    if under is not None:
        steps.append(("under", RandomUnderSampler(sampling_strategy=functools.partial(undersample_to, ratio=under),
                                                  random_state=seed)))
    p = {k: v for k, v in params.items() if k not in ("imbalance", "smote_ratio", "under_ratio")}
    fit_kwargs: dict[str, Any] = {}
    if kind == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(
            **p, subsample_freq=1, class_weight="balanced" if weighted else None, random_state=seed,
            n_jobs=n_threads, deterministic=True, force_row_wise=True, verbose=-1,
        )
        if code_idx:
            fit_kwargs["model__categorical_feature"] = code_idx
    elif kind == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier(
            **p, tree_method="hist", objective="binary:logistic", eval_metric="logloss",
            scale_pos_weight=(1 - pi) / pi if weighted else 1.0, random_state=seed, n_jobs=n_threads,
        )
    elif kind in ("random_forest", "extra_trees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if kind == "random_forest" else ExtraTreesClassifier
        model = cls(**p, bootstrap=True, class_weight="balanced_subsample" if weighted else None,
                    random_state=seed, n_jobs=n_threads)
    elif kind == "logistic":
        from leadscore.linear import BinnedLogistic

        model = BinnedLogistic(**p, categorical=tuple(code_idx), class_weight="balanced" if weighted else None,
                               groups=tuple(group_idx), exclude=tuple(exclude_idx) if group_idx else ())
    else:
        raise LeadscoreError(f"unknown model kind {kind}")
    steps.append(("model", model))
    return Pipeline(steps), fit_kwargs, effective


def suggest_params(name: str, trial) -> dict[str, Any]:
    """The search space of one model (imbalance treatment included)."""
    s: dict[str, Any] = {}
    if name == "lightgbm":
        s["n_estimators"] = trial.suggest_int("n_estimators", 50, 800, log=True)
        s["learning_rate"] = trial.suggest_float("learning_rate", 0.01, 0.3, log=True)
        s["num_leaves"] = trial.suggest_int("num_leaves", 7, 127, log=True)
        s["min_child_samples"] = trial.suggest_int("min_child_samples", 5, 200, log=True)
        s["subsample"] = trial.suggest_float("subsample", 0.5, 1.0)
        s["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.3, 1.0)
        s["reg_lambda"] = trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True)
        s["cat_l2"] = trial.suggest_float("cat_l2", 1.0, 200.0, log=True)
        s["cat_smooth"] = trial.suggest_float("cat_smooth", 1.0, 200.0, log=True)
        s["min_data_per_group"] = trial.suggest_int("min_data_per_group", 20, 1000, log=True)
    elif name == "xgboost":
        s["n_estimators"] = trial.suggest_int("n_estimators", 50, 800, log=True)
        s["learning_rate"] = trial.suggest_float("learning_rate", 0.01, 0.3, log=True)
        s["max_depth"] = trial.suggest_int("max_depth", 2, 10)
        s["min_child_weight"] = trial.suggest_float("min_child_weight", 0.5, 30.0, log=True)
        s["subsample"] = trial.suggest_float("subsample", 0.5, 1.0)
        s["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.3, 1.0)
        s["reg_lambda"] = trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True)
    elif name == "logistic":
        s["C"] = trial.suggest_float("C", 0.01, 10.0, log=True)
        s["n_bins"] = trial.suggest_int("n_bins", 5, 40)
        s["group_scale"] = trial.suggest_float("group_scale", 1.0, 100.0, log=True)
    else:
        s["n_estimators"] = trial.suggest_int("n_estimators", 50, 300, log=True)
        # leaves, not depth, bound the size of the saved forest (<= 2k nodes a tree)
        s["max_leaf_nodes"] = trial.suggest_int("max_leaf_nodes", 32, 1024, log=True)
        s["min_samples_leaf"] = trial.suggest_int("min_samples_leaf", 1, 100, log=True)
        s["max_features"] = trial.suggest_categorical("max_features", ["sqrt", "0.2", "0.35", "0.5"])
        # both forests bootstrap a fraction of the rows: the main lever on their cost
        s["max_samples"] = trial.suggest_float("max_samples", 0.2, 1.0)
    s["imbalance"] = trial.suggest_categorical("imbalance", list(IMBALANCE_CHOICES))
    if s["imbalance"] in ("smote", "smote_under"):
        s["smote_ratio"] = trial.suggest_float("smote_ratio", 0.1, 0.6)
    if s["imbalance"] in ("under", "smote_under"):
        s["under_ratio"] = trial.suggest_float("under_ratio", 0.15, 1.0)
    return s


def model_params(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna stores categorical choices as given; max_features fractions are strings there."""
    out = dict(params)
    mf = out.get("max_features")
    if isinstance(mf, str) and mf not in ("sqrt", "log2"):
        out["max_features"] = float(mf)
    return out




def save_base_model(kind: str, estimator: Any, path: Path) -> None:
    """Write a fitted base model in a format that cannot run code when loaded."""
    if kind == "lightgbm":
        estimator.booster_.save_model(str(path))
    elif kind == "xgboost":
        estimator.get_booster().save_model(str(path))
    elif kind == "logistic":
        estimator.save(path)
    else:
        import skops.io as sio

        sio.dump(estimator, str(path))




def load_skops(path: Path, expected: tuple[type, ...] = ()) -> Any:
    """skops.io.load with an explicit trusted-type list; refuses anything else by name."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:  # corrupt zip, wrong format
        raise LeadscoreError(f"model artifact {path} is not a readable skops file: {exc}") from exc
    refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if refused:
        raise LeadscoreError(f"model artifact {path} contains untrusted type(s) {', '.join(refused)}: refusing to load")
    trusted = [t for t in TRUSTED_SKOPS_TYPES if t in untrusted]
    obj = sio.load(str(path), trusted=trusted)
    if expected and not isinstance(obj, expected):
        raise LeadscoreError(f"model artifact {path} holds a {type(obj).__name__}, expected {expected[0].__name__}")
    return obj


def threads(rows: int | None = None) -> int:
    """Threads for training and prediction: LEADSCORE_THREADS, else min(cpu count, 4); a single
    thread below 20,000 rows, where thread start-up costs more than it saves. Keep it fixed
    between runs that must reproduce each other."""
    env = os.environ.get("LEADSCORE_THREADS")
    if env:
        return max(1, int(env))
    if rows is not None and rows < 20_000:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def load_base_model(kind: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function X (float32 matrix) -> positive-class probability for one saved base model."""
    if kind == "lightgbm":
        native = lightgbm_predictor(path)
        if native is not None:
            return _native_lightgbm(native, path)
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        return lambda X: np.asarray(booster.predict(X, num_threads=threads()), dtype=np.float64)
    if kind == "xgboost":
        import xgboost as xgb

        bst = xgb.Booster()
        bst.load_model(str(path))
        bst.set_param({"nthread": threads()})
        return lambda X: np.asarray(bst.inplace_predict(X), dtype=np.float64)
    if kind in ("random_forest", "extra_trees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        expected = RandomForestClassifier if kind == "random_forest" else ExtraTreesClassifier
        est = load_skops(path, (expected,))
        return lambda X: forest_predict(est, X, threads(len(X)))
    if kind == "logistic":
        from leadscore.linear import BinnedLogistic

        linear = BinnedLogistic.load(path)
        linear.threads = threads()
        return lambda X: linear.predict_proba(X)[:, 1]
    raise LeadscoreError(f"unknown base model kind {kind!r} for {path}")


def lightgbm_predictor(path: Path) -> Any:
    """The numba evaluator of a saved LightGBM model (treepredict.LightGBMPredictor: the
    probabilities of `Booster.predict`, bit for bit, at a tenth of its CPU), or None where numba
    is not installed or the model is not one it covers (not binary, linear trees): LightGBM's own
    predict then."""
    from leadscore import treepredict

    if not treepredict.available():
        return None
    text = path.read_text()
    if treepredict.covers(text) is not None:
        return None
    return treepredict.LightGBMPredictor(text)


def _native_lightgbm(native: Any, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Predict with `native`; a matrix of another width goes to LightGBM itself (loaded then),
    which refuses it with its own message. LightGBM is not imported otherwise (with sklearn and
    scipy behind it, 2 s of a scoring run's start)."""

    def predict(X: np.ndarray) -> np.ndarray:
        if getattr(X, "ndim", 0) == 2 and X.shape[1] == native.n_features:
            return native.predict(X, threads(len(X)))
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        return np.asarray(booster.predict(X, num_threads=threads()), dtype=np.float64)

    predict.native = native  # type: ignore[attr-defined]  # which evaluator (tests)
    return predict


def forest_predict(est: Any, X: np.ndarray, n_threads: int = 1, chunk: int = 20_000) -> np.ndarray:
    """Positive-class probability of a RandomForest/ExtraTrees, bit-for-bit reproducible.

    scikit-learn's own n_jobs > 1 adds the trees' votes in whatever order the threads finish,
    which changes the last bits; here rows are split into chunks scored in parallel, each chunk
    single-threaded, so every row's sum runs over the trees in the same order."""
    est.set_params(n_jobs=1)
    if n_threads <= 1 or len(X) <= chunk:
        return np.asarray(est.predict_proba(X)[:, 1], dtype=np.float64)
    from concurrent.futures import ThreadPoolExecutor

    parts = [X[i:i + chunk] for i in range(0, len(X), chunk)]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        out = list(pool.map(lambda part: est.predict_proba(part)[:, 1], parts))
    return np.concatenate(out).astype(np.float64)


def predict_base(kind: str, est: Any, X: np.ndarray, n_threads: int) -> np.ndarray:
    """Positive-class probability of a fitted (in-memory) base estimator."""
    if kind in ("random_forest", "extra_trees"):
        return forest_predict(est, X, n_threads)
    return np.asarray(est.predict_proba(X)[:, 1], dtype=np.float64)


