"""The nightly run end to end: reruns, crash safety, readers during a run, export.

One small pipeline (generate -> nightly: ingest, dbt build, train, score, publish) is built
once per session; each test works on its own copy of that data folder.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

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


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    data.mkdir()
    raw = root / "incoming"
    gen = leadscore(data, "generate", "--out", str(raw), "--train-rows", "3000", "--score-rows", "400", "--seed", "5")
    assert gen.returncode == 0, gen.stderr
    run = leadscore(data, "nightly", "--input", str(raw), "--time-budget", "25")
    assert run.returncode == 0, run.stdout + run.stderr
    return root


@pytest.fixture()
def pipeline(pipeline_template, tmp_path) -> Path:
    """A private copy of the built pipeline: tmp_path/data (database, models, serving) and incoming/."""
    shutil.copytree(pipeline_template / "data", tmp_path / "data")
    shutil.copytree(pipeline_template / "incoming", tmp_path / "incoming")
    return tmp_path


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


def test_second_run_without_new_files_writes_no_scores(pipeline):
    before = query(main_db(pipeline), "select count(*) from ops.score_history")
    run = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert run.returncode == 0, run.stderr
    assert "0 rows from 0 new file(s), 2 already loaded" in run.stdout
    assert query(main_db(pipeline), "select count(*) from ops.score_history") == before


def test_a_new_file_gets_only_its_own_leads_scored(pipeline):
    new = pipeline / "incoming" / "day2.csv"
    gen = leadscore(pipeline / "data", "generate", "--out", str(pipeline / "gen2"), "--train-rows", "50",
                    "--score-rows", "37", "--seed", "99")
    assert gen.returncode == 0, gen.stderr
    shutil.copy(pipeline / "gen2" / "submission.csv", new)
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
