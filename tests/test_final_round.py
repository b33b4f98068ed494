"""The final round's files end to end: a folder mixing final-round files with a qualifier-format
file runs the nightly (a qualifier-only folder is tests/test_nightly.py's pipeline); with dated
training rows, training validates forward in time and the run records the lead dates it scored."""

from __future__ import annotations

import json
from pathlib import Path


from helpers import leadscore_cli as leadscore
from helpers import rows_of as query

REPO = Path(__file__).resolve().parents[1]


def test_nightly_runs_on_a_folder_mixing_final_round_and_qualifier_files(tmp_path):
    data, incoming = tmp_path / "data", tmp_path / "incoming"
    data.mkdir()
    gen = leadscore(data, "generate", "--schema", "final", "--out", str(incoming),
                    "--train-rows", "2000", "--score-rows", "200", "--seed", "7")
    assert gen.returncode == 0, gen.stderr
    # beside them, a qualifier-format file of leads to score (no dates, no final-round columns)
    gen = leadscore(data, "generate", "--out", str(tmp_path / "qualifier"), "--train-rows", "100",
                    "--score-rows", "100", "--seed", "8")
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "qualifier" / "submission.csv").rename(incoming / "qualifier_submission.csv")
    run = leadscore(data, "nightly", "--input", str(incoming), "--time-budget", "20")
    assert run.returncode == 0, run.stdout + run.stderr
    db_file = data / "leadscore.duckdb"

    dated, undated = query(db_file, "select count(lead_date), count(*) - count(lead_date) from raw.leads")[0]
    # two generated files may draw the same score id: the later copy is a rejected row, not lost
    rejected = query(db_file, "select count(distinct (load_id, source_row)) from raw.rejected_rows")[0][0]
    assert dated + undated + rejected == 2300 and rejected <= 2
    assert dated >= 2198 and 98 <= undated <= 100
    typed = query(db_file, "select count(*) from raw.leads where lead_date is not null and "
                           "customer_history is not null and lead_from_channel is not null")[0][0]
    assert typed > 0.9 * dated
    scored = query(db_file, "select count(*) from main.scored_leads")[0][0]
    assert scored == query(db_file, "select count(*) from raw.leads where is_converted is null")[0][0] >= 298
    first, last = query(db_file, "select scored_from, scored_to from ops.nightly_runs")[0]
    assert first is not None and last >= first
    selection = json.loads(query(db_file, "select selection from main.model_registry where is_current")[0][0])
    assert selection["validation"]["scheme"] == "forward"  # every training row is dated
