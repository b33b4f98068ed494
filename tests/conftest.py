"""Shared fixtures: every test gets its own database path through LEADSCORE_DB, so tests never
touch data/leadscore.duckdb and can run in any order. Plain helper functions shared by several
test modules are in helpers.py."""

from __future__ import annotations

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
