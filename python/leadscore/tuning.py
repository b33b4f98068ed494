"""Tuning one model family within a time budget: cross-validation on shared folds, an Optuna
study per family, and the final fit.

* Studies live in the models folder's Optuna journal, named by family, feature hash, a
  fingerprint of the training rows, seed, folds and search-space version: a study is resumed
  only on the very same rows, never on another data set with the same columns. A new study is
  warm-started (`enqueue_trial`) from the current model's parameters when the caller passes
  them, then from the family's cheap defaults.
* The objective is the mean per-fold log-loss of probabilities mapped back to the training rate
  (minimised); a median pruner stops trials whose running mean is behind after a fold.
* Warm start across runs only on grown data: a bottom-k sketch of the current model's training
  lead ids says how many of them are still among today's rows.
* Budget: `study.optimize` with an objective class (`_Objective`) and two callbacks, Optuna's
  MaxTrialsCallback for `--trials` and the objective's own, which stops the study when no
  whole CV plus the final fit still ends before the family's slot;
  a family whose first trial is behind the leader by more than the margin is dropped early, so
  its time goes to the families still in the race, unless blending it with the leader beats
  the leader alone beyond the fold noise: a member that trails alone but errs differently (the
  linear one) is worth its place in the ensemble.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from leadscore import config, registry
from leadscore.errors import LeadscoreError
from leadscore.estimators import (
    COST_FACTOR,
    DEFAULT_PARAMS,
    KINDS,
    MODEL_NAMES,
    SEARCH_SPACE_VERSION,
    build_pipeline,
    imbalance_plan,
    model_params,
    predict_base,
    reads_group_keys,
    suggest_params,
)
from leadscore.operating_point import f1_optimal_cutoff, log_loss, shift_prior
from leadscore.progress import Bar


@dataclass
class ModelResult:
    """One fitted base model and its out-of-fold record."""

    name: str
    params: dict[str, Any]
    effective_prior: float
    oof: np.ndarray = field(repr=False)  # mapped back to the training rate
    fold_losses: list[float]
    fold_seconds: float
    fit_seconds: float
    estimator: Any = field(repr=False)
    trials_total: int = 0  # finished trials in the study, earlier runs of the same rows included
    trials_this_run: int = 0
    trials_stopped_for_time: int = 0
    best_trial: int | None = None

    @property
    def kind(self) -> str:
        return KINDS[self.name]

    @property
    def oof_log_loss(self) -> float:
        return float(np.mean(self.fold_losses))

    def metrics(self, y: np.ndarray, operating: np.ndarray | None = None,
                sample_weight: np.ndarray | None = None) -> dict[str, Any]:
        """The out-of-fold record. `operating`: the out-of-fold probabilities on the scale the
        model operates at (prior-shifted to a target prevalence) and `sample_weight` the rows'
        weights (class weights of that prevalence, or the score rows' customer mix): the cutoff,
        F1 and average precision are read off them, as the chosen model's are."""
        p = self.oof if operating is None else operating
        cutoff, f1, _, _ = f1_optimal_cutoff(y, p, sample_weight)
        return {
            "oof_f1": f1, "oof_cutoff": cutoff, "oof_auc": float(roc_auc_score(y, self.oof)),
            "oof_average_precision": float(average_precision_score(y, p, sample_weight=sample_weight)),
            "oof_log_loss": self.oof_log_loss, "fold_log_loss": [float(x) for x in self.fold_losses],
            "imbalance": self.params.get("imbalance"), "effective_prior": self.effective_prior,
            "trials_total": self.trials_total, "trials_this_run": self.trials_this_run,
            "trials_stopped_for_time": self.trials_stopped_for_time, "best_trial": self.best_trial,
            "fold_seconds": round(self.fold_seconds, 3), "fit_seconds": round(self.fit_seconds, 3),
        }


class Clock:
    def __init__(self, budget: float):
        self.start = time.monotonic()
        self.budget = float(budget)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


class OutOfTime(Exception):
    pass


@dataclass
class Data:
    X: np.ndarray
    y: np.ndarray
    pi: float
    folds: list[tuple[np.ndarray, np.ndarray]]
    cat_idx: list[int]
    code_idx: list[int]
    seed: int
    n_threads: int
    # the trees read the columns before the group keys (Encoding.tree_width; None: every column);
    # the mixed-effects (linear) member reads them all: the group keys that carry values
    # (random intercepts) and, then, not the label-derived columns (Encoding.mixed_effects_columns)
    tree_width: int | None = None
    group_idx: list[int] = field(default_factory=list)
    exclude_idx: list[int] = field(default_factory=list)
    # How a fold scores its validated rows where that differs from X: under forward-in-time folds,
    # the history columns hold each lead's labeled history as of its time block's start
    # (features.validation_view), as a score row's batch has no labels of its own. Matrix column
    # indices (all within the trees' prefix: the group keys are never patched) and their values
    # for every training row. Models are always fitted on X.
    val_patch_idx: tuple[int, ...] = ()
    val_patch: np.ndarray | None = None

    def matrix(self, kind: str) -> np.ndarray:
        """The training matrix a model kind reads (a copy made once for the trees: fits want it
        contiguous)."""
        if reads_group_keys(kind) or self.tree_width is None or self.tree_width >= self.X.shape[1]:
            return self.X
        trees = self.__dict__.get("_trees")
        if trees is None:
            trees = np.ascontiguousarray(self.X[:, : self.tree_width])
            self.__dict__["_trees"] = trees
        return trees

    def validation_rows(self, kind: str, rows: np.ndarray) -> np.ndarray:
        """The matrix rows a fold scores its validated `rows` from: a copy, patched."""
        X = self.matrix(kind)[rows]
        if self.val_patch is not None and len(self.val_patch_idx):
            X[:, list(self.val_patch_idx)] = self.val_patch[rows]
        return X


def cross_validate(name: str, params: dict[str, Any], data: Data, trial=None,
                   fold_deadline: Callable[[float, int], bool] | None = None,
                   keep_partial: bool = False) -> tuple[np.ndarray, list[float], float, float]:
    """OOF probabilities (each fold's corrected to its fit rows' prior, as the final model's are to
    all training rows': a forward fold's fit rows may convert at another rate than the whole, and
    the validated block's rate is what the fold must not know), per-fold log-loss, mean fold
    seconds and the effective prior at the training rows' prior. Reports the running mean fold log-loss to `trial` after every fold
    (pruning); `fold_deadline(seconds per fold so far, folds left)` True stops with OutOfTime, or,
    with `keep_partial` and at least one fold done, returns what the finished folds give: one
    loss per finished fold, and OOF scores only for their rows (the others stay 0).

    Log-loss, a proper score, is what candidates are compared on: it rewards calibrated
    probabilities as well as ranking, and the operating point is read off those probabilities."""
    import optuna

    oof = np.zeros(len(data.y), dtype=np.float64)
    losses: list[float] = []
    kind = KINDS[name]
    secs: list[float] = []
    effective = imbalance_plan(model_params(params), data.pi)[3]
    for k, (tr, va) in enumerate(data.folds):
        first_kept = keep_partial and not losses  # with keep_partial, one fold always runs
        if fold_deadline is not None and not first_kept and fold_deadline(max(secs) if secs else 0.0,
                                                                          len(data.folds) - k):
            if keep_partial:
                break
            raise OutOfTime
        t = time.monotonic()
        fit_pi = float(data.y[tr].mean())
        pipe, fit_kwargs, fit_effective = build_pipeline(kind, model_params(params), fit_pi, data.cat_idx,
                                                         data.code_idx, data.seed, data.n_threads,
                                                         group_idx=data.group_idx, exclude_idx=data.exclude_idx)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe.fit(data.matrix(kind)[tr], data.y[tr], **fit_kwargs)
            # samplers do nothing at prediction time: predict with the model itself
            raw = predict_base(kind, pipe.named_steps["model"], data.validation_rows(kind, va), data.n_threads)
        oof[va] = shift_prior(raw, fit_effective, fit_pi)
        secs.append(time.monotonic() - t)
        losses.append(log_loss(data.y[va], oof[va]))
        if trial is not None:
            trial.report(float(np.mean(losses)), step=k)
            if k < len(data.folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned
    return oof, losses, float(np.mean(secs)), effective


JOURNAL_FILE = "optuna-journal.log"
# Warm start from the current model only when this share of its training rows is still here.
WARM_START_MIN_OVERLAP = 0.5
SKETCH_SIZE = 256


def journal_path() -> Path:
    return config.models_dir() / JOURNAL_FILE


def open_storage(warn: Callable[[str], None] = print):
    """The Optuna journal of this models folder. A journal that cannot be read (truncated by a
    kill, corrupted, written by an incompatible Optuna) is moved aside with a warning and a new
    one started: tuning history is a convenience, never a reason not to train."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.exists() and path.stat().st_size and not _ends_with_newline(path):
            # a run killed mid-write: Optuna would append the next record to the partial one
            raise ValueError("its last record is truncated")
        storage = JournalStorage(JournalFileBackend(str(path)))
        storage.get_all_studies()  # replays the whole log: fails here if it is unreadable
        return storage
    except Exception as exc:  # noqa: BLE001 - any failure to replay means the same thing
        aside = path.with_name(f"{path.name}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        path.replace(aside)
        for lock in path.parent.glob(f"{path.name}.lock*"):
            lock.unlink(missing_ok=True)
        warn(f"warning: Optuna journal {path} is unreadable ({type(exc).__name__}: {exc}); "
             f"moved aside to {aside.name}, starting a new one")
        return JournalStorage(JournalFileBackend(str(path)))


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def data_fingerprint(lead_ids: np.ndarray, y: np.ndarray, X: np.ndarray) -> str:
    """sha256 of the training rows: their ids, labels and feature matrix. A study measured on
    other rows must never be resumed: its trial values describe another data set."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, lead_ids)).encode())
    h.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    h.update(np.ascontiguousarray(X, dtype=np.float32).tobytes())
    return h.hexdigest()


def study_name(model: str, fhash: str, data_fp: str, seed: int, folds: int, scheme: str = "random_kfold") -> str:
    """Trials are comparable only on the same rows, features, folds and validation scheme."""
    split = f"k{folds}" if scheme == "random_kfold" else f"k{folds}-{scheme}"
    return f"leadscore-{model}-f{fhash[:10]}-d{data_fp[:10]}-s{seed}-{split}-{SEARCH_SPACE_VERSION}"


def fit_final(name: str, params: dict[str, Any], data: Data) -> tuple[Any, float, float]:
    """(fitted model, effective prior, seconds) on all training rows."""
    t = time.monotonic()
    pipe, fit_kwargs, eff = build_pipeline(KINDS[name], model_params(params), data.pi, data.cat_idx, data.code_idx,
                                           data.seed, data.n_threads, group_idx=data.group_idx,
                                           exclude_idx=data.exclude_idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(data.matrix(KINDS[name]), data.y, **fit_kwargs)
    return pipe.named_steps["model"], eff, time.monotonic() - t


class _Objective:
    """One family's Optuna objective and its after-trial callback, with what they learn on the way.

    The objective cross-validates one parameter set on the shared folds, stopping when the next
    fold would not end in time (OutOfTime: the trial is recorded as failed, unused by the
    sampler). The callback, run by `study.optimize` after each trial is recorded, keeps the best
    trial's out-of-fold scores, drops the family when its first finished trial trails the leader
    (and does not help a blend with it), and stops the study when a whole cross-validation plus
    the final fit no longer fits the time left (the trial cap is Optuna's MaxTrialsCallback)."""

    def __init__(self, name: str, data: Data, slot_end: float, global_end: float, progress: Bar,
                 guess: float | None, stored_fold_times: list[float],
                 leader: tuple[str, float, float, np.ndarray] | None) -> None:
        self.name, self.data, self.progress, self.leader = name, data, progress, leader
        self.slot_end, self.global_end = slot_end, global_end
        self.guess, self.stored_fold_times = guess, stored_fold_times
        self.k = len(data.folds)
        self.observed: list[float] = []  # fold seconds seen in this run (this machine)
        self.cache: dict[int, tuple[np.ndarray, list[float], float, float]] = {}  # best trial -> (oof, losses, fold s, eff)
        self.pending: tuple[np.ndarray, list[float], float, float] | None = None  # the trial just run
        self.n_run = self.n_stopped = self.time_fails = 0
        self.kept = ""  # why a family behind the leader stays (the blend test), for the note
        self.dropped = ""  # why it was dropped

    def fit_estimate(self, fold_s: float) -> float:
        return fold_s * self.k / (self.k - 1) * 1.25 + 0.2

    def room(self, end: float, est_fold: float | None, folds_left: int) -> bool:
        """Do `folds_left` folds plus the final fit still end before `end`?"""
        if est_fold is None:
            return time.monotonic() < end
        return time.monotonic() + est_fold * folds_left + self.fit_estimate(est_fold) <= end

    def end(self) -> float:
        """The first trial of the run only needs to end before the global end, later ones before the slot's."""
        return self.global_end if self.n_run == 0 else self.slot_end

    def next_fits(self) -> bool:
        """Does one more whole trial fit: the slowest fold seen (the fastest, after a trial ran out
        of time), else the stored trials' or the cost-factor guess."""
        if self.observed:
            est = min(self.observed) if self.time_fails else max(self.observed)
        else:
            est = max(self.stored_fold_times) if self.stored_fold_times else self.guess
        return self.room(self.end(), est, self.k)

    def __call__(self, trial) -> float:
        from optuna.trial import TrialState

        params = suggest_params(self.name, trial)  # an enqueued trial gets its fixed values here
        end = self.end()

        def deadline(est: float, folds_left: int) -> bool:
            return est > 0 and not self.room(end, est, folds_left)

        study = trial.study
        best = study.best_value if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None
        self.progress.update(text=f"{self.name}: trial {trial.number}"
                             + (f" (best log-loss {best:.4f})" if best is not None else ""))
        self.n_run += 1
        try:  # optuna.TrialPruned passes through: Optuna records the trial as pruned
            oof, losses, fold_s, eff = cross_validate(self.name, params, self.data, trial, deadline)
        except OutOfTime:
            # too slow for the time left: recorded as FAIL (unused by the sampler); a cheaper
            # parameter set may still fit, at most 3 times in a row
            trial.set_user_attr("stopped", "time budget")
            self.n_stopped += 1
            self.time_fails += 1
            raise
        self.time_fails = 0
        trial.set_user_attr("fold_seconds", fold_s)
        trial.set_user_attr("fold_log_loss", losses)
        self.observed.append(fold_s)
        self.pending = (oof, losses, fold_s, eff)
        return float(np.mean(losses))

    def after_trial(self, study, trial) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.COMPLETE:
            if study.best_trial.number == trial.number:
                self.cache = {trial.number: self.pending}
            oof = self.pending[0]
            self.pending = None
            if self.leader is not None and self.n_run - self.n_stopped == 1 and study.best_value > self.leader[1] + self.leader[2]:
                gain, noise = blend_gain(self.leader[3], oof, self.data)
                if not gain > noise:
                    self.dropped = (f"dropped after its first trial: log-loss {study.best_value:.5f} vs "
                                    f"{self.leader[0]} {self.leader[1]:.5f} (margin {self.leader[2]:.5f}), and "
                                    f"blended with {self.leader[0]} it gains {gain:.5f} per fold (noise {noise:.5f})")
                    study.stop()
                    return
                self.kept = (f"kept though behind {self.leader[0]} alone ({study.best_value:.5f} vs "
                             f"{self.leader[1]:.5f}): blended with it, {gain:.5f} log-loss per fold better "
                             f"(noise {noise:.5f}); ")
        elif trial.state == TrialState.FAIL and (self.time_fails >= 3 or not self.observed):
            study.stop()
            return
        if not self.next_fits():
            study.stop()


def tune_model(name: str, data: Data, storage, sname: str, slot_end: float, global_end: float,
               trials: int | None, resume: bool, progress: Bar, ref: tuple[str, float] | None = None,
               warm_start: dict[str, Any] | None = None,
               leader: tuple[str, float, float, np.ndarray] | None = None,
               known: ModelResult | None = None) -> tuple[ModelResult | None, str]:
    """Optuna study + final fit for one family (times on the monotonic clock).

    Trials run while a whole CV plus the final fit still ends before `slot_end`; the first trial
    of the run only needs to end before `global_end`. `ref` = (model, fold seconds) of a model
    already run, to guess this one's cost. `leader` = (name, log-loss, margin, out-of-fold
    probabilities): when this family's first finished trial is worse than the leader by more
    than the margin and does not improve a blend with the leader beyond the fold noise
    (`blend_gain`), tuning stops and the family is dropped. `known`: this family's result from
    an earlier rung of the same run (its study is continued; when no new trial beats it, it is
    returned as it is, fits included). `trials` caps the study's finished trials, the stored
    ones of a resumed study included (Optuna's MaxTrialsCallback).
    Returns (result or None, a note saying what happened)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if not resume:
        try:
            optuna.delete_study(study_name=sname, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(
        study_name=sname, storage=storage, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=data.seed + 1000 * MODEL_NAMES.index(name)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    if not study.trials:
        if warm_start:
            study.enqueue_trial(warm_start)
        study.enqueue_trial(DEFAULT_PARAMS[name], skip_if_exists=True)
    k = len(data.folds)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    complete = (TrialState.COMPLETE,)
    fold_times = [t.user_attrs["fold_seconds"] for t in study.get_trials(deepcopy=False, states=complete)
                  if "fold_seconds" in t.user_attrs]
    guess = ref[1] * COST_FACTOR[name] / COST_FACTOR[ref[0]] if ref is not None else None
    objective = _Objective(name, data, slot_end, global_end, progress, guess, fold_times, leader)
    callbacks = [objective.after_trial]
    if trials is not None:
        callbacks.insert(0, MaxTrialsCallback(trials, states=finished))
    capped = trials is not None and len(study.get_trials(deepcopy=False, states=finished)) >= trials
    if not capped and objective.next_fits():
        with _optuna_errors_only():  # a trial out of time is a FAIL by design, not a warning
            study.optimize(objective, callbacks=callbacks, catch=(OutOfTime,))
    if objective.dropped:
        return None, objective.dropped
    n_run, n_stopped = objective.n_run, objective.n_stopped

    if not study.get_trials(deepcopy=False, states=complete):
        return None, "no cross-validation fitted in the time left"
    bt = study.best_trial
    n_finished = len(study.get_trials(deepcopy=False, states=finished))
    if known is not None and bt.number == known.best_trial:
        known.trials_total = n_finished
        known.trials_this_run += n_run - n_stopped
        known.trials_stopped_for_time += n_stopped
        return known, f"{n_run - n_stopped} more trial(s), none better than #{bt.number}"
    params = dict(bt.params)
    if bt.number in objective.cache:
        oof, losses, fold_s, eff = objective.cache[bt.number]
    else:
        # best trial of an earlier run on the same rows: re-validated so its OOF is at hand
        est = float(bt.user_attrs.get("fold_seconds", 0.0)) or guess
        if not objective.room(global_end, est, k):
            return None, "no time left to re-validate the best trial of an earlier run"
        progress.update(text=f"{name}: re-validating the best parameters")
        oof, losses, fold_s, eff = cross_validate(name, params, data)
    progress.update(text=f"{name}: final fit")
    est, eff, fit_s = fit_final(name, params, data)
    before = (known.trials_this_run, known.trials_stopped_for_time) if known is not None else (0, 0)
    result = ModelResult(name=name, params=params, effective_prior=eff, oof=oof, fold_losses=list(losses),
                         fold_seconds=fold_s, fit_seconds=fit_s, estimator=est, trials_total=n_finished,
                         trials_this_run=before[0] + n_run - n_stopped,
                         trials_stopped_for_time=before[1] + n_stopped, best_trial=bt.number)
    return result, f"{objective.kept}{n_run - n_stopped} trial(s) this run, best #{bt.number}"


@contextmanager
def _optuna_errors_only() -> Iterator[None]:
    """Optuna at ERROR for a block, its own level restored after."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def blend_gain(leader_oof: np.ndarray, oof: np.ndarray, data: Data) -> tuple[float, float]:
    """(mean per-fold log-loss gain of the best two-member soft vote of the leader and this
    candidate over the leader alone, the noise), judged as selection.select_model judges any
    candidate against the baseline, on the validated rows of `data.folds`. The vote's one weight
    is read off the same out-of-fold rows, as the ensemble's are."""
    from leadscore.ensemble import fit_voting_weights
    from leadscore.selection import select_model

    rows = np.concatenate([va for _, va in data.folds])
    P = np.column_stack([leader_oof, oof])
    blend = P @ fit_voting_weights(P[rows], data.y[rows])
    judged = select_model(data.y, data.folds, leader_oof, {"blend": blend})["candidates"]["blend"]
    return judged["gain"], judged["noise"]


def lead_sketch(lead_ids: pd.Series | np.ndarray, size: int = SKETCH_SIZE) -> list[str]:
    """The `size` smallest md5 digests of the lead ids: a bottom-k sketch that estimates how many
    of one model's training rows are among another's without storing them all."""
    digests = sorted(hashlib.md5(str(x).encode()).hexdigest() for x in lead_ids)
    return digests[:size]


def sketch_containment(old_sketch: list[str], lead_ids: pd.Series | np.ndarray) -> float:
    """Share of an earlier training set (its sketch) that is among `lead_ids`."""
    if not old_sketch:
        return 0.0
    now = {hashlib.md5(str(x).encode()).hexdigest() for x in lead_ids}
    return sum(d in now for d in old_sketch) / len(old_sketch)


def current_model_meta(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """model.json of the current model (checksums verified), or None."""
    from leadscore import model as model_mod

    version = registry.current_version(con)
    if version is None:
        return None
    row = registry.model_row(con, version)
    folder = registry.artifact_folder(row, con) if row else registry.models_dir_of(con) / version
    try:
        model_mod.verify_checksums(folder, row["checksums_sha256"] if row else None)
        return json.loads((folder / registry.MODEL_FILE).read_text())
    except (LeadscoreError, OSError, ValueError):
        return None


def warm_start_params(meta: dict[str, Any] | None, fhash: str, lead_ids: pd.Series) -> dict[str, dict[str, Any]]:
    """Per family, the current model's tuned parameters, when that model was trained on the same
    features and most of its rows are still here; else nothing."""
    if not meta or meta.get("feature_hash") != fhash:
        return {}
    if sketch_containment(meta.get("lead_sketch", []), lead_ids) < WARM_START_MIN_OVERLAP:
        return {}
    return {m["name"]: dict(m["params"]) for m in meta.get("models", []) if m["name"] in MODEL_NAMES}
