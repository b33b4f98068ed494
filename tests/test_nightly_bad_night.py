"""A bad night in a real nightly run: the input problems of test_csv_input, test_rejections and
test_column_rules, after a nightly killed during its dbt build, on a copy of conftest's
pipeline_template."""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import copy_pipeline
from nightly_helpers import REPO, env_for, leadscore, main_db, query, read_rows, write_rows


# -- a bad night: the input problems of test_csv_input/test_rejections/test_column_rules in a real run --
# One bad night, built once for the module: on top of the session's pipeline, the real-file case
# (a score file with labels given with --score), a training file with rows that break column
# rules (named .CSV), the original score file re-exported with five more leads (gzip), and three
# files that cannot be loaded. Then one nightly run over the folder.

RULE_BREAKERS = [
    ("lead_owner", "", "required value missing"),
    ("customer_idx", "", "required value missing"),
    ("bant_submit", "2", "not one of 0, 0.25, 0.5, 0.75, 1"),
    ("com_reg_ver_win_rate", "1.5", "out of range: must be between 0 and 1"),
    ("ver_win_rate_x", "-0.1", "out of range: must be between 0 and 1"),
    ("historical_existing_cnt", "1e300", "out of range: must be between 0 and 1,000,000"),
]


@pytest.fixture(scope="module")
def bad_night(pipeline_template, tmp_path_factory) -> dict:
    import gzip

    root = copy_pipeline(pipeline_template, tmp_path_factory.mktemp("bad_night"))
    data, incoming = root / "data", root / "incoming"
    killed = _kill_nightly_during_dbt(root)  # the run below is the run after a killed one
    gen = leadscore(data, "generate", "--out", str(root / "gen"), "--train-rows", "60", "--score-rows", "50", "--seed", "77")
    assert gen.returncode == 0, gen.stderr

    # the real-file case: a score file whose is_converted holds someone's predictions
    header, rows = read_rows(root / "gen" / "submission.csv")
    for i, r in enumerate(rows):
        r["id"], r["is_converted"] = str(20_000_000 + i), ("1" if i % 3 == 0 else "0")
    filled = root / "submission_filled.csv"
    write_rows(filled, header, rows)
    given = leadscore(data, "ingest", "--score", str(filled))
    assert given.returncode == 0, given.stderr

    # rows breaking the column rules, in a file named .CSV
    header, rows = read_rows(root / "gen" / "train.csv")
    for r, (column, value, _) in zip(rows, RULE_BREAKERS):
        r[column] = value
    write_rows(incoming / "day2_train.CSV", header, rows)

    # the score file already loaded, re-exported with five more leads, gzip-compressed
    header, rows = read_rows(incoming / "submission.csv")
    extra = [dict(rows[i], id=str(30_000_000 + i)) for i in range(5)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows + extra)
    (incoming / "submission_v2.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode()))

    # files that cannot be loaded
    (incoming / "empty.csv").write_bytes(b"")
    (incoming / "header_only.csv").write_text(",".join(header) + "\n")
    (incoming / "junk.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)

    run = leadscore(data, "nightly", "--input", str(incoming))
    out = root / "export.csv"
    export = leadscore(data, "export-submission", "--out", str(out))
    return {"root": root, "run": run, "given": given, "killed": killed, "filled_ids": [20_000_000 + i for i in range(50)],
            "extra_ids": [30_000_000 + i for i in range(5)], "export": export, "export_path": out}


def test_rule_breaking_rows_never_fail_a_later_dbt_build(bad_night):
    run, db = bad_night["run"], main_db(bad_night["root"])
    assert run.returncode == 3, run.stdout + run.stderr  # finished; 3 only for the refused files
    assert "dbt build:" in run.stdout and " fail" not in run.stdout.split("dbt build:")[1].splitlines()[0]
    got = query(db, "select r.source_row, r.column_name, r.reason from raw.rejected_rows as r "
                    "join raw.loads as l using (load_id) where l.file_name = 'day2_train.CSV' order by 1")
    assert got == [(i + 1, c, reason) for i, (c, _, reason) in enumerate(RULE_BREAKERS)]
    assert query(db, "select status from ops.nightly_runs order by started_at desc limit 1") == [("succeeded",)]


def test_a_score_file_with_labels_is_scored_in_full(bad_night):
    db = main_db(bad_night["root"])
    assert "50 label(s) in a file loaded as a score file set aside" in bad_night["given"].stderr
    ids = ", ".join(map(str, bad_night["filled_ids"]))
    assert query(db, f"select count(*), count(is_converted) from raw.leads where id in ({ids})") == [(50, 0)]
    assert query(db, f"select count(distinct id) from main.scored_leads where id in ({ids})") == [(50,)]
    assert query(db, "select count(*) from raw.set_aside_labels") == [(50,)]
    # nightly decided each file's role from the file and said so
    out = bad_night["run"].stdout
    assert "day2_train.CSV: 60 rows" not in out  # 6 of them were rejected
    assert "day2_train.CSV: loaded 54 rows as a train file (no 'id' column" in out
    assert "submission_v2.csv.gz: loaded 5 rows as a score file (has an 'id' column" in out


def test_export_after_a_bad_night_writes_each_id_once(bad_night):
    export = bad_night["export"]
    assert export.returncode == 0, export.stderr
    with bad_night["export_path"].open() as fh:
        ids = [int(r["id"]) for r in csv.DictReader(fh)]
    assert len(ids) == len(set(ids)) == 400 + 50 + 5
    assert set(bad_night["filled_ids"]) <= set(ids) and set(bad_night["extra_ids"]) <= set(ids)
    db = main_db(bad_night["root"])
    assert query(db, "select rows_loaded, rows_rejected from raw.loads where file_name = 'submission_v2.csv.gz'") == [(5, 400)]


def test_bad_files_are_quarantined_and_the_run_finishes(bad_night):
    run, db = bad_night["run"], main_db(bad_night["root"])
    assert run.returncode == 3
    assert "with 3 file(s) refused (exit code 3)" in run.stdout
    refused = query(db, "select file_name, reason from raw.loads where status = 'refused' order by 1")
    assert [r[0] for r in refused] == ["empty.csv", "header_only.csv", "junk.csv"]
    assert "file is empty" in refused[0][1] and "header only, no data rows" in refused[1][1]
    assert "not valid UTF-8 at line 1" in refused[2][1]
    assert "refused" in run.stderr and "junk.csv" in run.stderr
    assert query(db, "select count(*) from raw.loads where status = 'loaded' and file_name in "
                     "('day2_train.CSV', 'submission_v2.csv.gz')") == [(2,)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _kill_nightly_during_dbt(root: Path) -> dict:
    """Start a nightly, SIGKILL it once dbt has started; report whether dbt outlived it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "nightly", "--input", str(root / "incoming")],
        env=env_for(root / "data", LEADSCORE_PAUSE_AT="dbt.started", LEADSCORE_PAUSE_DIR=str(root)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    marker = root / "dbt.started.reached"
    deadline = time.monotonic() + 120
    while not marker.exists() or len(marker.read_text().split()) < 2:
        assert proc.poll() is None, "the job ended before starting dbt"
        assert time.monotonic() < deadline, "dbt never started"
        time.sleep(0.05)
    dbt_pid = int(marker.read_text().split()[1])
    results = root / "data" / ".leadscore.duckdb.dbt-target" / "run_results.json"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while _alive(dbt_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"dbt_alive": _alive(dbt_pid), "dbt_finished": results.exists()}


def test_sigkill_during_dbt_build_takes_dbt_with_it(bad_night):
    """The bad night's run is the run after a nightly killed during dbt build."""
    assert bad_night["killed"] == {"dbt_alive": False, "dbt_finished": False}
    assert query(main_db(bad_night["root"]), "select status from ops.nightly_runs order by started_at") == [
        ("succeeded",), ("abandoned",), ("succeeded",)]
