"""cli.py: every command is wired to its function in commands.py, writers take the run lock,
and parsing imports no step module (so `--help` and "busy" answer at once)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leadscore import cli, commands

COMMANDS = ["generate", "ingest", "build", "train", "score", "nightly", "publish", "export-submission",
            "evaluate", "bench"]
READERS = {"generate", "export-submission", "bench"}
MINIMAL_ARGS = {
    "generate": ["--out", "x"], "export-submission": ["--out", "x"], "evaluate": ["--labels", "x"],
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
