"""cli.py: every command is wired to its function in commands.py, writers take the run lock,
and parsing imports no step module (so `--help` and "busy" answer at once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from leadscore import cli, commands
from leadscore.errors import EXIT_BUSY, EXIT_FAILED, EXIT_USAGE, Busy, LeadscoreError

REPO = Path(__file__).resolve().parents[1]

COMMANDS = ["generate", "ingest", "build", "train", "score", "nightly", "publish", "export-submission",
            "evaluate", "bench", "models"]
READERS = {"generate", "export-submission", "bench", "models"}  # `models list`; promote/rollback write
MINIMAL_ARGS = {
    "generate": ["--out", "x"], "export-submission": ["--out", "x"], "evaluate": ["--labels", "x"],
    "models": ["list"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_has_its_function_and_lock_flag(name):
    args = cli.build_parser().parse_args([name, *MINIMAL_ARGS.get(name, [])])
    assert args.func is getattr(commands, f"cmd_{name.replace('-', '_')}")
    assert args.writes is (name not in READERS)


def test_every_command_function_is_reachable():
    parser = cli.build_parser()
    wired = {parser.parse_args([n, *MINIMAL_ARGS.get(n, [])]).func for n in COMMANDS}
    defined = {getattr(commands, n) for n in dir(commands) if n.startswith("cmd_")}
    assert wired == defined


def test_a_writing_command_runs_under_the_lock(monkeypatch, db_file):
    from leadscore import runlock

    seen = {}

    def fake(args):
        seen["held"] = runlock.held()
        return 0

    monkeypatch.setattr(commands, "cmd_publish", fake)
    assert cli.main(["publish"]) == 0
    assert seen["held"] is True


def test_parsing_imports_no_step_module():
    code = (
        "import sys; from leadscore import cli; cli.build_parser().parse_args(['train']); "
        "heavy = [m for m in ('pandas', 'lightgbm', 'sklearn', 'leadscore.train', 'leadscore.ingest') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unexpected_error_is_one_line_without_traceback(db_file, monkeypatch, capsys):
    def boom(args):
        raise OverflowError("value too large to convert to float32")

    monkeypatch.setattr(commands, "cmd_publish", boom)
    code = cli.main(["publish"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unexpected OverflowError: value too large" in err and "leadscore-errors.log" in err
    assert "Traceback" in (db_file.parent / "leadscore-errors.log").read_text()


def test_exit_codes_are_in_help_and_readme():
    out = subprocess.run([sys.executable, "-m", "leadscore.cli", "--help"], capture_output=True, text=True).stdout
    flat = " ".join(out.split())
    for fragment in ("0 done", "1 failed", "3 done, with input files refused", "75 busy", "130 interrupted"):
        assert fragment in flat
    readme = (REPO / "README.md").read_text()
    assert "## Exit codes" in readme and all(f"| {code} |" in readme for code in (0, 1, 2, 3, 75, 130))


def _commands(parser) -> dict[str, object]:
    """Every command and `models` action by its name ('models promote'), with its parser."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{parser.prog.removeprefix('leadscore').strip()} {name}".strip()
                found[full] = sub
                found.update(_commands(sub))
    return found


def test_every_commands_help_explains_it_and_lists_the_exit_codes():
    """The contract: every command's --help explains it (a description, not only its usage line)
    and, like `leadscore --help`, says what its exit codes mean."""
    found = _commands(cli.build_parser())
    assert {"ingest", "nightly", "publish", "export-submission", "bench", "models", "models promote",
            "models rollback"} <= set(found)
    for name, sub in found.items():
        text = " ".join(sub.format_help().split())
        assert sub.description and len(sub.description) > 30, name
        assert "130 interrupted" in text and "75 busy" in text, name


@pytest.mark.parametrize("error, code", [(LeadscoreError, EXIT_FAILED), (Busy, EXIT_BUSY)])
def test_an_expected_error_is_its_own_one_line_message_and_exit_code(db_file, monkeypatch, capsys, error, code):
    def fail(args):
        raise error("first line\n  second line")

    monkeypatch.setattr(commands, "cmd_score", fail)
    assert cli.main(["score"]) == code
    assert capsys.readouterr().err == "leadscore score: error: first line second line\n"
    assert not (db_file.parent / "leadscore-errors.log").exists()  # not a bug: no traceback kept


def test_a_bad_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["score", "--no-such-flag"])
    assert exc.value.code == EXIT_USAGE
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["ingest"], "leadscore ingest: error: nothing to load: give --train PATH, --score PATH or FILE"),
    (["ingest", "--strict"], "nothing to load"),
    (["train", "--time-budget", "-5"], "argument --time-budget: expected more than 0 seconds, got '-5'"),
    (["train", "--time-budget", "nan"], "argument --time-budget: expected more than 0 seconds, got 'nan'"),
    (["nightly", "--time-budget", "0"], "argument --time-budget: expected more than 0 seconds, got '0'"),
    (["train", "--folds", "1"], "argument --folds: expected at least 2 folds (a whole number), got '1'"),
    (["nightly", "--folds", "two"], "argument --folds: expected at least 2 folds (a whole number), got 'two'"),
    (["train", "--trials", "0"], "argument --trials: expected a whole number of at least 1, got '0'"),
    (["bench", "--sizes", "10"], "argument --sizes: expected at least 1,000 leads (a whole number), got '10'"),
    (["bench", "--sizes", "64570,x"], "argument --sizes: expected at least 1,000 leads (a whole number), got 'x'"),
    (["bench", "--sizes", ","], "argument --sizes: expected lead counts such as 64570,1000000, got ','"),
    (["build", "--vars", "{bad"], "leadscore build: error: argument --vars: expected a YAML mapping"),
    (["build", "--select", "stg_leads", "--vars=[1, 2]"], "argument --vars: expected a YAML mapping"),
    (["build", "--select", "stg_leads", "--vars"], "argument --vars: expected a YAML mapping after --vars, got nothing"),
    (["nightly", "--vars", "{bad"], "leadscore nightly: error: argument --vars: expected a YAML mapping"),
    (["build", "--vars", "{rare_min_cnt: 30}"], "argument --vars: unknown var 'rare_min_cnt' (did you mean 'rare_min_count'?)"),
    (["nightly", "--vars", "{rare_min_count: abc}"],
     "argument --vars: rare_min_count must be a whole number like its default 10, got 'abc'"),
    (["build", "--vars={use_feature_crosses: 1, target_rate_tier_low: yes}"],
     "use_feature_crosses must be true or false like its default True, got 1; "
     "target_rate_tier_low must be a number like its default 0.8, got True"),
    (["build", "--vars", "{target_rate_columns: customer_idx, no_such_var_at_all: 1}"],
     "target_rate_columns must be a list like its default ['customer_idx', 'lead_owner', 'product_modelname', "
     "'product_category', 'country', 'response_corporate', ...], got 'customer_idx'; "
     "unknown var 'no_such_var_at_all' (dbt_project.yml declares no such var)"),
    (["nightly", "--input", "/no/such/folder"], "argument --input: '/no/such/folder' is not a folder (it does not exist)"),
    (["nightly", "--input", __file__], "is not a folder (it is a file)"),
    (["generate", "--out", "x", "--score-prevalence", "1.5"], "--score-prevalence: expected a rate in (0, 1), got '1.5'"),
    (["train", "--target-prevalence", "2"], "--target-prevalence: expected a rate in (0, 1) or 'auto', got '2'"),
])
def test_a_command_line_the_command_cannot_use_exits_2_before_anything_runs(argv, fragment, db_file, monkeypatch,
                                                                           capsys):
    """README "Exit codes": 2 is a bad command line (fix the crontab), 1 a failed run (alert):
    each of these is refused by the parser, with the command's usage, before the lock is taken."""
    def ran(args):
        raise AssertionError("the command ran")

    for name in ("cmd_ingest", "cmd_train", "cmd_bench", "cmd_build", "cmd_nightly"):
        monkeypatch.setattr(commands, name, ran)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"usage: leadscore {argv[0]} ") and fragment in err
    assert not db_file.exists() and not (db_file.parent / ".leadscore.lock").exists()


@pytest.mark.parametrize("argv, option, value", [
    (["train", "--time-budget", "0.5", "--folds", "2", "--trials", "1"], "time_budget", 0.5),
    (["nightly", "--folds", "2"], "folds", 2),
    (["bench", "--sizes", "1000, 64570"], "sizes", [1000, 64570]),
    (["build", "--vars", "{drift_psi_warn: 0.4}", "--select", "x"], "dbt_args",
     ["--vars", "{drift_psi_warn: 0.4}", "--select", "x"]),
    # a whole number where the default is a number, a list of the var's kind: dbt's own values
    (["nightly", "--vars", "{drift_psi_warn: 1, feature_crosses: [[business_unit, lead_owner]]}"], "dbt_vars",
     "{drift_psi_warn: 1, feature_crosses: [[business_unit, lead_owner]]}"),
])
def test_the_smallest_values_a_command_can_use_are_accepted(argv, option, value, db_file, monkeypatch):
    seen = {}

    def record(args):
        seen["value"] = getattr(args, option)
        return 0

    monkeypatch.setattr(commands, {"train": "cmd_train", "nightly": "cmd_nightly", "bench": "cmd_bench",
                                   "build": "cmd_build"}[argv[0]], record)
    assert cli.main(argv) == 0
    assert seen["value"] == value


def test_score_on_spark_without_pyspark_asks_for_the_spark_extra(db_file, monkeypatch, capsys):
    """pyspark is the optional `spark` extra (pyproject.toml): its absence is the user's to fix,
    not an "unexpected ModuleNotFoundError (a bug)". Simulated: None in sys.modules stops an import."""
    duckdb.connect(str(db_file)).close()  # score opens a database that exists
    for module in [m for m in sys.modules if m.startswith("pyspark.")]:  # imported by an earlier test
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    assert cli.main(["score", "--engine", "spark"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected" not in err
    assert err.startswith("leadscore score: error: Spark is not installed: install the spark extra, "
                          "pip install -e '.[spark]'")
    assert "(import error: No module named 'pyspark" in err
    assert not (db_file.parent / "leadscore-errors.log").exists()  # not a bug: no traceback kept


def test_build_passes_unknown_flags_on_to_dbt(db_file, monkeypatch):
    seen = {}

    def fake(args):
        seen["dbt_args"] = args.dbt_args
        return 0

    monkeypatch.setattr(commands, "cmd_build", fake)
    assert cli.main(["build", "--select", "stg_leads", "--full-refresh"]) == 0
    assert seen["dbt_args"] == ["--select", "stg_leads", "--full-refresh"]


def test_score_no_reasons_reaches_the_scoring_call(monkeypatch, db_file):
    """`score --no-reasons` asks score_leads for probabilities only; plain `score` for reasons too."""
    from leadscore import score

    calls = []

    def fake(con, model_version=None, **kwargs):
        calls.append(kwargs["with_reasons"])
        return score.ScoreResult("s1", "v1", 0, 0, 0.5, 0.0)

    monkeypatch.setattr(score, "score_leads", fake)
    duckdb.connect(str(db_file)).close()  # score opens a database that exists
    assert cli.main(["score", "--no-reasons"]) == 0
    assert cli.main(["score"]) == 0
    assert calls == [False, True]


@pytest.mark.parametrize("argv", [
    ["train"], ["score"], ["publish"], ["export-submission", "--out", "x.csv"], ["evaluate", "--labels", "x.csv"],
    ["models", "promote", "v1"], ["models", "rollback"], ["models", "show"],
])
def test_a_command_that_needs_loaded_data_leaves_no_database_behind(db_file, capsys, argv):
    """Before, the writers among these created an empty database file, then failed on it: the
    next command then found a database, and said something less useful than this."""
    assert cli.main(argv) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"database {db_file} does not exist yet: run `leadscore ingest` first" in err
    assert not db_file.exists()
