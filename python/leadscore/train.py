"""`leadscore train`: tune, train, combine and register the lead-conversion ensemble.

What one call does (`train_model`):

1. Reads the `split = 'train'` rows of `main.fct_lead_features` (features.py: every column but
   lead_id/id/split/is_converted is a feature) and learns the categorical encoding.
2. For each of LightGBM, XGBoost, RandomForest and ExtraTrees: an Optuna study (TPE sampler
   seeded by `seed`, median pruner on per-fold intermediate values) over the model's
   hyper-parameters AND the imbalance treatment: none, class weights, SMOTE,
   RandomUnderSampler, or SMOTE followed by undersampling, with their ratios. Resamplers live
   inside imbalanced-learn Pipelines, so they only ever touch the training folds. The objective
   is the mean per-fold average precision (PR AUC) of stratified K-fold CV; the same folds are
   used for every model so their out-of-fold (OOF) predictions can be combined.
   Each base model's probabilities are mapped back to the training positive rate (a resampled /
   class-weighted model believes in a higher rate; the odds are corrected by the ratio of the
   rates), so the four models and the ensemble speak the same probability scale.
3. Final fit of each model with its best parameters on all training rows.
4. Ensemble: `voting` (default) = weighted average of the corrected probabilities with weights
   minimising the OOF log-loss over the simplex (SLSQP); as a guard, if equal weights or the best
   single model has a higher OOF F1 than the optimised blend, that candidate is used (the result
   says which). `stacking` = logistic regression on the models' OOF logits; the meta-model is
   itself cross-validated on the same folds, so its OOF F1 is honest.
5. Cutoff: the threshold maximising F1 on the ensemble's OOF probabilities, read off
   scikit-learn's `precision_recall_curve` (every distinct score is a candidate threshold).

Operating point / `target_prevalence` (which to use when):

* `None` (default): the scoring population converts like the training rows (pi, ~8%). Scores
  are calibrated to pi and the cutoff maximises OOF F1 at pi. Use this for the nightly job, where
  new leads come from the same funnel.
* a float `P`: the scoring population is known to convert at rate P (the competition's test file
  was rebalanced to ~1:2, P ~ 0.33). Probabilities are prior-shifted (odds x odds(P)/odds(pi),
  Saerens et al. 2002) and the cutoff maximises the *expected* F1 at prevalence P, computed on
  OOF predictions with positives reweighted by P/pi and negatives by (1-P)/(1-pi). cv_f1 is then
  that expected F1. Use it when the rate is known from the business or the task statement.
* `"auto"`: P is estimated from the unlabeled leads (split = 'score') with the EM procedure of
  Saerens, Latinne & Decaestecker (2002) applied to the ensemble's probabilities, then as above.
  Use it when the scoring batch is believed to differ from training but its rate is unknown; it
  relies on calibrated probabilities and on the score rows being one population, and it is noisy
  for a few hundred rows.
  The model stores train prevalence, target prevalence and cutoff; `registry.LoadedModel` applies
  the same adjustment when scoring.

Time budget: `time_budget` seconds is the budget of the WHOLE call (data loading, tuning, final
fits, artifacts and report): the remaining time is split among the models still to do, each
model stops tuning when its next trial or fold would no longer leave room for its final fit
(estimated from its tuning fits), and a reserve is kept for writing. A trial cut short by time is
recorded as FAIL (not used by the sampler). If even the default parameters cannot be
cross-validated in time, a model is left out of the ensemble; LightGBM with defaults is always
trained, so a tiny budget still yields a valid model (and may overrun it by that much).

Reproducibility: same data + same seed + same thread count (LEADSCORE_THREADS) -> identical
cutoff and scores, *provided the number of trials is fixed by `trials` and the budget does not
bind* (time-based stopping makes the trial count depend on machine speed). LightGBM runs with
`deterministic=True, force_row_wise=True`, every estimator and sampler is seeded, folds are
seeded and rows are read in lead_id order.

Studies are stored in an Optuna journal file `models_dir()/optuna-journal.log` under the name
`leadscore-<model>-<feature hash>-s<seed>-k<folds>-<search space version>`; a later run resumes
them (`trials` caps the total number of finished trials in the study, earlier runs included);
`resume=False` deletes and restarts them. Trials of earlier runs may have been measured on older
data: the best parameters are always re-cross-validated on the current rows before use.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadscore import config, db, registry
from leadscore import features as feat
from leadscore.errors import LeadscoreError

MODEL_NAMES = ("lightgbm", "xgboost", "random_forest", "extra_trees")
MODEL_FILES = {
    "lightgbm": "lightgbm.txt",
    "xgboost": "xgboost.ubj",
    "random_forest": "random_forest.skops",
    "extra_trees": "extra_trees.skops",
}
IMBALANCE_CHOICES = ("none", "class_weight", "smote", "under", "smote_under")
SEARCH_SPACE_VERSION = "ss3"
ENSEMBLE_KINDS = ("voting", "stacking")
# Relative cost of one fold with default parameters (measured on the generated 60k leads), used
# to guess whether a model's first cross-validation fits in the time left before trying it.
COST_FACTOR = {"lightgbm": 1.0, "xgboost": 2.2, "random_forest": 1.4, "extra_trees": 0.8}

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                 "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "imbalance": "none"},
    "xgboost": {"n_estimators": 200, "learning_rate": 0.08, "max_depth": 5, "min_child_weight": 1.0,
                "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "imbalance": "none"},
    "random_forest": {"n_estimators": 150, "max_leaf_nodes": 256, "min_samples_leaf": 3, "max_features": "sqrt",
                      "max_samples": 0.5, "imbalance": "none"},
    "extra_trees": {"n_estimators": 150, "max_leaf_nodes": 256, "min_samples_leaf": 3, "max_features": "sqrt",
                    "max_samples": 0.5, "imbalance": "none"},
}


# ---------------------------------------------------------------------------- results


@dataclass
class ModelResult:
    name: str
    params: dict[str, Any]
    effective_prior: float
    oof_f1: float
    oof_auc: float
    oof_ap: float
    trials_total: int  # finished (complete or pruned) trials in the study, earlier runs included
    trials_this_run: int  # finished trials of this run
    trials_stopped_for_time: int
    best_trial: int | None
    fold_seconds: float
    fit_seconds: float
    oof: np.ndarray = field(repr=False)  # corrected to the training prior
    estimator: Any = field(repr=False)

    def metrics(self) -> dict[str, Any]:
        return {
            "oof_f1": self.oof_f1, "oof_auc": self.oof_auc, "oof_average_precision": self.oof_ap,
            "imbalance": self.params.get("imbalance"), "effective_prior": self.effective_prior,
            "trials_total": self.trials_total, "trials_this_run": self.trials_this_run,
            "trials_stopped_for_time": self.trials_stopped_for_time,
            "best_trial": self.best_trial, "fold_seconds": round(self.fold_seconds, 3),
            "fit_seconds": round(self.fit_seconds, 3),
        }


@dataclass
class TrainResult:
    """What `leadscore train` prints. Metrics are out-of-fold (OOF) on the training rows."""

    model_version: str
    cv_f1: float
    cv_auc: float
    cv_average_precision: float
    cutoff: float
    ensemble: str
    weights: dict[str, float]
    weights_source: str
    per_model: dict[str, dict[str, Any]]
    train_rows: int
    train_positive_rate: float
    target_prevalence: float | None
    target_prevalence_mode: str
    seconds: float
    time_budget: float
    artifact_dir: Path
    report_dir: Path

    def summary(self) -> str:
        lines = [
            f"model {self.model_version} ({self.ensemble}, {self.train_rows} training rows, "
            f"positive rate {self.train_positive_rate:.3%})",
            f"  out-of-fold F1 {self.cv_f1:.4f}  AUC {self.cv_auc:.4f}  PR-AUC {self.cv_average_precision:.4f}  "
            f"cutoff {self.cutoff:.4f}",
        ]
        if self.target_prevalence is not None:
            lines.append(f"  probabilities adjusted to a target prevalence of {self.target_prevalence:.3%} "
                         f"({self.target_prevalence_mode}); F1 is the expected F1 at that prevalence")
        for name, m in self.per_model.items():
            w = self.weights.get(name)
            lines.append(f"  {name:<14} OOF F1 {m['oof_f1']:.4f}  AUC {m['oof_auc']:.4f}  "
                         f"imbalance {m['imbalance']:<12} trials {m['trials_this_run']} (study {m['trials_total']})"
                         + (f"  weight {w:.3f}" if w is not None else ""))
        lines.append(f"  trained in {self.seconds:.1f}s of a {self.time_budget:.0f}s budget; "
                     f"artifacts {self.artifact_dir}; report {self.report_dir}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["artifact_dir"] = str(self.artifact_dir)
        d["report_dir"] = str(self.report_dir)
        return d

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------- metric helpers


def f1_optimal_cutoff(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """(cutoff, f1, precision, recall) maximising F1 for the rule `p >= cutoff`.

    Candidates are the distinct scores (scikit-learn's precision_recall_curve). The returned
    cutoff lies halfway between the chosen score and the next lower one, so it does not sit on a
    training score; the F1 on these rows is the same."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    prec, rec, thr = precision_recall_curve(y, p, sample_weight=sample_weight)
    prec, rec = prec[:-1], rec[:-1]
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
    i = int(np.argmax(f1))
    t = float(thr[i])
    below = p[p < t]
    cutoff = (t + float(below.max())) / 2 if below.size else t
    return cutoff, float(f1[i]), float(prec[i]), float(rec[i])


def f1_at(y: np.ndarray, p: np.ndarray, cutoff: float, sample_weight: np.ndarray | None = None) -> float:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= cutoff
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    tp = float(w[pred & y].sum())
    fp = float(w[pred & ~y].sum())
    fn = float(w[~pred & y].sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def best_f1(y: np.ndarray, p: np.ndarray) -> float:
    return f1_optimal_cutoff(y, p)[1]


def prevalence_weights(y: np.ndarray, pi: float, target: float | None) -> np.ndarray | None:
    """Sample weights that turn training rows at rate pi into an expected population at `target`."""
    if target is None:
        return None
    y = np.asarray(y).astype(bool)
    return np.where(y, target / pi, (1 - target) / (1 - pi))


def estimate_prevalence_em(p: np.ndarray, pi: float, tol: float = 1e-7, max_iter: int = 10_000) -> float:
    """Saerens, Latinne & Decaestecker (2002): EM estimate of the positive rate of an unlabeled
    population from posteriors `p` calibrated at training rate `pi`."""
    p = np.asarray(p, dtype=np.float64)
    prior = pi
    for _ in range(max_iter):
        new = float(np.mean(registry.shift_prior(p, pi, prior)))
        if abs(new - prior) < tol:
            prior = new
            break
        prior = new
    return float(np.clip(prior, 1e-4, 1 - 1e-4))


# ----------------------------------------------------------------------- estimators


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


def build_pipeline(name: str, params: dict[str, Any], pi: float, cat_idx: list[int], code_idx: list[int],
                   seed: int, n_threads: int, smotenc: bool = False):
    """An imbalanced-learn Pipeline: [SMOTE/SMOTENC] -> [RandomUnderSampler] -> model.
    Returns (pipeline, fit kwargs, effective prior)."""
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
        if smotenc and cat_idx:
            steps.append(("smote", SMOTENC(categorical_features=cat_idx, sampling_strategy=smote, random_state=seed)))
        else:
            steps.append(("smote", SMOTE(sampling_strategy=smote, random_state=seed)))
    if under is not None:
        steps.append(("under", RandomUnderSampler(sampling_strategy=under, random_state=seed)))
    p = {k: v for k, v in params.items() if k not in ("imbalance", "smote_ratio", "under_ratio")}
    fit_kwargs: dict[str, Any] = {}
    if name == "lightgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(
            **p, subsample_freq=1, class_weight="balanced" if weighted else None, random_state=seed,
            n_jobs=n_threads, deterministic=True, force_row_wise=True, verbose=-1,
        )
        if code_idx:
            fit_kwargs["model__categorical_feature"] = code_idx
    elif name == "xgboost":
        import xgboost as xgb

        model = xgb.XGBClassifier(
            **p, tree_method="hist", objective="binary:logistic", eval_metric="logloss",
            scale_pos_weight=(1 - pi) / pi if weighted else 1.0, random_state=seed, n_jobs=n_threads,
        )
    elif name in ("random_forest", "extra_trees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        cls = RandomForestClassifier if name == "random_forest" else ExtraTreesClassifier
        model = cls(**p, bootstrap=True, class_weight="balanced_subsample" if weighted else None,
                    random_state=seed, n_jobs=n_threads)
    else:
        raise LeadscoreError(f"unknown model {name}")
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
    elif name == "xgboost":
        s["n_estimators"] = trial.suggest_int("n_estimators", 50, 800, log=True)
        s["learning_rate"] = trial.suggest_float("learning_rate", 0.01, 0.3, log=True)
        s["max_depth"] = trial.suggest_int("max_depth", 2, 10)
        s["min_child_weight"] = trial.suggest_float("min_child_weight", 0.5, 30.0, log=True)
        s["subsample"] = trial.suggest_float("subsample", 0.5, 1.0)
        s["colsample_bytree"] = trial.suggest_float("colsample_bytree", 0.3, 1.0)
        s["reg_lambda"] = trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True)
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


def _model_params(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna stores categorical choices as given; max_features fractions are strings there."""
    out = dict(params)
    mf = out.get("max_features")
    if isinstance(mf, str) and mf not in ("sqrt", "log2"):
        out["max_features"] = float(mf)
    return out


# ----------------------------------------------------------------------- budget/progress


class Clock:
    def __init__(self, budget: float):
        self.start = time.monotonic()
        self.budget = float(budget)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


class _Progress:
    """A rich progress bar over the time budget on stderr, only when it is a terminal."""

    def __init__(self, enabled: bool, clock: Clock):
        self.clock = clock
        self._p = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("[bold]train[/bold] {task.description}"), BarColumn(),
                               TimeElapsedColumn(), TextColumn("of {task.total:.0f}s budget"),
                               console=Console(stderr=True), transient=False)
            self._p.start()
            self._task = self._p.add_task("loading", total=clock.budget)

    def update(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text, completed=min(self.clock.elapsed(), self.clock.budget))

    def close(self) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=self.clock.budget)
            self._p.stop()


# ----------------------------------------------------------------------- cross-validation


class _OutOfTime(Exception):
    pass


@dataclass
class _Data:
    X: np.ndarray
    y: np.ndarray
    pi: float
    folds: list[tuple[np.ndarray, np.ndarray]]
    cat_idx: list[int]
    code_idx: list[int]
    seed: int
    n_threads: int


def cross_validate(name: str, params: dict[str, Any], data: _Data, trial=None,
                   fold_deadline: Callable[[float, int], bool] | None = None) -> tuple[np.ndarray, list[float], float, float]:
    """OOF probabilities (corrected to the training prior), per-fold AP, mean fold seconds and
    the effective prior. Reports the running mean fold AP to `trial` after every fold (pruning);
    `fold_deadline(seconds per fold so far, folds left)` returning True stops with _OutOfTime."""
    import optuna

    oof = np.zeros(len(data.y), dtype=np.float64)
    aps: list[float] = []
    secs: list[float] = []
    effective = data.pi
    for k, (tr, va) in enumerate(data.folds):
        if fold_deadline is not None and fold_deadline(max(secs) if secs else 0.0, len(data.folds) - k):
            raise _OutOfTime
        t = time.monotonic()
        pipe, fit_kwargs, effective = build_pipeline(name, _model_params(params), data.pi, data.cat_idx,
                                                     data.code_idx, data.seed, data.n_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(data.X[tr], data.y[tr], **fit_kwargs)
            # samplers do nothing at prediction time: predict with the model itself
            raw = registry.predict_base(name, pipe.named_steps["model"], data.X[va], data.n_threads)
        oof[va] = registry.shift_prior(raw, effective, data.pi)
        secs.append(time.monotonic() - t)
        aps.append(float(average_precision_score(data.y[va], oof[va])))
        if trial is not None:
            trial.report(float(np.mean(aps)), step=k)
            if k < len(data.folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned
    return oof, aps, float(np.mean(secs)), effective


def _storage():
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    config.models_dir().mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(config.models_dir() / "optuna-journal.log")))


def study_name(model: str, fhash: str, seed: int, folds: int) -> str:
    return f"leadscore-{model}-{fhash[:12]}-s{seed}-k{folds}-{SEARCH_SPACE_VERSION}"


def tune_model(name: str, data: _Data, fhash: str, slot_end: float, global_end: float, trials: int | None,
               resume: bool, mandatory: bool, progress: _Progress,
               ref: tuple[str, float] | None = None) -> ModelResult | None:
    """Optuna study + final fit for one model (times on the monotonic clock).

    Tuning trials run while a whole CV plus the final fit still ends before `slot_end`; the first
    trial of the run only needs to end before `global_end`. `ref` = (model, fold seconds) of a
    model already run, to guess this model's cost before its first fold. Returns None when not
    even one cross-validation fits (and not `mandatory`)."""
    import optuna
    from optuna.trial import TrialState

    storage = _storage()
    sname = study_name(name, fhash, data.seed, len(data.folds))
    if not resume:
        try:
            optuna.delete_study(study_name=sname, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(
        study_name=sname, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=data.seed + 1000 * MODEL_NAMES.index(name)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    if not study.trials:
        study.enqueue_trial(DEFAULT_PARAMS[name])
    k = len(data.folds)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    fold_times = [t.user_attrs["fold_seconds"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if "fold_seconds" in t.user_attrs]
    observed: list[float] = []  # fold seconds seen in this run (this machine)
    cache: dict[int, tuple[np.ndarray, float, float]] = {}  # trial number -> (oof, fold s, eff prior)
    n_run = 0

    def fit_estimate(fold_s: float) -> float:
        return fold_s * k / (k - 1) * 1.25 + 0.2

    def best_fold_seconds() -> float:
        try:
            bt = study.best_trial
        except ValueError:
            return max(observed or fold_times or [0.0])
        if bt.number in cache:
            return cache[bt.number][1]
        return float(bt.user_attrs.get("fold_seconds", max(observed or fold_times or [0.0])))

    guess = None  # fold seconds of a model not yet run here, from another model's timing
    if ref is not None:
        guess = ref[1] * COST_FACTOR[name] / COST_FACTOR[ref[0]]

    def room(end: float, est_fold: float | None, folds_left: int) -> bool:
        """Do `folds_left` folds plus the final fit still end before `end`?"""
        if est_fold is None:
            return time.monotonic() < end
        fit = fit_estimate(max(est_fold, best_fold_seconds()))
        return time.monotonic() + est_fold * folds_left + fit <= end

    time_fails = 0
    n_stopped = 0  # trials abandoned for time (FAIL), included in n_run
    while True:
        n_done = len(study.get_trials(deepcopy=False, states=finished))
        if trials is not None and n_done >= trials:
            break
        # The first trial of this run may use all the time left (global_end), so a model is not
        # dropped, nor a half-done CV thrown away, for an unlucky split of the budget; further
        # trials stay within the model's slot.
        first = n_run == 0
        end = global_end if first else slot_end
        est_fold = (min(observed) if time_fails else max(observed)) if observed else (max(fold_times) if fold_times else guess)
        unconditional = mandatory and first
        if not unconditional and not room(end, est_fold, k):
            break
        trial = study.ask()
        params = suggest_params(name, trial)  # an enqueued trial (defaults) gets its fixed values here

        def deadline(est: float, folds_left: int, _end=end, _free=unconditional) -> bool:
            return (not _free) and est > 0 and not room(_end, est, folds_left)

        progress.update(f"{name}: trial {trial.number} (best {study.best_value:.4f})" if _has_complete(study)
                        else f"{name}: trial {trial.number}")
        try:
            oof, aps, fold_s, eff = cross_validate(name, params, data, trial, deadline)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            n_run += 1
            continue
        except _OutOfTime:
            # this parameter set turned out too slow for the time left: record it (FAIL, unused
            # by the sampler) and let a cheaper one try, at most 3 times in a row
            trial.set_user_attr("stopped", "time budget")
            study.tell(trial, state=TrialState.FAIL)
            n_run += 1
            n_stopped += 1
            time_fails += 1
            if time_fails >= 3 or not observed or not room(end, min(observed), k):
                break
            continue
        time_fails = 0
        value = float(np.mean(aps))
        trial.set_user_attr("fold_seconds", fold_s)
        trial.set_user_attr("oof_f1", best_f1(data.y, oof))
        trial.set_user_attr("fold_average_precision", aps)
        study.tell(trial, value)
        observed.append(fold_s)
        n_run += 1
        if study.best_trial.number == trial.number:
            cache = {trial.number: (oof, fold_s, eff)}

    if not _has_complete(study):
        if not mandatory:
            return None
        best_params, best_number = dict(DEFAULT_PARAMS[name]), None
    else:
        bt = study.best_trial
        best_params, best_number = dict(bt.params), bt.number
    if best_number in cache:
        oof, fold_s, eff = cache[best_number]
    else:
        # best trial from an earlier run (or defaults): cross-validate it on the current rows
        est = best_fold_seconds() or guess
        if not mandatory and not room(global_end, est, k):
            return None
        progress.update(f"{name}: re-validating best parameters")
        oof, _, fold_s, eff = cross_validate(name, best_params, data)
    progress.update(f"{name}: final fit")
    t = time.monotonic()
    pipe, fit_kwargs, eff = build_pipeline(name, _model_params(best_params), data.pi, data.cat_idx, data.code_idx,
                                           data.seed, data.n_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(data.X, data.y, **fit_kwargs)
    fit_s = time.monotonic() - t
    return ModelResult(
        name=name, params=best_params, effective_prior=eff,
        oof_f1=best_f1(data.y, oof), oof_auc=float(roc_auc_score(data.y, oof)),
        oof_ap=float(average_precision_score(data.y, oof)),
        trials_total=len(study.get_trials(deepcopy=False, states=finished)), trials_this_run=n_run - n_stopped,
        trials_stopped_for_time=n_stopped,
        best_trial=best_number, fold_seconds=fold_s, fit_seconds=fit_s, oof=oof,
        estimator=pipe.named_steps["model"],
    )


def _has_complete(study) -> bool:
    from optuna.trial import TrialState

    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# ----------------------------------------------------------------------- ensembles


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(ll, weights=w))


def fit_voting_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log-loss of P @ w (SLSQP, deterministic start)."""
    from scipy.optimize import minimize

    m = P.shape[1]
    if m == 1:
        return np.ones(1)
    yf = y.astype(float)

    def loss(w):
        return _log_loss(yf, P @ w)

    def grad(w):
        p = np.clip(P @ w, 1e-7, 1 - 1e-7)
        return P.T @ ((p - yf) / (p * (1 - p))) / len(yf)

    res = minimize(loss, np.full(m, 1.0 / m), jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}],
                   options={"maxiter": 500, "ftol": 1e-10})
    w = np.clip(res.x, 0.0, None)
    w[w < 1e-4] = 0.0
    return w / w.sum()


def _platt(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000).fit(registry.logit(p).reshape(-1, 1), y)
    return {"slope": float(lr.coef_[0][0]), "intercept": float(lr.intercept_[0])}


def build_ensemble(kind: str, results: list[ModelResult], y: np.ndarray, folds, seed: int):
    """(ensemble spec for model.json, OOF ensemble probabilities, weights dict, weights source)."""
    names = [r.name for r in results]
    P = np.column_stack([r.oof for r in results])
    if kind == "voting":
        w = fit_voting_weights(P, y)
        candidates: list[tuple[str, np.ndarray]] = [("optimised log-loss", w), ("equal", np.full(len(names), 1 / len(names)))]
        for i, n in enumerate(names):
            one = np.zeros(len(names))
            one[i] = 1.0
            candidates.append((f"best single model ({n})", one))
        scored = [(best_f1(y, P @ cw), -i, src, cw) for i, (src, cw) in enumerate(candidates)]
        _, _, source, chosen = max(scored, key=lambda t: (round(t[0], 12), t[1]))
        weights = {n: float(x) for n, x in zip(names, chosen, strict=True)}
        spec = {"kind": "voting", "weights": weights,
                "candidates": {src: {"oof_f1": f, "weights": [float(v) for v in cw]} for f, _, src, cw in scored}}
        # Platt scaling of the blend on its OOF probabilities: monotone (ranking, F1 and the cutoff's
        # position are unchanged) but makes the probabilities fit for the prior-shift / EM step
        # (Alexandari et al. 2020: EM prevalence estimates need calibrated posteriors).
        blend = np.clip(P @ chosen, 0, 1)
        spec["calibration"] = _platt(blend, y)
        return spec, registry.combine({n: P[:, i] for i, n in enumerate(names)}, spec), weights, source
    if kind == "stacking":
        from sklearn.linear_model import LogisticRegression

        Z = registry.logit(P)
        oof = np.zeros(len(y))
        for tr, va in folds:
            lr = LogisticRegression(C=1.0, max_iter=1000).fit(Z[tr], y[tr])
            oof[va] = lr.predict_proba(Z[va])[:, 1]
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(Z, y)
        coef = [float(c) for c in lr.coef_[0]]
        spec = {"kind": "stacking", "inputs": names, "coef": coef, "intercept": float(lr.intercept_[0])}
        return spec, oof, {n: c for n, c in zip(names, coef, strict=True)}, "logistic regression on OOF logits"
    raise LeadscoreError(f"unknown ensemble kind {kind!r}: expected one of {', '.join(ENSEMBLE_KINDS)}")


# ----------------------------------------------------------------------- artifacts


def _save_base_model(result: ModelResult, path: Path) -> None:
    if result.name == "lightgbm":
        result.estimator.booster_.save_model(str(path))
    elif result.name == "xgboost":
        result.estimator.get_booster().save_model(str(path))
    else:
        import skops.io as sio

        sio.dump(result.estimator, str(path))


def _importances(results: list[ModelResult], columns: list[str]) -> tuple[str, dict[str, float]]:
    by_name = {r.name: r for r in results}
    if "lightgbm" in by_name:
        gain = by_name["lightgbm"].estimator.booster_.feature_importance(importance_type="gain")
        return "LightGBM total gain", {c: float(g) for c, g in zip(columns, gain, strict=True)}
    if "xgboost" in by_name:
        score = by_name["xgboost"].estimator.get_booster().get_score(importance_type="total_gain")
        return "XGBoost total gain", {c: float(score.get(f"f{i}", 0.0)) for i, c in enumerate(columns)}
    r = results[0]
    return f"{r.name} impurity decrease", {c: float(v) for c, v in zip(columns, r.estimator.feature_importances_, strict=True)}


# ----------------------------------------------------------------------- entry point


def _open(con_or_db_path) -> tuple[duckdb.DuckDBPyConnection, bool]:
    if isinstance(con_or_db_path, duckdb.DuckDBPyConnection):
        return con_or_db_path, False
    path = Path(con_or_db_path) if con_or_db_path is not None else None
    return db.connect(path), True


def train_model(
    con_or_db_path: duckdb.DuckDBPyConnection | str | Path | None = None,
    time_budget: float = 300,
    trials: int | None = None,
    seed: int = 0,
    folds: int = 5,
    ensemble: str = "voting",
    target_prevalence: float | str | None = None,
    resume: bool = True,
    progress: bool = True,
    *,
    models: tuple[str, ...] = MODEL_NAMES,
) -> TrainResult:
    """Tune, train and register a new model version; it becomes the current model.

    `con_or_db_path`: an open DuckDB connection (kept open), or a database path / None for
    `config.db_path()` (opened for reading the rows and again for registering, so the database is
    not locked for the whole run). See the module docstring for the budget, reproducibility and
    `target_prevalence` semantics. Raises LeadscoreError for bad input."""
    clock = Clock(time_budget)
    if time_budget <= 0:
        raise LeadscoreError(f"time budget must be positive, got {time_budget}")
    if ensemble not in ENSEMBLE_KINDS:
        raise LeadscoreError(f"unknown ensemble {ensemble!r}: expected one of {', '.join(ENSEMBLE_KINDS)}")
    if folds < 2:
        raise LeadscoreError(f"need at least 2 folds, got {folds}")
    if isinstance(target_prevalence, str) and target_prevalence != "auto":
        raise LeadscoreError(f"target prevalence must be a rate in (0, 1) or 'auto', got {target_prevalence!r}")
    if isinstance(target_prevalence, int | float) and not 0 < float(target_prevalence) < 1:
        raise LeadscoreError(f"target prevalence must be a rate in (0, 1), got {target_prevalence}")
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise LeadscoreError(f"unknown model(s) {unknown}: choose from {', '.join(MODEL_NAMES)}")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = _Progress(progress, clock)
    try:
        return _train(con_or_db_path, clock, bar, trials, seed, folds, ensemble, target_prevalence, resume, models)
    finally:
        bar.close()


def _train(con_or_db_path, clock: Clock, bar: _Progress, trials, seed, folds, ensemble, target_prevalence,
           resume, models) -> TrainResult:
    con, owned = _open(con_or_db_path)
    try:
        bar.update("reading training rows")
        flist = feat.read_features(con)
        fhash = feat.feature_hash(flist)
        train_df = feat.load_split(con, "train", flist)
        score_df = feat.load_split(con, "score", flist) if target_prevalence == "auto" else None
        dbt_id = registry.dbt_invocation_id(con)
    finally:
        if owned:
            con.close()

    if train_df[feat.LABEL].isna().any():
        raise LeadscoreError(f"{int(train_df[feat.LABEL].isna().sum())} training rows have no is_converted label")
    y = train_df[feat.LABEL].to_numpy(dtype=bool).astype(np.int8)
    n_pos = int(y.sum())
    if n_pos < folds or len(y) - n_pos < folds:
        raise LeadscoreError(f"need at least {folds} positive and negative training rows, have {n_pos} / {len(y) - n_pos}")
    pi = n_pos / len(y)
    encoding = feat.Encoding.fit(train_df, flist)
    X = encoding.transform(train_df)
    columns = encoding.column_names
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    data = _Data(X=X, y=y, pi=pi, folds=list(skf.split(X, y)), cat_idx=encoding.categorical_indices,
                 code_idx=encoding.category_code_indices, seed=seed, n_threads=registry.threads(len(y)))

    # reserve for ensemble, artifacts and report; the rest is split among the models still to do
    reserve = min(max(0.05 * clock.budget, 2.5), 15.0)
    results: list[ModelResult] = []
    ref: tuple[str, float] | None = None
    for i, name in enumerate(models):
        remaining = len(models) - i
        slot = max(0.0, (clock.left() - reserve) / remaining)
        mandatory = i == 0 and not results
        r = tune_model(name, data, fhash, time.monotonic() + slot, clock.start + clock.budget - reserve, trials,
                       resume, mandatory, bar, ref)
        if r is not None:
            results.append(r)
            ref = ref or (r.name, r.fold_seconds)
    if not results:  # cannot happen: the first model is mandatory
        raise LeadscoreError("no model could be trained")

    bar.update("combining models")
    spec, oof, weights, source = build_ensemble(ensemble, results, y, data.folds, seed)

    mode = "none"
    target: float | None = None
    if target_prevalence == "auto":
        mode = "auto"
        if score_df is None or score_df.empty:
            raise LeadscoreError("target prevalence 'auto' needs unlabeled rows (split = 'score') to estimate from")
        Xs = encoding.transform(score_df)
        corrected = {r.name: registry.shift_prior(registry.predict_base(r.name, r.estimator, Xs, data.n_threads),
                                                  r.effective_prior, pi) for r in results}
        target = estimate_prevalence_em(registry.combine(corrected, spec), pi)
    elif target_prevalence is not None:
        mode, target = "given", float(target_prevalence)

    sw = prevalence_weights(y, pi, target)
    scored = oof if target is None else registry.shift_prior(oof, pi, target)
    cutoff, cv_f1, cv_prec, cv_rec = f1_optimal_cutoff(y, scored, sw)
    cv_auc = float(roc_auc_score(y, oof))
    cv_ap = float(average_precision_score(y, scored, sample_weight=sw))

    version = registry.new_version()
    per_model = {r.name: r.metrics() for r in results}
    params = {r.name: r.params for r in results}
    importance_source, importances = _importances(results, columns)
    meta = {
        "format": registry.FORMAT_VERSION,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "feature_hash": fhash,
        "encoding": encoding.to_json(),
        "matrix_columns": columns,
        "models": [{"name": r.name, "kind": r.name, "file": MODEL_FILES[r.name], "effective_prior": r.effective_prior,
                    "params": r.params} for r in results],
        "ensemble": spec,
        "weights_source": source,
        "train_rows": int(len(y)),
        "train_positive_rate": pi,
        "target_prevalence": target,
        "target_prevalence_mode": mode,
        "cutoff": cutoff,
        "seed": seed,
        "folds": folds,
        "threads": data.n_threads,
    }
    metrics = {
        "model_version": version, "cv_f1": cv_f1, "cv_precision": cv_prec, "cv_recall": cv_rec, "cv_auc": cv_auc,
        "cv_average_precision": cv_ap, "cutoff": cutoff, "ensemble": ensemble, "weights": weights,
        "weights_source": source, "weight_candidates": spec.get("candidates"), "per_model": per_model, "train_rows": int(len(y)), "train_positives": n_pos,
        "train_positive_rate": pi, "target_prevalence": target, "target_prevalence_mode": mode,
        "cv_f1_at_train_prevalence": f1_at(y, oof, registry.shift_prior(np.array([cutoff]), target, pi)[0])
        if target is not None else cv_f1,
        "baseline_f1_all_positive": 2 * (target or pi) / (1 + (target or pi)),
        "feature_importance_source": importance_source, "seed": seed, "folds": folds,
        "time_budget": clock.budget, "dbt_invocation_id": dbt_id,
    }

    def write_files(folder: Path) -> None:
        from leadscore import report

        for r in results:
            _save_base_model(r, folder / MODEL_FILES[r.name])
        (folder / registry.MODEL_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        bar.update("writing report")
        metrics["train_seconds"] = round(clock.elapsed(), 3)
        report.write_report(folder / "report", y=y, p=scored, cutoff=cutoff, sample_weight=sw, metrics=metrics,
                            importances=importances, importance_source=importance_source,
                            per_model_oof={r.name: r.oof for r in results})

    bar.update("registering model")
    row = {
        "trained_at": datetime.now(UTC).replace(tzinfo=None),
        "cv_f1": cv_f1, "cv_auc": cv_auc, "cv_average_precision": cv_ap, "cutoff": cutoff,
        "feature_hash": fhash, "feature_list": registry.feature_list_of(flist), "train_rows": int(len(y)),
        "train_positive_rate": pi, "target_prevalence": target, "target_prevalence_mode": mode,
        "ensemble": ensemble, "weights": {"source": source, **({"weights": weights} if ensemble == "voting" else spec)},
        "params": params, "per_model_metrics": per_model, "dbt_invocation_id": dbt_id, "seed": seed, "folds": folds,
        "time_budget": clock.budget,
    }
    def final_row() -> dict[str, Any]:  # evaluated after the files are written
        return {**row, "train_seconds": round(clock.elapsed(), 3)}

    con, owned = _open(con_or_db_path)
    try:
        folder = registry.publish_model(con, version, write_files, final_row)
    finally:
        if owned:
            con.close()
    return TrainResult(
        model_version=version, cv_f1=cv_f1, cv_auc=cv_auc, cv_average_precision=cv_ap, cutoff=cutoff,
        ensemble=ensemble, weights=weights, weights_source=source, per_model=per_model, train_rows=int(len(y)),
        train_positive_rate=pi, target_prevalence=target, target_prevalence_mode=mode, seconds=clock.elapsed(),
        time_budget=clock.budget, artifact_dir=folder, report_dir=folder / "report",
    )


