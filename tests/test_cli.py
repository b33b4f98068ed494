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
    for fragment in ("0 done", "1 failed", "3 done, with input files refused", "75 busy"):
        assert fragment in flat
    readme = (REPO / "README.md").read_text()
    assert "## Exit codes" in readme and "| 3 |" in readme and "| 75 |" in readme


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
