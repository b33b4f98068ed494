"""Tuning: study identity (data fingerprint), warm start only on grown data, and the study loop
(trials out of time, the trial cap, the best trial's scores kept)."""

from __future__ import annotations

import time

import numpy as np
import optuna
from sklearn.model_selection import StratifiedKFold

from leadscore import tuning
from leadscore.progress import Bar


def test_fingerprint_changes_with_any_row_label_or_value() -> None:
    ids = np.array(["a", "b", "c"])
    y = np.array([0, 1, 0])
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    base = tuning.data_fingerprint(ids, y, X)
    assert base == tuning.data_fingerprint(ids.copy(), y.copy(), X.copy())
    assert base != tuning.data_fingerprint(np.array(["a", "b", "d"]), y, X)
    assert base != tuning.data_fingerprint(ids, np.array([1, 1, 0]), X)
    X2 = X.copy()
    X2[2, 1] += 1
    assert base != tuning.data_fingerprint(ids, y, X2)
    assert tuning.study_name("lightgbm", "f" * 64, base, 0, 5) != tuning.study_name("lightgbm", "f" * 64, "e" * 64, 0, 5)


def test_warm_start_only_when_most_of_the_current_models_rows_are_here() -> None:
    old_ids = [f"L{i}" for i in range(3000)]
    meta = {"feature_hash": "h", "lead_sketch": tuning.lead_sketch(old_ids),
            "models": [{"name": "lightgbm", "params": {"num_leaves": 15}},
                       {"name": "lightgbm_baseline", "params": {"num_leaves": 31}}]}
    grown = old_ids + [f"N{i}" for i in range(500)]  # a nightly retrain on more rows
    other = [f"X{i}" for i in range(3000)]  # another data set with the same columns
    assert tuning.sketch_containment(meta["lead_sketch"], grown) == 1.0
    assert tuning.sketch_containment(meta["lead_sketch"], other) == 0.0
    assert tuning.warm_start_params(meta, "h", grown) == {"lightgbm": {"num_leaves": 15}}
    assert tuning.warm_start_params(meta, "h", other) == {}
    assert tuning.warm_start_params(meta, "another feature hash", grown) == {}
    assert tuning.warm_start_params(None, "h", grown) == {}


def _tiny_data(seed: int = 0) -> tuning.Data:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=400) > 1.2).astype(np.int8)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y))
    return tuning.Data(X=X, y=y, pi=float(y.mean()), folds=folds, cat_idx=[], code_idx=[], seed=seed, n_threads=1)


def test_trials_out_of_time_are_quiet_failed_trials_and_end_the_family(capsys, caplog, monkeypatch) -> None:
    """A trial whose folds cannot end before the slot (cross_validate raises OutOfTime) is
    recorded as FAIL, which the sampler ignores, without Optuna's failure warning; with no fold
    time seen yet the family stops there and, with no finished trial, has no result."""
    def too_slow(*args, **kwargs):
        raise tuning.OutOfTime

    monkeypatch.setattr(tuning, "cross_validate", too_slow)
    storage = optuna.storages.InMemoryStorage()
    far = time.monotonic() + 600
    result, note = tuning.tune_model("logistic", _tiny_data(), storage, "s", far, far, None, True,
                                     Bar("t", None, None, enabled=False))
    assert result is None and note == "no cross-validation fitted in the time left"
    [trial] = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["stopped"] == "time budget"
    assert "failed" not in capsys.readouterr().err + caplog.text


def test_the_trial_cap_counts_finished_trials_and_keeps_the_best_ones_scores() -> None:
    storage = optuna.storages.InMemoryStorage()
    data = _tiny_data(1)
    far = time.monotonic() + 600
    result, note = tuning.tune_model("logistic", data, storage, "s", far, far, 3, True, Bar("t", None, None, enabled=False))
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 3 and result is not None and result.trials_this_run == 3
    assert result.best_trial == study.best_trial.number and note.endswith(f"best #{study.best_trial.number}")
    # the out-of-fold scores are the best trial's, not re-validated: its mean fold log-loss
    assert np.mean(result.fold_losses) == study.best_value
    again, note = tuning.tune_model("logistic", data, storage, "s", far, far, 3, True, Bar("t", None, None, enabled=False))
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3 and again.trials_this_run == 0
