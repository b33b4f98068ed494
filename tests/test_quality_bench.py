"""The quality benchmark's bootstrap intervals (bench/quality.py): what the F1 checks are read
against."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location("quality_bench", Path(__file__).parents[1] / "bench" / "quality.py")
quality = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = quality  # its dataclasses look their module up
_SPEC.loader.exec_module(quality)


def _labels(n: int = 4000, rate: float = 0.1, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


def _f1(y: np.ndarray, flag: np.ndarray) -> float:
    tp = int((flag & y).sum())
    return 2 * tp / (2 * tp + int((flag & ~y).sum()) + int((~flag & y).sum()))


def test_the_f1_interval_holds_the_figure_and_a_model_against_itself_differs_by_nothing():
    y = _labels()
    rng = np.random.default_rng(0)
    flag = np.where(y, rng.random(len(y)) < 0.7, rng.random(len(y)) < 0.03)
    got = quality.f1_intervals(y, flag, flag, resamples=500)
    lo, hi = got["f1_ci95"]
    assert lo < _f1(y, flag) < hi and hi - lo < 0.1
    assert got["diff_ci95"] == [0.0, 0.0]


def test_a_clearly_better_model_has_a_paired_interval_above_zero_and_a_near_copy_straddles_it():
    y = _labels()
    rng = np.random.default_rng(1)
    good = np.where(y, rng.random(len(y)) < 0.8, rng.random(len(y)) < 0.02)
    poor = np.where(y, rng.random(len(y)) < 0.5, rng.random(len(y)) < 0.05)
    assert quality.f1_intervals(y, good, poor, resamples=500)["diff_ci95"][0] > 0
    near = good.copy()
    near[np.flatnonzero(~y)[:3]] = True  # three more false alarms
    lo, hi = quality.f1_intervals(y, near, good, resamples=500)["diff_ci95"]
    assert lo < 0 <= hi or lo <= 0 < hi
    assert quality.f1_intervals(y, good, resamples=500).get("diff_ci95") is None


@pytest.mark.parametrize("seed", [0, 7])
def test_the_intervals_repeat_for_a_seed(seed):
    y = _labels()
    flag = np.random.default_rng(2).random(len(y)) < 0.1
    a = quality.f1_intervals(y, flag, ~flag, resamples=200, seed=seed)
    assert a == quality.f1_intervals(y, flag, ~flag, resamples=200, seed=seed)


def test_the_benchmark_measures_the_model_just_trained_even_when_it_stays_a_challenger(tmp_path):
    """A retrain on the same rows that loses out of fold is registered as a challenger and the
    current model stays (leadscore.promotion); the ablation's rows must still read the new one."""
    import duckdb

    db_file = tmp_path / "leadscore.duckdb"
    con = duckdb.connect(str(db_file))
    con.execute("create schema ops")
    con.execute("create table ops.model_registry (model_version varchar, trained_at timestamp, is_current boolean)")
    con.execute("insert into ops.model_registry values "
                "('v20261101T000000Z-aaaa', timestamp '2026-11-01 00:00:00', true), "
                "('v20261102T000000Z-bbbb', timestamp '2026-11-02 00:00:00', false)")
    con.close()
    assert quality.newest_version(db_file) == "v20261102T000000Z-bbbb"


def test_the_ablation_switches_off_only_families_the_baseline_reads():
    """Every use_* var of dbt_project.yml is an ablation row, except the group keys: the
    baseline-only ablation cannot see them (only the linear member reads them)."""
    families = quality.use_vars()
    assert "use_target_rates" in families and "use_history_as_of" in families
    assert "use_group_keys" not in families


def test_the_ablation_can_be_limited_to_named_families_and_refuses_an_unknown_one(capsys):
    """`--families` picks ablation rows from the use_* vars; a name that is not one of them stops
    the benchmark before any world is built, naming the families there are."""
    assert "use_feature_crosses" in quality.use_vars()
    with pytest.raises(SystemExit) as stop:
        quality.main(["--worlds", "a", "--families", "use_feature_crosses,use_nothing"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unknown feature family use_nothing" in err and "use_feature_crosses" in err
