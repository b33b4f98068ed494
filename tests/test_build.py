"""build.py: dbt in a subprocess, its results read back from this run's own run_results.json
(per database), one-line failure messages, and DbtResult.summary. A stand-in dbt script keeps
most of these fast; the last tests run the real dbt (the profile's memory cap, the score history's
key test)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from leadscore import build
from leadscore.errors import LeadscoreError

REPO = Path(__file__).resolve().parents[1]


def _results(*rows: tuple[str, str, str | None], elapsed: float = 2.5, invocation: str = "inv-1") -> dict:
    return {"metadata": {"invocation_id": invocation}, "elapsed_time": elapsed,
            "results": [{"unique_id": u, "status": s, "message": m} for u, s, m in rows]}


# -- reading run_results.json ----------------------------------------------------------------------

def test_run_results_are_counted_by_resource_type_and_status(tmp_path):
    (tmp_path / "run_results.json").write_text(json.dumps(_results(
        ("model.leadscore.stg_leads", "success", "OK"),
        ("model.leadscore.fct_lead_features", "success", "OK"),
        ("test.leadscore.not_null_x", "pass", None),
        ("test.leadscore.unique_y", "fail", "Got 3 results,\n  configured to fail if != 0"),
        ("seed.leadscore.countries", "error", None),
        ("model.leadscore.skipped_one", "skipped", None),
        elapsed=12.34,
    )))
    r = build.read_run_results(target=tmp_path)
    assert r.counts == {"model success": 2, "test pass": 1, "test fail": 1, "seed error": 1, "model skipped": 1}
    assert r.invocation_id == "inv-1" and r.elapsed == 12.34 and r.returncode == 0
    # failures and errors only, each on one line, a missing message replaced by the status
    assert r.failures == ["test.leadscore.unique_y: Got 3 results, configured to fail if != 0",
                          "seed.leadscore.countries: error"]


def test_no_run_results_means_nothing_run(tmp_path):
    r = build.read_run_results(target=tmp_path)
    assert (r.counts, r.failures, r.invocation_id, r.elapsed) == ({}, [], None, 0.0)
    assert r.summary() == "dbt build: nothing run in 0.0 s"


def test_summary_lists_the_counts_sorted_with_the_time():
    r = build.DbtResult(0, {"test pass": 217, "model success": 9, "seed success": 3}, "x", 12.345, [])
    assert r.summary() == "dbt build: 9 model success, 3 seed success, 217 test pass in 12.3 s"


def test_the_target_folder_is_per_database(db_file, monkeypatch, tmp_path):
    assert build.target_path() == db_file.parent / ".leadscore.duckdb.dbt-target"
    monkeypatch.setenv("LEADSCORE_DB", str(tmp_path / "other" / "b.duckdb"))
    assert build.target_path() == tmp_path / "other" / ".b.duckdb.dbt-target"


# -- running dbt (a stand-in script) ----------------------------------------------------------------

def _fake_dbt(tmp_path: Path, monkeypatch, results: dict | None, code: int, say: str = "") -> Path:
    """A `dbt` that records its arguments and environment, writes `results` and exits `code`."""
    script = tmp_path / "fake-dbt"
    body = [
        "#!/bin/sh",
        f'printf "%s\\n" "$@" > "{tmp_path}/args"',
        f'printf "%s\\n%s\\n%s\\n" "$LEADSCORE_DB" "$DBT_TARGET_PATH" "$DBT_LOG_LEVEL_FILE" > "{tmp_path}/env"',
        'mkdir -p "$DBT_TARGET_PATH"',
    ]
    if results is not None:
        body.append(f"cat > \"$DBT_TARGET_PATH/run_results.json\" <<'JSON'\n{json.dumps(results)}\nJSON")
    if say:
        body.append(f"echo '{say}'")
    body.append(f"exit {code}")
    script.write_text("\n".join(body) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(build, "dbt_executable", lambda: str(script))
    return script


def test_a_successful_run_reports_this_databases_results(db_file, tmp_path, monkeypatch):
    _fake_dbt(tmp_path, monkeypatch, _results(("model.leadscore.a", "success", "OK")), 0)
    r = build.run_dbt(["build", "--quiet"], quiet=True)
    assert r.returncode == 0 and r.counts == {"model success": 1}
    assert (tmp_path / "args").read_text().split() == ["build", "--quiet"]
    assert (tmp_path / "env").read_text().split("\n")[:2] == [str(db_file), str(build.target_path())]


def test_dbts_file_log_is_at_info_unless_the_environment_says_otherwise(db_file, tmp_path, monkeypatch):
    """dbt's debug file log (every statement of ~400 nodes) costs CPU each night: info unless
    DBT_LOG_LEVEL_FILE asks for more."""
    _fake_dbt(tmp_path, monkeypatch, _results(("model.leadscore.a", "success", "OK")), 0)
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    build.run_dbt(["build"], quiet=True)
    assert (tmp_path / "env").read_text().split("\n")[2] == "info"
    monkeypatch.setenv("DBT_LOG_LEVEL_FILE", "debug")
    build.run_dbt(["build"], quiet=True)
    assert (tmp_path / "env").read_text().split("\n")[2] == "debug"


def test_a_failed_run_names_its_first_failures_in_one_line(db_file, tmp_path, monkeypatch):
    failures = [(f"test.leadscore.t{i}", "fail", f"Got {i} results") for i in range(5)]
    _fake_dbt(tmp_path, monkeypatch, _results(*failures), 1)
    with pytest.raises(LeadscoreError) as exc:
        build.run_dbt(["build"], quiet=True)
    assert str(exc.value) == ("dbt build failed (exit 1): test.leadscore.t0: Got 0 results; "
                              "test.leadscore.t1: Got 1 results; test.leadscore.t2: Got 2 results; and 2 more")


def test_a_failure_without_results_quotes_dbts_last_line_not_a_stale_file(db_file, tmp_path, monkeypatch):
    target = build.target_path()
    target.mkdir(parents=True)
    (target / "run_results.json").write_text(json.dumps(_results(("test.leadscore.old", "fail", "stale"))))
    _fake_dbt(tmp_path, monkeypatch, None, 2, say="Error: no such option --bad")
    with pytest.raises(LeadscoreError, match=r"dbt build --bad failed \(exit 2\): Error: no such option --bad$"):
        build.run_dbt(["build", "--bad"], quiet=True)
    assert not (target / "run_results.json").exists()


def test_a_database_file_that_is_not_duckdb_fails_before_dbt_runs(db_file, tmp_path, monkeypatch):
    db_file.write_text("not a database " * 10)
    _fake_dbt(tmp_path, monkeypatch, None, 0)
    with pytest.raises(LeadscoreError, match="cannot open database"):
        build.run_dbt(["build"], quiet=True)
    assert not (tmp_path / "args").exists()  # dbt never started


LOCK_LINE = ('IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held in '
             '/usr/bin/python3 (PID 4242).')


def _dbt_locked_out(tmp_path: Path, monkeypatch, times: int) -> Path:
    """A `dbt` that fails as DuckDB's file lock makes it fail, before any node, the first `times`
    runs (a reader opened the database just before it), then succeeds; it counts its runs."""
    script = tmp_path / "locked-dbt"
    ok = json.dumps(_results(("model.leadscore.a", "success", "OK")))
    script.write_text("\n".join([
        "#!/bin/sh",
        f'n=$(cat "{tmp_path}/runs" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "{tmp_path}/runs"',
        'mkdir -p "$DBT_TARGET_PATH"',
        f'if [ $n -le {times} ]; then echo \'{LOCK_LINE}\'; exit 2; fi',
        f"cat > \"$DBT_TARGET_PATH/run_results.json\" <<'JSON'\n{ok}\nJSON",
        "exit 0",
    ]) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(build, "dbt_executable", lambda: str(script))
    return tmp_path / "runs"


def test_dbt_locked_out_by_a_late_reader_waits_and_runs_again(db_file, tmp_path, monkeypatch, capsys):
    """A reader that opens the database after run_dbt's own check and before dbt does made the
    build fail with DuckDB's lock error; now it is waited for and dbt runs again."""
    runs = _dbt_locked_out(tmp_path, monkeypatch, times=2)
    r = build.run_dbt(["build"], quiet=True)
    assert r.returncode == 0 and r.counts == {"model success": 1}
    assert runs.read_text().strip() == "3"
    assert capsys.readouterr().err.count("running dbt again") == 2


def test_dbt_locked_out_past_the_wait_is_busy(db_file, tmp_path, monkeypatch):
    from leadscore.errors import EXIT_BUSY, Busy

    runs = _dbt_locked_out(tmp_path, monkeypatch, times=10_000)
    monkeypatch.setenv("LEADSCORE_DB_WAIT", "0.3")
    with pytest.raises(Busy, match="held by another process whenever dbt tried to open it") as exc:
        build.run_dbt(["build"], quiet=True)
    assert exc.value.exit_code == EXIT_BUSY
    assert int(runs.read_text()) >= 1


def test_a_run_whose_nodes_ran_is_not_run_again(db_file, tmp_path, monkeypatch):
    """Once a node ran, dbt's failure is the run's result, whatever its output says."""
    from leadscore.errors import Busy

    _fake_dbt(tmp_path, monkeypatch, _results(("model.leadscore.a", "error", LOCK_LINE)), 1, say=LOCK_LINE)
    monkeypatch.setenv("LEADSCORE_DB_WAIT", "5")
    with pytest.raises(LeadscoreError, match="model.leadscore.a: IO Error: Could not set lock") as exc:
        build.run_dbt(["build"], quiet=True)
    assert not isinstance(exc.value, Busy)


# -- the real dbt --------------------------------------------------------------------------------

def test_build_reports_its_own_run(tmp_path):
    """A stale run_results.json (another database's failed test) is never reported as this run's."""
    home = tmp_path / "project"
    home.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(REPO / name, home / name)
    for name in ("models_sql", "dbt_project"):
        shutil.copytree(REPO / name, home / name)
    stale = {"metadata": {"invocation_id": "from-database-a"}, "elapsed_time": 1.0, "results": [
        {"unique_id": "test.leadscore.stale_failure_from_database_a", "status": "fail", "message": "Got 3 results"}]}
    data = tmp_path / "data"
    for target in (home / "target", data / ".leadscore.duckdb.dbt-target"):
        target.mkdir(parents=True)
        (target / "run_results.json").write_text(json.dumps(stale))
    env = dict(os.environ, LEADSCORE_DB=str(data / "leadscore.duckdb"), LEADSCORE_HOME=str(home))
    run = subprocess.run(
        [sys.executable, "-m", "leadscore.cli", "build", "--no-such-dbt-flag"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1
    assert "dbt build --no-such-dbt-flag failed" in run.stderr
    assert "stale_failure_from_database_a" not in run.stderr


def test_unit_tests_pass_with_any_feature_family_off(pipeline):
    """`leadscore build --vars '{use_x: false}'` (the quality benchmark's ablation, a user's own
    experiment) runs the unit tests too: each pins the family switches its model needs, so none
    fails because a family is off."""
    from helpers import leadscore_cli

    families = [name for name in yaml.safe_load((REPO / "dbt_project.yml").read_text())["vars"]
                if name.startswith("use_")]
    assert len(families) >= 7
    all_off = "{" + ", ".join(f"{name}: false" for name in families) + "}"
    result = leadscore_cli(pipeline / "data", "build", "--vars", all_off)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert re.search(r"\b(2\d|[3-9]\d) unit_test pass\b", result.stdout), result.stdout[-2000:]


def test_dbt_runs_under_the_profiles_memory_cap(tmp_path):
    """profiles.yml caps DuckDB's memory for every dbt command (LEADSCORE_DBT_MEMORY_LIMIT, 4 GB
    unless set): without the setting DuckDB would take 80% of the machine's RAM."""
    dbt = str(Path(sys.executable).with_name("dbt"))
    env = dict(os.environ, LEADSCORE_DB=str(tmp_path / "leadscore.duckdb"), DBT_PROFILES_DIR=str(REPO),
               LEADSCORE_DBT_MEMORY_LIMIT="1GB")
    run = subprocess.run(
        [dbt, "show", "--inline", "select current_setting('memory_limit') as memory_limit", "--no-use-colors",
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "953.6 MiB" in run.stdout  # 1 GB = 10^9 bytes, as DuckDB shows it


def _history_row(con, lead_id: str, run_id: str, days_ago: int) -> None:
    con.execute(
        "insert into ops.score_history by name select ? as lead_id, 'v1' as model_version, ? as run_id, "
        "cast(current_timestamp as timestamp) - to_days(?) as scored_at, 0.5 as conversion_probability, "
        "true as predicted_converted, 0.3 as cutoff, 1 as rank_in_run, 1 as decile_in_run",
        [lead_id, run_id, days_ago],
    )


def test_score_history_uniqueness_rechecks_the_recent_runs_and_all_when_asked(db_file):
    """ops.score_history's key test reads the runs of the last score_history_test_days days (the
    history only grows, and a run's rows never change): a duplicate in an old run is out of the
    nightly window but found with a window as long as the history, and one in a recent run fails
    the default build."""
    from leadscore import db, tables

    with db.session() as con, db.transaction(con):
        tables.ensure_schemas(con)
        _history_row(con, "L1", "old-run", 30)
        _history_row(con, "L1", "old-run", 30)  # the duplicate, a month ago
        _history_row(con, "L1", "new-run", 1)
        _history_row(con, "L2", "new-run", 1)
    select = ["test", "--select", "source:ops.score_history"]
    assert build.run_dbt(select, quiet=True).counts == {"operation success": 2, "test pass": 4}
    with pytest.raises(LeadscoreError, match="unique_combination_ops_score_history"):
        build.run_dbt([*select, "--vars", "{score_history_test_days: 100000}"], quiet=True)
    with db.session() as con, db.transaction(con):
        _history_row(con, "L2", "new-run", 1)  # yesterday's run wrote L2 twice
    with pytest.raises(LeadscoreError, match="unique_combination_ops_score_history"):
        build.run_dbt(select, quiet=True)


def test_every_built_model_lists_exactly_its_columns_in_yaml(pipeline_template):
    """`dbt docs` is the feature catalog: a column the model has but its _models.yml does not list
    shows there with no description, and one listed but gone describes nothing. Checked on every
    model the nightly run built (ephemeral or disabled ones are not in the database)."""
    import duckdb

    con = duckdb.connect(str(pipeline_template / "data" / "leadscore.duckdb"), read_only=True)
    try:
        built: dict[str, set[str]] = {}
        for table, column in con.execute(
                "select table_name, column_name from information_schema.columns where table_schema = 'main'"
        ).fetchall():
            built.setdefault(table, set()).add(column)
    finally:
        con.close()
    checked, wrong = [], {}
    for path in sorted((REPO / "models_sql").glob("*/_models.yml")):
        for model in yaml.safe_load(path.read_text())["models"]:
            if model["name"] not in built:
                continue
            listed = {c["name"] for c in model.get("columns", [])}
            checked.append(model["name"])
            if listed != built[model["name"]]:
                wrong[model["name"]] = {"not listed": sorted(built[model["name"]] - listed),
                                        "listed, not built": sorted(listed - built[model["name"]])}
    assert {"int_leads_crossed", "fct_lead_features", "scored_leads", "call_list"} <= set(checked)
    assert wrong == {}


def test_plain_dbt_on_a_database_without_the_jobs_view_says_what_to_do(pipeline):
    """call_list reads ops.known_outcomes, a view the Python job creates (tables.py): on a database
    no writing leadscore command has opened since the view existed, a plain `dbt build` stops with
    what to do instead of DuckDB's catalog error; `leadscore build` creates it and builds."""
    import duckdb

    from helpers import leadscore_cli

    db_file = pipeline / "data" / "leadscore.duckdb"
    con = duckdb.connect(str(db_file))
    con.execute("drop view ops.known_outcomes")
    con.close()
    env = dict(os.environ, LEADSCORE_DB=str(db_file), DBT_PROFILES_DIR=str(REPO))
    plain = subprocess.run([str(Path(sys.executable).parent / "dbt"), "run", "-s", "call_list", "--no-use-colors",
                            "--target-path", str(pipeline / "dbt-target")],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0
    assert "ops.known_outcomes is missing" in plain.stdout and "run `leadscore build` once" in plain.stdout
    result = leadscore_cli(pipeline / "data", "build", "-s", "call_list")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
