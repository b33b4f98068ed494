"""Shared fixtures: every test gets its own database path through LEADSCORE_DB, so tests never
touch data/leadscore.duckdb and can run in any order. Plain helper functions shared by several
test modules are in helpers.py."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leadscore.duckdb"
    monkeypatch.setenv("LEADSCORE_DB", str(path))
    monkeypatch.setenv("LEADSCORE_HOME", str(REPO_ROOT))
    return path


@pytest.fixture()
def seeded(db_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A database that already holds one good load, so 'unchanged' means something."""
    from helpers import run, train_rows, write_csv

    t = write_csv(tmp_path / "good.csv", train_rows(3))
    assert run(capsys, "ingest", "--train", str(t))[0] == 0
    return db_file


def _run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all workers of this test run share: under pytest-xdist each worker's base temp
    folder (popen-gwN) sits in the run's own; without xdist it is the base temp folder itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small pipeline built through the CLI: generate 3,000 training and 400 score rows
    (seed 5) into incoming/ (and the score rows' true labels into truth.csv, beside it), then
    one nightly run (ingest, dbt build, train, score, publish) with its database, models and
    serving snapshot in data/.

    Built once per test run, not once per worker or module: the first worker to ask builds it
    under a lock in the run's shared temp folder, any other waits for it and reuses it. Never
    change it: copy it first (helpers.copy_pipeline)."""
    from helpers import leadscore_cli as leadscore

    shared = _run_root(tmp_path_factory)
    root = shared / "pipeline_template"
    with open(shared / "pipeline_template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, on failure too
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
            data = root / "data"
            data.mkdir(parents=True)
            gen = leadscore(data, "generate", "--out", str(root / "incoming"), "--train-rows", "3000",
                            "--score-rows", "400", "--seed", "5", "--truth", str(root / "truth.csv"))
            assert gen.returncode == 0, gen.stderr
            run = leadscore(data, "nightly", "--input", str(root / "incoming"), "--time-budget", "15")
            assert run.returncode == 0, run.stdout + run.stderr
            (root / ".built").touch()
    return root

