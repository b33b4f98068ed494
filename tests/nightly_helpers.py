"""Helpers shared by the nightly test modules (test_nightly, test_nightly_crash,
test_nightly_bad_night): the CLI in a subprocess with extra environment variables, queries, and
the state a crash must not change. Their pipeline fixtures are conftest's."""

from __future__ import annotations

import csv
from pathlib import Path

from helpers import cli_env, leadscore_cli, rows_of

REPO = Path(__file__).resolve().parents[1]


env_for = cli_env  # `env_for(data_dir, **extra_env)`
leadscore = leadscore_cli  # `leadscore(data_dir, *args, **extra_env)`
query = rows_of


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
