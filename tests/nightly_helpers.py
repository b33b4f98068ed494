"""Helpers shared by the nightly test modules (test_nightly, test_nightly_crash,
test_nightly_bad_night): the CLI in a subprocess with extra environment variables, queries, and
the state a crash must not change. Their pipeline fixtures are conftest's."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(LEADSCORE_DB=str(data_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO), **extra)
    return env


def leadscore(data_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "leadscore.cli", *args],
        env=env_for(data_dir, **extra_env), cwd=REPO, capture_output=True, text=True, timeout=600,
    )


def query(db_file: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def main_db(root: Path) -> Path:
    return root / "data" / "leadscore.duckdb"


def serving_db(root: Path) -> Path:
    return root / "data" / "serving" / "leadscore.duckdb"


def state(root: Path) -> dict:
    """What a crash must not change: scores, registry, raw leads, and the serving snapshot."""
    return {
        "history": query(main_db(root), "select * from ops.score_history order by all"),
        "registry": query(main_db(root), "select model_version, is_current from main.model_registry order by 1"),
        "leads": query(main_db(root), "select count(*) from raw.leads"),
        "serving": query(serving_db(root), "select * from scored_leads order by lead_id"),
    }


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, header: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
