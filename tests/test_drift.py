"""Drift and data quality per scored batch (issue 13): main.batch_drift flags a shifted batch and
stays quiet on an unshifted one; the nightly job warns about the flagged batch it scored, records
it in ops.nightly_runs and publishes the drift tables; `dbt source freshness` passes on the fresh
database.

One small database holds both batches, so dbt builds and the model trains once:
`generate --score-drift` writes 3,600 training rows and a drifted score file (a later form
version: other missing rates, new owners, the all-converting customer rarer). 3,000 of the
training rows train (`train --baseline-only`, deterministic), the other 600 come back without
their labels as the unshifted batch: drawn exactly like the training rows. The plain generator's
score file is no unshifted batch: it mimics the competition's test file, whose missing rates
differ from training (customer_type 74% -> 28% missing), and is rightly flagged too.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import leadscore_cli as leadscore
from helpers import rows_of as query
from leadscore.drift import BatchDrift, DriftReport

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS, HELD_OUT_ROWS, SCORE_ROWS = 3000, 600, 600


def _split_training_file(src: Path, train: Path, held_out: Path) -> None:
    """The first TRAIN_ROWS rows as a training file; the rest without is_converted, with ids
    beyond the generator's, as a score file."""
    with src.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    label = header.index("is_converted")
    with train.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows[:TRAIN_ROWS])
    with held_out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", *(h for i, h in enumerate(header) if i != label)])
        for k, row in enumerate(rows[TRAIN_ROWS:]):
            writer.writerow([str(10_000_000 + k), *(v for i, v in enumerate(row) if i != label)])


@pytest.fixture(scope="module")
def drift_night(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("drift")
    data, generated, incoming = root / "data", root / "generated", root / "incoming"
    data.mkdir()
    incoming.mkdir()
    gen = leadscore(data, "generate", "--out", str(generated), "--train-rows", str(TRAIN_ROWS + HELD_OUT_ROWS),
                    "--score-rows", str(SCORE_ROWS), "--seed", "3", "--score-drift")
    assert gen.returncode == 0, gen.stderr
    _split_training_file(generated / "train.csv", root / "train.csv", incoming / "held_out.csv")
    (incoming / "drifted.csv").write_bytes((generated / "submission.csv").read_bytes())
    # the model first (baseline only: the same model on every machine), then a nightly run
    # that ingests both batches, builds, scores them and checks them. Training needs only the
    # feature table: the models up to it, without their data and unit tests (the nightly's full
    # dbt build runs them all)
    for step in (["ingest", "--train", str(root / "train.csv")],
                 ["build", "--select", "+fct_lead_features", "--exclude-resource-type", "test", "unit_test"],
                 ["train", "--baseline-only", "--seed", "1"]):
        done = leadscore(data, *step)
        assert done.returncode == 0, done.stdout + done.stderr
    night = leadscore(data, "nightly", "--input", str(incoming))
    assert night.returncode == 0, night.stdout + night.stderr
    return {"root": root, "db": data / "leadscore.duckdb", "serving": data / "serving" / "leadscore.duckdb",
            "stdout": night.stdout}


def _batches(db: Path) -> dict[str, dict]:
    rows = query(db, "select * from main.batch_drift")
    names = [r[0] for r in query(db, "select column_name from information_schema.columns "
                                     "where table_name = 'batch_drift' order by ordinal_position")]
    return {row[names.index("file_name")]: dict(zip(names, row)) for row in rows}


def test_the_drifted_batch_is_flagged_and_the_unshifted_one_is_not(drift_night):
    batches = _batches(drift_night["db"])
    assert set(batches) == {"held_out.csv", "drifted.csv"}
    held_out, drifted = batches["held_out.csv"], batches["drifted.csv"]
    for batch in (held_out, drifted):
        assert batch["batch_leads"] == batch["scored_leads"] == SCORE_ROWS and batch["has_enough_leads"]
        assert batch["features_compared"] > 50  # the contract's features, not a hand-kept list

    assert not held_out["has_warning"]
    assert held_out["max_psi"] < 0.25 and held_out["features_flagged"] == 0
    assert held_out["max_missing_rate_change"] < 0.10

    assert drifted["has_warning"]
    assert drifted["is_psi_warn"] and drifted["features_over_psi"] >= 3 and drifted["max_psi"] > 1.0
    # the later form leaves customer_type empty far less often (74% -> 28%)
    assert drifted["is_missing_rate_warn"] and drifted["missing_rate_warn_features"].startswith("customer_type -0.4")
    # the all-converting customer is rarer: the model expects far fewer conversions
    assert drifted["is_positive_rate_warn"] and drifted["positive_rate_ratio"] < 0.5


def test_per_feature_rows_cover_every_feature_of_both_batches(drift_night):
    db = drift_night["db"]
    per_batch = query(db, "select load_id, count(*), count(distinct feature_name) from main.batch_feature_drift "
                          "group by load_id")
    assert len(per_batch) == 2 and all(n == distinct for _, n, distinct in per_batch)
    features = {r[0] for r in query(db, "select distinct feature_name from main.batch_feature_drift")}
    assert {"customer_type", "bant_submit", "is_missing_customer_type", "lead_owner_rate_tier"} <= features
    # keys and the out-of-fold target rates / evidence counts are left out
    assert not features & {"lead_id", "split", "is_converted", "customer_type_target_rate",
                           "customer_idx_evidence_rows"}
    (customer_type,) = query(db, "select d.missing_rate_change, d.is_missing_rate_warn, d.batch_missing_rate, "
                                 "d.batch_values from main.batch_feature_drift as d "
                                 "inner join raw.loads as l on d.load_id = l.load_id "
                                 "where l.file_name = 'drifted.csv' and d.feature_name = 'customer_type'")
    change, warned, missing_rate, values = customer_type
    assert change < -0.3 and warned and values == round(SCORE_ROWS * (1 - missing_rate))


def test_the_nightly_warns_about_the_flagged_batch_and_records_it(drift_night):
    out = drift_night["stdout"]
    warnings = [line for line in out.splitlines() if " WARNING drift: " in line]
    assert len(warnings) == 1, out
    assert "drifted.csv, 600 leads" in warnings[0] and "PSI over threshold: " in warnings[0]
    assert "estimated positive rate" in warnings[0]
    assert "  drift             2 batch(es) checked, 1 flagged" in out
    (checked, flagged, lines), = query(drift_night["db"], "select drift_batches_checked, drift_batches_flagged, "
                                                          "drift_warnings from ops.nightly_runs")
    assert (checked, flagged) == (2, 1)
    assert lines == warnings[0].split(" WARNING drift: ", 1)[1]


def test_the_snapshot_carries_the_drift_tables_with_comments(drift_night):
    serving = drift_night["serving"]
    assert query(serving, "select * from batch_drift order by load_id") == query(
        drift_night["db"], "select * from main.batch_drift order by load_id")
    assert query(serving, "select count(*) from batch_feature_drift") == query(
        drift_night["db"], "select count(*) from main.batch_feature_drift")
    comments = dict(query(serving, "select column_name, comment from duckdb_columns() "
                                   "where table_name = 'batch_drift'"))
    assert all(comments.values()), comments
    assert "population stability index" in query(
        serving, "select comment from duckdb_columns() where table_name = 'batch_feature_drift' "
                 "and column_name = 'psi'")[0][0].lower()
    assert query(serving, "select drift_batches_flagged from nightly_runs") == [(1,)]


def test_source_freshness_passes_on_a_fresh_database(drift_night, tmp_path):
    # dbt starts from the nightly's parse of the project (the same database, profile and vars):
    # a copy of its partial_parse.msgpack in this test's own target folder
    (tmp_path / "target").mkdir()
    shutil.copy(drift_night["db"].parent / ".leadscore.duckdb.dbt-target" / "partial_parse.msgpack",
                tmp_path / "target")
    env = dict(os.environ, LEADSCORE_DB=str(drift_night["db"]), DBT_PROFILES_DIR=str(REPO),
               DBT_TARGET_PATH=str(tmp_path / "target"), DBT_LOG_PATH=str(tmp_path / "logs"),
               DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    dbt = Path(sys.executable).with_name("dbt")
    run = subprocess.run([str(dbt), "source", "freshness", "--no-use-colors"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads((tmp_path / "target" / "sources.json").read_text())["results"]
    assert {r["unique_id"]: r["status"] for r in results} == {
        "source.leadscore.raw.loads": "pass", "source.leadscore.ops.score_history": "pass"}


# -- the warning line, without a database --------------------------------------------------------

def _batch(**changes) -> BatchDrift:
    base = {"load_id": 4, "file_name": "day4.csv", "batch_leads": 800, "has_enough_leads": True, "max_psi": 0.9,
            "max_psi_feature": "a", "psi_warn_features": None, "unseen_warn_features": None,
            "missing_rate_warn_features": None, "scored_leads": 800, "estimated_positive_rate": 0.2,
            "expected_positive_rate": 0.08, "positive_rate_ratio": 2.5, "is_positive_rate_warn": False,
            "has_warning": True}
    return BatchDrift(**{**base, **changes})


def test_the_warning_names_the_worst_features_and_counts_the_rest():
    batch = _batch(psi_warn_features="a 0.9, b 0.8, c 0.7, d 0.6, e 0.5, f 0.4, g 0.3",
                   missing_rate_warn_features="h -0.3", is_positive_rate_warn=True)
    assert batch.warning() == (
        "load 4 (day4.csv, 800 leads): PSI over threshold: a 0.9, b 0.8, c 0.7, d 0.6, e 0.5 and 2 more; "
        "missing rate changed: h -0.3; estimated positive rate 0.200 against 0.080 expected (2.50x)")
    # the rate is named only when it is what crossed its threshold
    assert "positive rate" not in _batch(unseen_warn_features="x 0.1").warning()


def test_the_report_counts_checked_and_flagged_batches():
    report = DriftReport([_batch(), _batch(load_id=5, has_warning=False)])
    assert report.summary() == "2 batch(es) checked, 1 flagged (load 4; see main.batch_drift)"
    assert report.as_dict()["batches_flagged"] == 1 and len(report.as_dict()["warnings"]) == 1
    assert DriftReport().summary() == "0 batch(es) checked, 0 flagged"


def test_drift_skips_exactly_the_key_columns_the_training_job_skips():
    """A key column is never a feature (features.KEY_COLUMNS); compared as one, rate_fold (null on
    every score row) would flag every batch. The drift macro keeps its own list: the two agree."""
    import re

    from leadscore.features import KEY_COLUMNS

    macro = (REPO / "dbt_project" / "macros" / "drift.sql").read_text()
    listed = re.search(r"set keys = \[([^\]]*)\]", macro).group(1)
    assert tuple(re.findall(r"'(\w+)'", listed)) == KEY_COLUMNS
