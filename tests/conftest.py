"""Shared fixtures: every test gets its own database path through LEADSCORE_DB, so tests never
touch data/leadscore.duckdb and can run in any order. Plain helper functions shared by several
test modules are in helpers.py."""

from __future__ import annotations

import csv
import fcntl
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# `make test` runs two pytest workers on two cores, each training and predicting with OpenMP
# threads: spinning threads would wait for peers the other worker has descheduled. Set before
# any test imports LightGBM or XGBoost (the OpenMP runtime reads it once, when it loads); a value
# in the environment wins. Training itself leaves OpenMP's default alone (estimators.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


def _built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """The folder `name` in the run's shared temp folder, made by build(folder) once per test
    run: the first worker to ask builds it under a lock, any other waits for it and reuses it."""
    shared = _run_root(tmp_path_factory)
    root = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, on failure too
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a failed attempt left
            build(root)
            (root / ".built").touch()
    return root


@pytest.fixture(scope="session")
def pipeline_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small pipeline built through the CLI: generate 3,000 training and 400 score rows
    (seed 5) into incoming/ (and the score rows' true labels into truth.csv, beside it), then
    one nightly run (ingest, dbt build, train, score, publish) with its database, models and
    serving snapshot in data/.

    Built once per test run, not once per worker or module (_built_once). Never change it:
    copy it first (helpers.copy_pipeline, or the pipeline fixture)."""
    from helpers import leadscore_cli as leadscore

    def build(root: Path) -> None:
        data = root / "data"
        data.mkdir(parents=True)
        gen = leadscore(data, "generate", "--out", str(root / "incoming"), "--train-rows", "3000",
                        "--score-rows", "400", "--seed", "5", "--truth", str(root / "truth.csv"))
        assert gen.returncode == 0, gen.stderr
        run = leadscore(data, "nightly", "--input", str(root / "incoming"), "--time-budget", "15")
        assert run.returncode == 0, run.stdout + run.stderr

    return _built_once(tmp_path_factory, "pipeline_template", build)


@pytest.fixture()
def pipeline(pipeline_template: Path, tmp_path: Path) -> Path:
    """A private copy of the built pipeline (pipeline_template): tmp_path/data (database,
    models, serving) and incoming/."""
    from helpers import copy_pipeline

    return copy_pipeline(pipeline_template, tmp_path)


SECOND_NIGHT_FILE, SECOND_NIGHT_ROWS = "submission_day2.csv", 150


@pytest.fixture(scope="session")
def second_night(pipeline_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The next night on a copy of pipeline_template, built once per test run like it: the next
    day's score file (SECOND_NIGHT_ROWS other leads, generated with seed 32, ids moved out of
    the first file's range) arrives in incoming/ as SECOND_NIGHT_FILE, and a second nightly run
    scores only its leads, with the same model. Read it, never change it (test_scored_leads,
    test_nightly)."""
    from helpers import copy_pipeline
    from helpers import leadscore_cli as leadscore

    def build(root: Path) -> None:
        copy_pipeline(pipeline_template, root)
        data, incoming = root / "data", root / "incoming"
        gen = leadscore(data, "generate", "--out", str(root / "day2"), "--train-rows", "10",
                        "--score-rows", str(SECOND_NIGHT_ROWS), "--seed", "32")
        assert gen.returncode == 0, gen.stderr
        with open(root / "day2" / "submission.csv", newline="") as src, \
                open(incoming / SECOND_NIGHT_FILE, "w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for row in reader:
                writer.writerow([str(int(row[0]) + 10_000_000), *row[1:]])
        second = leadscore(data, "nightly", "--input", str(incoming))
        assert second.returncode == 0, second.stdout + second.stderr

    return _built_once(tmp_path_factory, "second_night", build)
