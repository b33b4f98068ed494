"""Training's Optuna studies: a second run resumes the stored trials, a study measured on one data
set is never resumed on another, an unreadable journal is moved aside. Small synthetic data and
tiny budgets (the rest of training: test_train.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import SMALL_TRAINING as SMALL
from helpers import make_feature_table
from helpers import score_with_current_model as _score_rows
from leadscore import train


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
def test_x_then_y_in_one_models_folder_equals_y_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study measured on data set X is never resumed (nor warm-started) on data set Y."""
    shared = tmp_path / "shared" / "leadscore.duckdb"
    alone = tmp_path / "alone" / "leadscore.duckdb"
    for p in (shared, alone):
        p.parent.mkdir()
    monkeypatch.setenv("LEADSCORE_DB", str(shared))
    make_feature_table(shared, n_train=900, n_score=200, seed=11)  # X
    train.train_model(shared, time_budget=60, seed=3, models=("lightgbm",), **SMALL)
    make_feature_table(shared, n_train=900, n_score=200, seed=12)  # Y replaces X, same columns
    after_x = train.train_model(shared, time_budget=60, seed=3, models=("lightgbm",), **SMALL)
    scores_after_x = _score_rows(shared)
    monkeypatch.setenv("LEADSCORE_DB", str(alone))
    make_feature_table(alone, n_train=900, n_score=200, seed=12)  # Y in a fresh models folder
    y_alone = train.train_model(alone, time_budget=60, seed=3, models=("lightgbm",), **SMALL)
    assert after_x.per_model["lightgbm"]["trials_this_run"] == 2  # a new study, not X's resumed
    assert after_x.cutoff == y_alone.cutoff and after_x.cv_f1 == y_alone.cv_f1
    assert after_x.per_model["lightgbm"]["oof_log_loss"] == y_alone.per_model["lightgbm"]["oof_log_loss"]
    np.testing.assert_array_equal(scores_after_x["p"].to_numpy(), _score_rows(alone)["p"].to_numpy())


@pytest.mark.slow
@pytest.mark.parametrize("content", [
    '{"op_code": 0, "worker_id": "x", "study_name": "s", "directions": [1]}\n{"op_code": 4, "trunc',  # killed mid-write
    "not a journal at all\n\x00\x01\n",  # garbage
])
def test_unreadable_journal_is_moved_aside_not_fatal(db_file: Path, capsys: pytest.CaptureFixture[str],
                                                     content: str) -> None:
    from leadscore import tuning

    make_feature_table(db_file, n_train=600, n_score=100, seed=13)
    journal = tuning.journal_path()
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(content)
    for resume in (True, False):  # --no-resume used to fail on a corrupt journal too
        res = train.train_model(db_file, time_budget=30, seed=0, models=("lightgbm",), resume=resume, **SMALL)
        assert res.per_model["lightgbm"]["trials_this_run"] == 2
    err = capsys.readouterr().err
    assert "unreadable" in err and "moved aside" in err
    assert list(journal.parent.glob("optuna-journal.log.unreadable-*"))
