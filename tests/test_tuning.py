"""Tuning helpers: study identity (data fingerprint), warm start only on grown data."""

from __future__ import annotations

import numpy as np

from leadscore import tuning


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
