"""bench/residuals.py: the grouped-residual statistic finds an interaction the model lacks and
stays near zero where the model leaves nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd

_SPEC = importlib.util.spec_from_file_location("residual_check", Path(__file__).parents[1] / "bench" / "residuals.py")
residuals = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = residuals
_SPEC.loader.exec_module(residuals)


def _world(n: int = 20000, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Two columns whose rate crosses (15% where they agree, 5% where not) and one column of
    noise: each column alone has the same 10% in every level."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"unit": rng.choice(["AS", "ID"], n), "size": rng.choice(["SMB", "Enterprise"], n),
                          "noise": rng.choice(list("pqrst"), n)})
    agree = (frame["unit"] == "ID") == (frame["size"] == "SMB")
    rate = np.where(agree, 0.15, 0.05)
    return frame, rate, (rng.random(n) < rate).astype(np.int8)


def _z(table: pd.DataFrame, grouping: str) -> float:
    return float(table.loc[table["grouping"] == grouping, "z"].iloc[0])


def test_a_crossover_the_prediction_lacks_stands_out_and_the_single_columns_do_not():
    frame, _, y = _world()
    flat = np.full(len(y), y.mean())  # calibrated on every single column, blind to the pair
    table = residuals.residual_table(y, flat, residuals.grouping_columns(frame, list(frame.columns), []), 40)
    assert table["grouping"].iloc[0] == "unit x size"
    assert _z(table, "unit x size") > 20
    for calm in ("unit", "size", "noise", "unit x noise", "size x noise"):
        assert abs(_z(table, calm)) < 4, calm


def test_the_true_probabilities_leave_no_grouping_out_of_noise():
    frame, rate, y = _world()
    table = residuals.residual_table(y, rate, residuals.grouping_columns(frame, list(frame.columns), []), 40)
    assert table["z"].abs().max() < 4


def test_numbers_are_grouped_by_decile_with_missing_as_its_own_level():
    values = pd.Series(np.r_[np.arange(100, dtype=float), [np.nan] * 5])
    few = pd.Series([0.0, 1.0] * 52 + [np.nan])
    groups = residuals.grouping_columns(pd.DataFrame({"x": values, "flag": few}), [], ["x", "flag"])
    assert sorted(groups["x"].unique()) == [-1.0, *map(float, range(10))]
    assert (groups["x"].iloc[:10] == 0).all() and (groups["x"].iloc[100:] == -1).all()
    assert sorted(groups["flag"].unique()) == [-1.0, 0.0, 1.0]  # few values: kept as they are


def test_a_column_with_one_level_is_not_a_grouping():
    frame, rate, y = _world(n=2000)
    frame["constant"] = "missing"
    table = residuals.residual_table(y, rate, residuals.grouping_columns(frame, list(frame.columns), []), 40)
    assert not table["grouping"].str.contains("constant").any()
    assert len(table) == 3 + 3  # three columns, three pairs
