"""The nightly run end to end: the first run, a rerun, a new file, export.

One small pipeline (generate -> nightly: ingest, dbt build, train, score, publish) is built
once per test run (conftest's pipeline_template, shared with test_scored_leads and the other
test_nightly_* modules); each test works on its own copy of that data folder (conftest's
pipeline), or reads conftest's second_night (the template after a second nightly with a new
score file). Crash safety and concurrency: test_nightly_crash.py; a night of bad input files:
test_nightly_bad_night.py.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb

from conftest import SECOND_NIGHT_FILE, SECOND_NIGHT_ROWS
from leadscore import nightly
from nightly_helpers import leadscore, main_db, query, serving_db


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


def test_a_new_file_gets_only_its_own_leads_scored(pipeline_template, second_night):
    """conftest's second_night: a copy of the template after a nightly run over its folder with
    one new score file (its leads' ids of their own: an id already loaded is the same lead)."""
    before = {r[0] for r in query(main_db(pipeline_template), "select lead_id from ops.score_history")}
    rows = query(main_db(second_night), "select lead_id, run_id from ops.score_history")
    new_rows = [r for r in rows if r[0] not in before]
    assert len(new_rows) == SECOND_NIGHT_ROWS and len({r[1] for r in new_rows}) == 1
    new_ids = {r[0] for r in query(main_db(second_night), "select lead_id from raw.leads l join raw.loads using (load_id) "
                                                          f"where file_name = '{SECOND_NIGHT_FILE}'")}
    assert {r[0] for r in new_rows} == new_ids
    assert len(rows) == len(before) + SECOND_NIGHT_ROWS


def test_export_submission_has_exactly_the_input_ids(pipeline, tmp_path):
    out = tmp_path / "sub.csv"
    run = leadscore(pipeline / "data", "export-submission", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr  # every id lead is built and scored
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


def _current_model(root: Path) -> str:
    return query(main_db(root), "select model_version from main.model_registry where is_current")[0][0]


def test_publish_keeps_the_snapshot_until_a_new_model_has_scored_and_the_night_publishes_it(pipeline):
    """A model made current by `train` (or `models rollback`) has scored nothing yet: `publish`
    refuses instead of emptying the analysts' snapshot. The nightly scores before it publishes,
    so a normal night publishes the new model's scores."""
    trained = leadscore(pipeline / "data", "train", "--baseline-only", "--seed", "1", "--promote", "always")
    assert trained.returncode == 0, trained.stderr
    new = _current_model(pipeline)
    snapshot = {p.name: p.read_bytes() for p in serving_db(pipeline).parent.glob("*.*")}
    refused = leadscore(pipeline / "data", "publish")
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"nothing to publish: model {new} is current and has scored no leads" in refused.stderr
    assert "run `leadscore score`" in refused.stderr and "is unchanged" in refused.stderr
    assert {p.name: p.read_bytes() for p in serving_db(pipeline).parent.glob("*.*")} == snapshot

    night = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert night.returncode == 0, night.stdout + night.stderr
    assert f"model version     {new} (the current model, which scored)" in night.stdout
    assert "trained           no model (one was current; --retrain trains a new one)" in night.stdout
    assert "WARNING publish" not in night.stdout  # (the generated score file is flagged for drift)
    assert query(serving_db(pipeline), "select model_version, count(*) from scored_leads group by all") == [(new, 400)]


def test_a_night_with_no_lead_to_score_succeeds_and_keeps_the_snapshots_scores(pipeline):
    """Publishing follows scoring, so at night "the current model has no scores" means the
    database holds no unlabeled lead (training files only): a WARNING, not a failed night; the
    last snapshot keeps its scores, and its nightly_runs shows the run."""
    con = duckdb.connect(str(main_db(pipeline)))
    con.execute("delete from raw.leads where is_converted is null")
    con.execute("delete from ops.latest_scores")
    con.execute("delete from ops.score_history")
    con.close()
    before = query(serving_db(pipeline), "select * from scored_leads order by lead_id")
    assert len(before) == 400

    night = leadscore(pipeline / "data", "nightly", "--input", str(pipeline / "incoming"))
    assert night.returncode == 0, night.stdout + night.stderr
    current = _current_model(pipeline)
    assert (f"WARNING publish: skipped: model {current} has no scores: the database holds no unlabeled lead "
            "yet (score files bring them); the serving snapshot is left as it was") in night.stdout
    assert "serving snapshot  not replaced: model" in night.stdout and "leads scored      0" in night.stdout
    assert query(serving_db(pipeline), "select * from scored_leads order by lead_id") == before
    runs = "select status, leads_scored from nightly_runs order by started_at"
    assert query(main_db(pipeline), runs.replace("nightly_runs", "ops.nightly_runs")) == [
        ("succeeded", 400), ("succeeded", 0)]
    assert query(serving_db(pipeline), runs) == [("succeeded", 400), ("succeeded", 0)]


class _Build:
    """What nightly reads of build.run_dbt's result: the template's dbt build is already done."""
    counts = {"model success": 1}

    @staticmethod
    def summary() -> str:
        return "dbt build: 1 model success in 0.0 s"


def test_the_summary_names_the_scoring_model_and_a_trained_challenger_apart(pipeline, monkeypatch):
    """A retrain whose model loses to the current one registers a challenger; the current model
    goes on scoring, and the summary names each for what it did (it once called the scoring
    model "trained in this run")."""
    from leadscore import build, train

    monkeypatch.setenv("LEADSCORE_DB", str(main_db(pipeline)))
    monkeypatch.setenv("LEADSCORE_HOME", str(Path(__file__).resolve().parents[1]))
    current = _current_model(pipeline)
    challenger = "v20991231T000000Z-0000beef"
    monkeypatch.setattr(build, "run_dbt", lambda args, quiet=False: _Build())
    monkeypatch.setattr(train, "train_model", lambda con, **options: SimpleNamespace(
        model_version=challenger, became_current=False, summary=lambda: f"model {challenger}: a CHALLENGER"))
    result = nightly.run_nightly(None, retrain=True, time_budget=20, seed=1)
    lines = result.summary().splitlines()
    assert f"  model version     {current} (the current model, which scored)" in lines
    assert (f"  trained           {challenger} in this run, registered as a challenger: {current} stays current "
            f"(`leadscore models promote {challenger}` to switch)") in lines
    assert not any("trained in this run" in line for line in lines)
    assert result.as_dict()["trained_model"] == challenger and result.as_dict()["trained_became_current"] is False
    assert query(main_db(pipeline), "select trained_model, model_version from ops.nightly_runs "
                                    "order by started_at desc limit 1") == [(challenger, current)]
    # a trained model that became current scores: one name on both lines
    promoted = nightly.NightlyResult("n1", trained_model=challenger, trained_became_current=True,
                                     model_version=challenger)
    assert f"  trained           {challenger} in this run, now the current model" in promoted.summary().splitlines()
