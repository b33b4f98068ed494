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


def test_raw_columns_pool_rare_text_and_add_each_texts_length_and_skip_keys():
    raw = pd.DataFrame({
        "lead_id": [f"l{i}" for i in range(100)],
        "is_converted": [True] * 100,
        "customer_job": ["engineering"] * 60 + ["Engineering "] * 35 + ["cfo"] * 3 + [None] * 2,
        "lead_desc_length": np.arange(100, dtype=float),
        "lead_date": pd.to_datetime("2026-01-01") + pd.to_timedelta(np.arange(100), "D"),
        "customer_history": pd.array([True, False] * 49 + [None, None], dtype="boolean"),  # as duckdb reads it
    })
    groups = residuals.raw_grouping_columns(raw, min_rows=30)
    assert set(groups.columns) == {"raw.customer_job", "raw.customer_job.length", "raw.lead_desc_length",
                                   "raw.lead_date", "raw.customer_history"}
    assert groups["raw.customer_history"].value_counts().to_dict() == {1.0: 49, 0.0: 49, -1.0: 2}
    assert groups["raw.customer_job"].value_counts().to_dict() == {
        "engineering": 60, "Engineering ": 35, "<rare>": 3, "<missing>": 2}
    lengths = groups["raw.customer_job.length"]  # 11, 12 and 3 letters: few values, kept as they are
    assert lengths.iloc[[0, 60, 95, 98]].tolist() == [11.0, 12.0, 3.0, -1.0]
    assert sorted(groups["raw.lead_date"].unique()) == list(map(float, range(10)))  # dates as deciles


def test_a_spelling_the_cleaning_merged_shows_in_the_raw_column_only():
    rng = np.random.default_rng(3)
    n = 20000
    spelled = rng.choice(["Manager", "manager"], n)  # the generator meant two groups
    rate = np.where(spelled == "Manager", 0.15, 0.05)
    y = (rng.random(n) < rate).astype(np.int8)
    cleaned = pd.DataFrame({"customer_position": np.char.lower(spelled.astype(str)),  # one level
                            "region": rng.choice(["APAC", "EMEA", "AMER"], n)})
    flat = np.full(n, y.mean())  # calibrated on every cleaned column
    features = residuals.residual_table(y, flat, residuals.grouping_columns(cleaned, list(cleaned.columns), []), 40)
    assert features["grouping"].tolist() == ["region"] and abs(_z(features, "region")) < 4
    raw = residuals.raw_grouping_columns(pd.DataFrame({"customer_position": spelled}))
    table = residuals.residual_table(y, flat, raw, 40)
    assert table["grouping"].iloc[0] == "raw.customer_position"
    assert _z(table, "raw.customer_position") > 20


def test_a_raw_grouping_that_repeats_its_feature_column_is_left_out():
    groups = pd.DataFrame({"ver_cus": [0.0, 1.0, 1.0, 0.0], "customer_job": ["a", "b", "b", "a"]})
    raw = pd.DataFrame({"raw.ver_cus": [5.0, 7.0, 7.0, 5.0],  # same rows together: a repeat
                        "raw.customer_job": ["a", "B", "b", "a"],  # the cleaning merged B and b
                        "raw.customer_job.length": [1.0, 1.0, 1.0, 1.0]})
    assert list(residuals.new_partitions(groups, raw).columns) == ["raw.customer_job", "raw.customer_job.length"]
