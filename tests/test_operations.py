"""Operating leadscore (issue 13, operations): --version, and one-line errors (no traceback) for
bad sizes and output paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "at least 1,000" in _one_error_line(run, "bench")


def test_generate_into_a_folder_that_cannot_be_made(tmp_path):
    run = leadscore(tmp_path, "generate", "--out", "/proc/x", "--train-rows", "20", "--score-rows", "5")
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "cannot write /proc/x" in _one_error_line(run, "generate")
