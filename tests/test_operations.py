"""Operating the nightly run (issue 13, operations): --version, time-stamped and JSON log lines,
training options and dbt --vars passed through `nightly`, the run's final status in the serving
snapshot (a failed run too, without touching the last good scores), and one-line errors for bad
paths and sizes.

Most tests run `cli.main` in process with the heavy steps replaced by fakes; one small real
pipeline (generate -> nightly) checks the options and the snapshot end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from helpers import rows_of
from leadscore import cli, serving
from leadscore.errors import LeadscoreError

REPO = Path(__file__).resolve().parents[1]
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR) [a-z ]+: \S")


def leadscore(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LEADSCORE_DB=str(data_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO),
               OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)


# -- --version ------------------------------------------------------------------------------------

def test_version_prints_the_package_version():
    from importlib.metadata import version

    run = subprocess.run([sys.executable, "-m", "leadscore.cli", "--version"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"leadscore {version('leadscore')}"
    assert re.fullmatch(r"leadscore \d+\.\d+\S*", run.stdout.strip())


# -- nightly in process, the heavy steps faked ------------------------------------------------------

@pytest.fixture()
def fake_steps(db_file, tmp_path, monkeypatch):
    """build.run_dbt, train.train_model, score and publish replaced; what they were given is kept."""
    from leadscore import build, registry, score, train

    seen: dict = {"dbt": [], "train": []}

    def run_dbt(args, quiet=False):
        seen["dbt"].append(list(args))
        if seen.get("dbt_fails"):
            raise LeadscoreError("dbt build failed (exit 1): model.leadscore.x: boom")
        return build.DbtResult(0, {"model success": 3, "test pass": 5}, None, 1.5, [])

    def train_model(con, **kwargs):
        seen["train"].append(kwargs)
        return SimpleNamespace(model_version="m-fake", became_current=True, summary=lambda: "trained model m-fake")

    def score_leads(con, *args, **kwargs):
        return SimpleNamespace(model_version="m-fake", leads_scored=0, first_lead_date=None, last_lead_date=None,
                               summary=lambda: "scored 0 leads with model m-fake")

    def publish(con):
        seen["published"] = True
        return SimpleNamespace(summary=lambda: "published (fake)")

    seen["real_publish"] = serving.publish
    monkeypatch.setattr(build, "run_dbt", run_dbt)
    monkeypatch.setattr(train, "train_model", train_model)
    monkeypatch.setattr(registry, "current_version", lambda con: None)
    monkeypatch.setattr(score, "score_leads", score_leads)
    monkeypatch.setattr(score, "top_leads", lambda con, n=10: [])
    monkeypatch.setattr(serving, "publish", publish)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    seen["incoming"] = incoming
    return seen


def test_nightly_passes_training_options_and_dbt_vars(fake_steps, capsys):
    code = cli.main(["nightly", "--input", str(fake_steps["incoming"]), "--trials", "7", "--ensemble", "stacking",
                     "--target-prevalence", "0.3", "--folds", "3", "--time-budget", "40", "--seed", "9",
                     "--no-score-mix", "--vars", "{rare_min_count: 30}"])
    assert code == 0, capsys.readouterr().err
    assert fake_steps["train"] == [{"time_budget": 40.0, "trials": 7, "seed": 9, "folds": 3,
                                    "ensemble": "stacking", "target_prevalence": 0.3, "score_mix": False,
                                    "promote": "auto",
                                    "promote_reason": None}]
    (dbt_args,) = fake_steps["dbt"]
    assert dbt_args[0] == "build" and dbt_args[-2:] == ["--vars", "{rare_min_count: 30}"]


def test_nightly_defaults_pass_no_vars(fake_steps, capsys):
    assert cli.main(["nightly", "--input", str(fake_steps["incoming"])]) == 0
    assert "--vars" not in fake_steps["dbt"][0]
    assert fake_steps["train"][0]["ensemble"] == "voting" and fake_steps["train"][0]["trials"] is None


@pytest.mark.parametrize("bad", [["--trials", "0"], ["--ensemble", "bagging"], ["--target-prevalence", "2"],
                                 ["--vars", "not: [a mapping"], ["--vars", "just text"], ["--log-format", "xml"]])
def test_bad_nightly_options_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nightly", *bad])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_nightly_text_log_lines_have_time_level_and_step(fake_steps, capsys):
    assert cli.main(["nightly", "--input", str(fake_steps["incoming"])]) == 0
    out = capsys.readouterr().out
    log, _, summary = out.partition("\n\n")
    lines = log.splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    # the dbt step says it started before its silent stretch, then its result
    dbt = [line for line in lines if " INFO dbt build: " in line]
    assert "running" in dbt[0] and "3 model success" in dbt[1]
    # the summary block stays as people read it
    assert summary.startswith("nightly run n") and "succeeded" in summary.splitlines()[0]
    assert not TEXT_LINE.match(summary.splitlines()[0])


def test_nightly_json_log_lines_parse(fake_steps, capsys):
    assert cli.main(["nightly", "--input", str(fake_steps["incoming"]), "--log-format", "json"]) == 0
    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines()]  # every line, the summary included
    assert records
    for r in records:
        assert {"time", "level", "step", "message"} <= r.keys()
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", r["time"]) and r["level"] in ("INFO", "WARNING")
    steps = [r["step"] for r in records]
    assert steps.index("dbt build") < steps.index("train") < steps.index("score") < steps.index("publish")
    assert records[-1]["step"] == "summary" and records[-1]["data"]["model_version"] == "m-fake"
    assert len({r["run_id"] for r in records}) == 1


def test_a_failed_nightly_logs_an_error_and_keeps_the_last_good_snapshot(fake_steps, db_file, capsys):
    from leadscore import tables

    # a last good snapshot, published for real from hand-made scores
    con = duckdb.connect(str(db_file))
    tables.ensure_schemas(con)
    con.execute("create table main.scored_leads as select 'L1' as lead_id, 0.9::double as conversion_probability")
    fake_steps["real_publish"](con)
    con.close()
    live = serving.serving_db_path()
    good = rows_of(live, "select * from scored_leads")

    fake_steps["dbt_fails"] = True
    code = cli.main(["nightly", "--input", str(fake_steps["incoming"]), "--log-format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and "boom" in err
    records = [json.loads(line) for line in out.splitlines()]
    (error,) = [r for r in records if r["level"] == "ERROR"]
    assert error["step"] == "dbt build" and "boom" in error["message"]
    assert records[-1]["step"] == "publish" and "shows this failure" in records[-1]["message"]
    # the snapshot learned about the failure, and nothing else changed in it
    assert rows_of(live, "select status, error like '%boom%' from nightly_runs") == [("failed", True)]
    assert rows_of(live, "select * from scored_leads") == good
    assert live.stat().st_mode & 0o777 == 0o444
    assert sorted(p.name for p in live.parent.iterdir()) == ["leadscore.duckdb", "scored_leads.parquet"]


def test_publish_run_log_without_a_snapshot_does_nothing(db_file):
    from leadscore import tables

    con = duckdb.connect(str(db_file))
    try:
        tables.ensure_schemas(con)
        assert serving.publish_run_log(con) is None
    finally:
        con.close()
    assert not serving.serving_db_path().exists()


# -- bad paths and sizes: one line, no traceback ----------------------------------------------------

def _one_error_line(run: subprocess.CompletedProcess, command: str) -> str:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "unexpected" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith(f"leadscore {command}: error:")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def test_bench_with_sizes_that_are_not_numbers(tmp_path):
    line = _one_error_line(leadscore(tmp_path, "bench", "--sizes", "abc"), "bench")
    assert "--sizes" in line and "'abc'" in line


def test_bench_with_too_small_a_size(tmp_path):
    run = leadscore(tmp_path, "bench", "--sizes", "5")
    assert run.returncode == 2 and "Traceback" not in run.stderr  # a usage error, before anything runs
    assert "at least 1,000" in run.stderr


def test_generate_into_a_folder_that_cannot_be_made(tmp_path):
    run = leadscore(tmp_path, "generate", "--out", "/proc/x", "--train-rows", "20", "--score-rows", "5")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "cannot write /proc/x" in _one_error_line(run, "generate")


# -- a small real pipeline ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_night(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("operations")
    data, incoming = root / "data", root / "incoming"
    gen = leadscore(data, "generate", "--out", str(incoming), "--train-rows", "1500", "--score-rows", "150",
                    "--seed", "3")
    assert gen.returncode == 0, gen.stderr
    run = leadscore(data, "nightly", "--input", str(incoming), "--log-format", "json", "--time-budget", "20",
                    "--trials", "1", "--folds", "3", "--vars", "{rare_min_count: 25}")
    return {"data": data, "run": run}


def test_a_real_night_with_options_and_json_log(real_night):
    run, data = real_night["run"], real_night["data"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert all({"time", "level", "step", "message"} <= r.keys() for r in records)
    assert any(r["step"] == "train" and "at most 1 trials per model, 3 folds" in r["message"] for r in records)
    results = json.loads((data / ".leadscore.duckdb.dbt-target" / "run_results.json").read_text())
    assert results["args"]["vars"] == {"rare_min_count": 25}


def test_the_snapshot_says_the_run_succeeded(real_night):
    run, data = real_night["run"], real_night["data"]
    assert run.returncode == 0, run.stderr
    snapshot = data / "serving" / "leadscore.duckdb"
    main = rows_of(data / "leadscore.duckdb", "select run_id, status from ops.nightly_runs")
    assert main == rows_of(snapshot, "select run_id, status from nightly_runs")
    assert [r[1] for r in main] == ["succeeded"]
    assert rows_of(snapshot, "select count(*) from nightly_runs where ended_at is null") == [(0,)]


def test_export_to_a_path_that_cannot_be_written(real_night):
    data = real_night["data"]
    run = leadscore(data, "export-submission", "--out", "/proc/x.csv")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "cannot write /proc/x.csv" in _one_error_line(run, "export-submission")
    folder = data / "a-folder"
    folder.mkdir()
    assert "is a folder" in _one_error_line(leadscore(data, "export-submission", "--out", str(folder)),
                                             "export-submission")
