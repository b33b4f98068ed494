"""The quality benchmark (bench/quality.py): which model it measures and what its ablation
switches off. Its F1 intervals are metrics.f1_intervals (tests/test_metrics.py)."""

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
