"""Shared fixtures: every test gets its own database path through LEADSCORE_DB, so tests never
touch data/leadscore.duckdb and can run in any order."""

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
