"""The nightly run end to end: reruns, crash safety, readers during a run, export.

One small pipeline (generate -> nightly: ingest, dbt build, train, score, publish) is built
once per test run (conftest's pipeline_template, shared with test_scored_leads); each test
works on its own copy of that data folder.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from helpers import copy_pipeline
from leadscore import cli

REPO = Path(__file__).resolve().parents[1]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LEADSCORE_DB=str(data_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO), **extra)
    return env


def leadscore(data_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "leadscore.cli", *args],
        env=env_for(data_dir, **extra_env), cwd=REPO, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture()
def pipeline(pipeline_template, tmp_path) -> Path:
    """A private copy of the built pipeline (conftest's pipeline_template): tmp_path/data
    (database, models, serving) and incoming/."""
    return copy_pipeline(pipeline_template, tmp_path)


def query(db_file: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def main_db(root: Path) -> Path:
    return root / "data" / "leadscore.duckdb"


def serving_db(root: Path) -> Path:
    return root / "data" / "serving" / "leadscore.duckdb"


def state(root: Path) -> dict:
    """What a crash must not change: scores, registry, raw leads, and the serving snapshot."""
    return {
        "history": query(main_db(root), "select * from ops.score_history order by all"),
        "registry": query(main_db(root), "select model_version, is_current from main.model_registry order by 1"),
        "leads": query(main_db(root), "select count(*) from raw.leads"),
        "serving": query(serving_db(root), "select * from scored_leads order by lead_id"),
    }


def test_first_run_scored_every_unlabeled_lead(pipeline):
    assert query(main_db(pipeline), "select count(*), count(distinct lead_id) from main.scored_leads") == [(400, 400)]
    assert query(main_db(pipeline), "select count(*) from main.model_registry where is_current") == [(1,)]
    assert query(serving_db(pipeline), "select count(*) from scored_leads") == [(400,)]
    runs = query(main_db(pipeline), "select status, rows_ingested, leads_scored from ops.nightly_runs")
    assert runs == [("succeeded", 3400, 400)]


def test_the_snapshot_documents_its_columns_and_holds_the_call_list_and_drift(pipeline):
    """The snapshot's tables carry the dbt descriptions as comments (from the manifest of the
    run's dbt build), and the views analysts read beside scored_leads are copied in."""
    snapshot = serving_db(pipeline)
    undocumented = query(snapshot, "select column_name from duckdb_columns() where table_name = 'scored_leads' "
                                   "and comment is null")
    assert undocumented == []
    (comment,) = query(snapshot, "select comment from duckdb_columns() where table_name = 'scored_leads' "
                                 "and column_name = 'rank'")[0]
    assert comment.startswith("Rank among ALL current scores")
    assert query(snapshot, "select count(*) from call_list") == query(
        main_db(pipeline), "select count(*) from main.call_list")
    assert query(snapshot, "select count(*) from scored_lead_deciles") == [(10,)]
    # the generator's score file mimics the competition's test file, whose missing rates differ
    # from training: the run checked its one batch and recorded what it found
    (checked, flagged), = query(main_db(pipeline), "select drift_batches_checked, drift_batches_flagged "
                                                   "from ops.nightly_runs")
    assert checked == 1 and flagged == query(snapshot, "select count(*) from batch_drift where has_warning")[0][0]


def test_second_run_without_new_files_writes_no_scores(pipeline):
    before = query(main_db(pipeline), "select count(*) from ops.score_history")
    run = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert run.returncode == 0, run.stderr
    assert "0 rows from 0 new file(s), 2 already loaded" in run.stdout
    assert query(main_db(pipeline), "select count(*) from ops.score_history") == before
    # the night's data tests ran; dbt's unit tests (fixed fixtures) are left to make test and CI
    output = run.stdout + run.stderr
    assert " test pass" in output and "unit_test" not in output


def test_a_new_file_gets_only_its_own_leads_scored(pipeline):
    new = pipeline / "incoming" / "day2.csv"
    gen = leadscore(pipeline / "data", "generate", "--out", str(pipeline / "gen2"), "--train-rows", "50",
                    "--score-rows", "37", "--seed", "99")
    assert gen.returncode == 0, gen.stderr
    header, rows = _read_rows(pipeline / "gen2" / "submission.csv")
    for i, r in enumerate(rows):  # ids of their own: an id already loaded is the same lead
        r["id"] = str(40_000_000 + i)
    _write_rows(new, header, rows)
    before = {r[0] for r in query(main_db(pipeline), "select lead_id from ops.score_history")}
    run = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert run.returncode == 0, run.stderr
    rows = query(main_db(pipeline), "select lead_id, run_id from ops.score_history")
    new_rows = [r for r in rows if r[0] not in before]
    assert len(new_rows) == 37 and len({r[1] for r in new_rows}) == 1
    new_ids = {r[0] for r in query(main_db(pipeline), "select lead_id from raw.leads l join raw.loads using (load_id) where file_name = 'day2.csv'")}
    assert {r[0] for r in new_rows} == new_ids
    assert len(rows) == len(before) + 37


def _kill_at(pipeline: Path, point: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "score", "--all"] if point.startswith("score")
        else [sys.executable, "-m", "leadscore.cli", "publish"],
        env=env_for(pipeline / "data", LEADSCORE_PAUSE_AT=point, LEADSCORE_PAUSE_DIR=str(pipeline)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    marker = pipeline / f"{point}.reached"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, "the job ended before reaching the pause point"
        assert time.monotonic() < deadline, "pause point never reached"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_during_scoring_leaves_everything_unchanged(pipeline):
    before = state(pipeline)
    _kill_at(pipeline, "score.before_commit")
    assert state(pipeline) == before
    # ... and the next run completes (it has nothing new to score: the killed run wrote nothing)
    run = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert run.returncode == 0, run.stderr
    assert state(pipeline) == before
    assert query(main_db(pipeline), "select status from ops.nightly_runs order by started_at desc limit 1") == [("succeeded",)]


def test_sigkill_during_publish_leaves_the_snapshot_unchanged(pipeline):
    run = leadscore(pipeline / "data", "score", "--all")  # new scores the snapshot does not have yet
    assert run.returncode == 0, run.stderr
    before = state(pipeline)
    _kill_at(pipeline, "publish.before_swap")
    assert state(pipeline) == before
    run = leadscore(pipeline / "data", "publish")
    assert run.returncode == 0, run.stderr
    assert query(serving_db(pipeline), "select run_id from scored_leads limit 1") == query(
        main_db(pipeline), "select run_id from main.scored_leads limit 1"
    )


def test_readers_never_fail_while_scores_are_written_and_published(pipeline):
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                n = query(serving_db(pipeline), "select count(*) from scored_leads")[0][0]
                assert n == 400
                reads += 1
            except Exception as exc:  # any error at all is a failure
                errors.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # the nightly's writing steps (score, publish) three times: the snapshot is swapped
        # under the reader's feet each time
        for _ in range(3):
            for step in ("score", "publish"):
                run = leadscore(pipeline / "data", step, *(["--all"] if step == "score" else []))
                assert run.returncode == 0, run.stderr
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert reads > 10


def test_concurrent_nightly_exits_at_once(pipeline):
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", "nightly", "--input", str(pipeline / "incoming")],
        env=env_for(pipeline / "data", LEADSCORE_PAUSE_AT="nightly.started", LEADSCORE_PAUSE_DIR=str(pipeline)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # the first run holds the lock for sure once it reaches its first pause point
        marker = pipeline / "nightly.started.reached"
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        second = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
        assert time.monotonic() - started < 30
        assert second.returncode == 75, second.stderr
        assert "busy: another leadscore command holds" in second.stderr and "leadscore nightly, pid" in second.stderr
    finally:
        proc.kill()
        proc.wait()


def test_failed_dbt_build_scores_nothing_and_exits_nonzero(pipeline, monkeypatch, capsys):
    monkeypatch.setenv("LEADSCORE_DB", str(main_db(pipeline)))
    before = state(pipeline)
    # A var that is not a number makes the feature SQL invalid, so dbt build fails.
    from leadscore import build

    real = build.run_dbt

    def failing(args, quiet=False):
        return real([*args, "--vars", "{rare_min_count: 'not a number'}"], quiet=quiet)

    monkeypatch.setattr(build, "run_dbt", failing)
    code = cli.main(["nightly", "--input", str(pipeline / "incoming")])
    err = capsys.readouterr().err
    assert code != 0 and "dbt build" in err and "failed" in err
    assert state(pipeline)["history"] == before["history"]
    assert query(main_db(pipeline), "select status from ops.nightly_runs order by started_at desc limit 1") == [("failed",)]


def test_export_submission_has_exactly_the_input_ids(pipeline, tmp_path):
    out = tmp_path / "sub.csv"
    run = leadscore(pipeline / "data", "export-submission", "--out", str(out))
    assert run.returncode == 0, run.stderr
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    with (pipeline / "incoming" / "submission.csv").open() as fh:
        expected = [int(r["id"]) for r in csv.DictReader(fh)]
    ids = [int(r["id"]) for r in got]
    assert sorted(ids) == sorted(expected) and len(set(ids)) == len(ids)
    assert {r["is_converted"] for r in got} <= {"0", "1"}


def test_score_refuses_a_feature_table_that_changed(pipeline):
    con = duckdb.connect(str(main_db(pipeline)))
    victim = con.execute(
        "select column_name from information_schema.columns where table_name = 'fct_lead_features' "
        "and data_type = 'DOUBLE' order by ordinal_position limit 1"
    ).fetchall()[0][0]
    con.execute(f'alter table main.fct_lead_features drop column "{victim}"')
    con.close()
    run = leadscore(pipeline / "data", "score", "--all")
    assert run.returncode != 0
    assert f"{victim} is missing" in run.stderr and "retrain" in run.stderr


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
    ("historical_existing_cnt", "1e300", "out of range: must be between 0 and 1e+06"),
]


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def bad_night(pipeline_template, tmp_path_factory) -> dict:
    import gzip

    root = copy_pipeline(pipeline_template, tmp_path_factory.mktemp("bad_night"))
    data, incoming = root / "data", root / "incoming"
    killed = _kill_nightly_during_dbt(root)  # the run below is the run after a killed one
    gen = leadscore(data, "generate", "--out", str(root / "gen"), "--train-rows", "60", "--score-rows", "50", "--seed", "77")
    assert gen.returncode == 0, gen.stderr

    # the real-file case: a score file whose is_converted holds someone's predictions
    header, rows = _read_rows(root / "gen" / "submission.csv")
    for i, r in enumerate(rows):
        r["id"], r["is_converted"] = str(20_000_000 + i), ("1" if i % 3 == 0 else "0")
    filled = root / "submission_filled.csv"
    _write_rows(filled, header, rows)
    given = leadscore(data, "ingest", "--score", str(filled))
    assert given.returncode == 0, given.stderr

    # rows breaking the column rules, in a file named .CSV
    header, rows = _read_rows(root / "gen" / "train.csv")
    for r, (column, value, _) in zip(rows, RULE_BREAKERS):
        r[column] = value
    _write_rows(incoming / "day2_train.CSV", header, rows)

    # the score file already loaded, re-exported with five more leads, gzip-compressed
    header, rows = _read_rows(incoming / "submission.csv")
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


def test_publish_leaves_no_replayable_wal(pipeline):
    snapshot_file = serving_db(pipeline)
    assert snapshot_file.stat().st_mode & 0o777 == 0o444
    # someone opens the snapshot read-write, changes rows and is killed before a checkpoint
    tamper = (
        "import duckdb, os, signal, sys; con = duckdb.connect(sys.argv[1]); "
        "con.execute('delete from scored_leads where rank_in_run > 41'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", tamper, str(snapshot_file)], check=False)
    assert Path(f"{snapshot_file}.wal").exists()
    # ... and a publish was killed before its cleanup
    leftovers = [snapshot_file.parent / ".leadscore.duckdb.dead0001.tmp",
                 snapshot_file.parent / ".leadscore.duckdb.dead0001.tmp.wal",
                 snapshot_file.parent / ".scored_leads.parquet.dead0001.tmp"]
    for f in leftovers:
        f.write_bytes(b"partial")
    run = leadscore(pipeline / "data", "publish")
    assert run.returncode == 0, run.stderr
    assert not Path(f"{snapshot_file}.wal").exists()
    assert not any(f.exists() for f in leftovers)
    assert snapshot_file.stat().st_mode & 0o777 == 0o444
    assert query(serving_db(pipeline), "select count(*) from scored_leads") == [(400,)]
