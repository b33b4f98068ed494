"""The final round's files end to end: a folder of final-round files and a folder mixing them
with qualifier files both run the nightly; with dates, training validates forward in time and
the run records the lead dates it scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]


def leadscore(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEADSCORE_DB=str(data_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO))
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def query(db_file: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("mixed", [False, True], ids=["final-round folder", "mixed folder"])
def test_nightly_runs_on_final_round_and_mixed_folders(tmp_path, mixed):
    data, incoming = tmp_path / "data", tmp_path / "incoming"
    data.mkdir()
    gen = leadscore(data, "generate", "--schema", "final", "--out", str(incoming / "final"),
                    "--train-rows", "3000", "--score-rows", "300", "--seed", "7")
    assert gen.returncode == 0, gen.stderr
    if mixed:  # last year's qualifier-format export beside this year's final-round files
        gen = leadscore(data, "generate", "--out", str(incoming / "qualifier"), "--train-rows", "1500",
                        "--score-rows", "100", "--seed", "8")
        assert gen.returncode == 0, gen.stderr
        (incoming / "qualifier" / "train.csv").rename(incoming / "final" / "qualifier_train.csv")
        (incoming / "qualifier" / "submission.csv").rename(incoming / "final" / "qualifier_submission.csv")
    run = leadscore(data, "nightly", "--input", str(incoming / "final"), "--time-budget", "30")
    assert run.returncode == 0, run.stdout + run.stderr
    db_file = data / "leadscore.duckdb"

    dated, undated = query(db_file, "select count(lead_date), count(*) - count(lead_date) from raw.leads")[0]
    # two generated files may draw the same score id: the later copy is a rejected row, not lost
    rejected = query(db_file, "select count(distinct (load_id, source_row)) from raw.rejected_rows")[0][0]
    assert dated + undated + rejected == (4900 if mixed else 3300) and rejected <= 2
    assert dated >= 3298 and undated >= (1598 if mixed else 0) and (undated == 0) is (not mixed)
    scored = query(db_file, "select count(*) from main.scored_leads")[0][0]
    assert scored == query(db_file, "select count(*) from raw.leads where is_converted is null")[0][0]
    assert scored >= (398 if mixed else 300)
    first, last = query(db_file, "select scored_from, scored_to from ops.nightly_runs")[0]
    assert first is not None and last >= first
    selection = json.loads(query(db_file, "select selection from main.model_registry where is_current")[0][0])
    # a mixed folder has undated training rows: forward folds need (nearly) every row dated
    assert selection["validation"]["scheme"] == ("random_kfold" if mixed else "forward")
