"""The serving snapshot: what analysts query while the nightly job holds the main database.

DuckDB lets one process write a database file, and while it does, other processes cannot even
open it read-only. So the nightly run publishes a separate read-only copy of what analysts need
and swaps it in with an atomic rename:

    data/serving/leadscore.duckdb        tables scored_leads, score_history, lead_features,
                                         model_registry, nightly_runs
    data/serving/scored_leads.parquet    the same current scores for pandas, Spark, Excel...

A reader that opened the old file keeps reading it (POSIX keeps the inode alive); the next
connection sees the new one. There is never a moment with no file or a half-written one.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from leadscore import config, db, faults
from leadscore.fileio import fsync_path

SERVING_DB_NAME = "leadscore.duckdb"
PARQUET_NAME = "scored_leads.parquet"

# Snapshot table -> source relation in the main database (skipped when absent).
SNAPSHOT_TABLES = {
    "scored_leads": "main.scored_leads",
    "score_history": "ops.score_history",
    "lead_features": "main.fct_lead_features",
    "model_registry": "main.model_registry",
    "nightly_runs": "ops.nightly_runs",
}


@dataclass
class PublishResult:
    path: Path
    parquet_path: Path
    tables: dict[str, int]


def serving_db_path() -> Path:
    return config.serving_dir() / SERVING_DB_NAME


def _relation_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return db.table_exists(con, schema, name)  # information_schema.tables lists views too


def publish(con: duckdb.DuckDBPyConnection) -> PublishResult:
    """Write a fresh snapshot beside the live one, then rename it into place."""
    folder = config.serving_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp_db = folder / f".{SERVING_DB_NAME}.{tag}.tmp"
    tmp_parquet = folder / f".{PARQUET_NAME}.{tag}.tmp"
    counts: dict[str, int] = {}
    alias = f"serving_{tag}"
    try:
        con.execute(f"attach {db.quote_literal(str(tmp_db))} as {alias}")
        try:
            for table, source in SNAPSHOT_TABLES.items():
                if not _relation_exists(con, source):
                    continue
                con.execute(f"create table {alias}.main.{table} as select * from {source}")
                counts[table] = int(db.scalar(con, f"select count(*) from {alias}.main.{table}"))
        finally:
            con.execute(f"detach {alias}")
        if "scored_leads" in counts:
            con.execute(
                f"copy (select * from main.scored_leads) to {db.quote_literal(str(tmp_parquet))} "
                "(format parquet)"
            )
            fsync_path(tmp_parquet)
        fsync_path(tmp_db)
        faults.pause_point("publish.before_swap")
        os.replace(tmp_db, folder / SERVING_DB_NAME)
        if tmp_parquet.exists():
            os.replace(tmp_parquet, folder / PARQUET_NAME)
    finally:
        for leftover in (tmp_db, tmp_parquet, Path(f"{tmp_db}.wal")):
            leftover.unlink(missing_ok=True)
    return PublishResult(folder / SERVING_DB_NAME, folder / PARQUET_NAME, counts)


def export_submission(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    """Competition format: `id,is_converted` (0/1) for every scored lead that came with an id."""
    if not _relation_exists(con, "main.scored_leads"):
        from leadscore.errors import LeadscoreError

        raise LeadscoreError("main.scored_leads does not exist: run `leadscore build` and `leadscore score` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con.execute(
            "copy (select id, predicted_converted::integer as is_converted from main.scored_leads "
            f"where id is not null order by id) to {db.quote_literal(str(tmp))} (header, delimiter ',')"
        )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return int(db.scalar(con, "select count(*) from main.scored_leads where id is not null"))
