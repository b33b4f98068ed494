"""bench/holdout.py's split: every labeled row lands on exactly one side, the held-out share is
taken within each class, the score file carries no label and the truth file its own; and its
summary: the mean's t-interval and the splits where the chosen model beat the baseline."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("holdout_bench", _BENCH / "holdout.py")
holdout = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = holdout
_SPEC.loader.exec_module(holdout)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _train_file(path: Path, n: int = 1000) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_idx", "lead_desc_length", "is_converted", "lead_owner"])
        for i in range(n):
            w.writerow([f"c{i}", f"{i * 0.5:g}", "True" if i % 10 == 0 else "False", f"o{i % 7}"])


def test_the_split_holds_out_a_share_of_each_class_and_keeps_its_labels_aside(tmp_path: Path):
    _train_file(tmp_path / "train.csv")
    info = holdout.split_file(tmp_path / "train.csv", tmp_path / "s", share=0.2, seed=3)
    kept, sub, truth = (_read(tmp_path / "s" / f) for f in ("train.csv", "submission.csv", "truth.csv"))
    assert info == {"train_rows": 800, "held_out_rows": 200, "held_out_positive_rate": 0.1}
    assert len(kept) == 800 and len(sub) == len(truth) == 200
    # every row on exactly one side, its fields verbatim
    assert sorted(r["customer_idx"] for r in kept + sub) == sorted(f"c{i}" for i in range(1000))
    assert {r["customer_idx"] for r in kept}.isdisjoint(r["customer_idx"] for r in sub)
    assert all(r["lead_desc_length"] == f"{int(r['customer_idx'][1:]) * 0.5:g}" for r in sub)
    # the score file: an id first, the label empty; the truth: the held-out row's own label
    with (tmp_path / "s" / "submission.csv").open() as fh:
        assert next(csv.reader(fh))[0] == "id"
    assert all(r["is_converted"] == "" for r in sub)
    by_id = {r["id"]: r["is_converted"] for r in truth}
    for r in sub:
        i = int(r["customer_idx"][1:])
        assert by_id[r["id"]] == ("True" if i % 10 == 0 else "False")
    # another seed holds out other rows; the same seed the same ones
    other = holdout.split_file(tmp_path / "train.csv", tmp_path / "t", share=0.2, seed=4)
    assert other["held_out_rows"] == 200
    assert {r["customer_idx"] for r in _read(tmp_path / "t" / "submission.csv")} != {r["customer_idx"] for r in sub}
    holdout.split_file(tmp_path / "train.csv", tmp_path / "u", share=0.2, seed=3)
    assert _read(tmp_path / "u" / "submission.csv") == sub


def test_a_file_without_labels_or_with_ids_is_refused(tmp_path: Path):
    (tmp_path / "nolabel.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit, match="no is_converted column"):
        holdout.split_file(tmp_path / "nolabel.csv", tmp_path / "s", 0.1, 1)
    (tmp_path / "ids.csv").write_text("id,a,is_converted\n1,2,True\n")
    with pytest.raises(SystemExit, match="already has an id column"):
        holdout.split_file(tmp_path / "ids.csv", tmp_path / "s", 0.1, 1)


def test_the_summary_gives_the_mean_its_t_interval_and_the_wins_over_the_baseline():
    s = holdout.summary([0.64, 0.66, 0.68])
    assert s["mean"] == pytest.approx(0.66) and s["sd"] == pytest.approx(0.02)
    # t(0.975, 2 df) = 4.303: 0.66 +- 4.303 x 0.02 / sqrt(3)
    assert s["ci95"] == pytest.approx([0.66 - 0.04969, 0.66 + 0.04969], abs=1e-4)
    assert holdout.summary([0.65])["ci95"] is None
    results = [{"split": k, "held_out_rows": 10, "held_out_positive_rate": 0.1, "chosen": "ensemble", "f1": f1,
                "best_f1": f1, "auc": 0.9, "flagged_ratio": 1.0, "oof_f1": 0.6, "baseline_f1": base, "notes": []}
               for k, (f1, base) in enumerate([(0.64, 0.62), (0.66, 0.67), (0.68, None)], start=1)]
    info = {"when": "now", "commit": "c", "data": "d", "splits": 3, "share": 0.1, "budget": 120, "seconds": 60,
            "summary": {k: holdout.summary([r[k] for r in results]) for k in ("f1", "best_f1", "auc")}}
    text = holdout.to_markdown(results, info)
    assert "95% t-interval of the mean 0.610 to 0.710" in text
    assert "above the fixed baseline's (each at its own cutoff) in 1 of 2 splits" in text
