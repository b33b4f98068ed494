"""The serving snapshot: what analysts query while the nightly job holds the main database.

DuckDB lets one process write a database file, and while it does, other processes cannot even
open it read-only. So the nightly run publishes a separate read-only copy of what analysts need
and swaps it in with an atomic rename:

    data/serving/leadscore.duckdb        tables scored_leads, call_list, scored_lead_deciles,
                                         score_history, lead_features, model_registry,
                                         model_events, nightly_runs, evaluations,
                                         batch_drift, batch_feature_drift
    data/serving/scored_leads.parquet    the same current scores for pandas, Spark, Excel...
    data/serving/score_history/          one Parquet file per scoring run, written once

score_history is the one table that only grows (every night appends a run), so it is not copied
into each new snapshot: each run's rows are written once, by the first publish after the run, to
an immutable file `score_history/<run_id>.<rows>.<schema>.parquet` (renamed into place when
complete), and the snapshot's `score_history` is a view over exactly the files of the runs it
publishes. The current scores (scored_leads, call_list, scored_lead_deciles, dbt views) read
ops.latest_scores, one row per lead and model, never the history, and scored_leads.parquet is
written from the snapshot's own copy rather than from the view again. A publish therefore costs
the same on the 1st night and the 1000th (bench/publish_series.py measures it), but for counting
each run's rows (history_files: a scan of the history's run_id column, about 20 ms per million
rows). The view names
the files by absolute path: the serving folder must stay where it was published (publish again
after moving it). A file whose run lost or gained rows, or whose columns the history no longer
has, is no longer named (its run is written again under a new name); files are never deleted by
a publish, so a reader of an older snapshot never loses one.

Every table and column carries its dbt description as a DuckDB comment (`COMMENT ON`), so
`select column_name, comment from duckdb_columns() where table_name = 'scored_leads'` documents
the snapshot without the repository. The descriptions come from dbt's manifest.json, the
rendered form of the YAML (`{{ doc() }}` blocks resolved), which every `dbt build` writes: the
one of this database's build (build.target_path()), else the repository's target/.

A reader that opened the old file keeps reading it (POSIX keeps the inode alive); the next
connection sees the new one. There is never a moment with no file or a half-written one.

nightly_runs in the snapshot holds each run's final status: a nightly run records its end before
it publishes, and a failed run replaces only that table (`publish_run_log`), keeping the scores
of the last good publish.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from leadscore import config, db, faults
from leadscore.errors import LeadscoreError
from leadscore.fileio import fsync_path

SERVING_DB_NAME = "leadscore.duckdb"
PARQUET_NAME = "scored_leads.parquet"
HISTORY_DIR = "score_history"  # one immutable Parquet file per scoring run
HISTORY_SOURCE = "ops.score_history"

# Snapshot table -> source relation in the main database (skipped when absent). scored_leads
# comes first: a publish with no current scores is refused (NoCurrentScores) before it has
# written anything else, the history files included.
SNAPSHOT_TABLES = {
    "scored_leads": "main.scored_leads",
    "call_list": "main.call_list",  # the open leads in rank order
    "scored_lead_deciles": "main.scored_lead_deciles",
    "score_history": "ops.score_history",
    "lead_features": "main.fct_lead_features",
    "model_registry": "ops.model_registry",  # the table behind dbt's view main.model_registry
    "model_events": "ops.model_events",  # champion / challenger history
    "nightly_runs": "ops.nightly_runs",
    # how the scores held up once outcomes were known (`leadscore evaluate`)
    "evaluations": "ops.evaluations",
    # drift and data quality of every scored batch against the training rows
    "batch_drift": "main.batch_drift",
    "batch_feature_drift": "main.batch_feature_drift",
}
MANIFEST_NAME = "manifest.json"


class NoCurrentScores(LeadscoreError):
    """`publish` refused: the current model has scored no lead (a model just trained or rolled
    back to, and not yet run by `leadscore score`), so main.scored_leads is empty. Publishing
    would replace the analysts' last good scores with none; the snapshot is kept instead.

    Its own type because the nightly run treats it apart from a failure: a run has just scored
    every unlabeled lead with the current model, so there it means the database holds no lead
    to score at all, which is a warning, not a reason to fail the night."""


@dataclass
class PublishResult:
    path: Path
    parquet_path: Path
    tables: dict[str, int]
    columns_described: int = 0  # columns given a comment from the dbt descriptions

    def summary(self) -> str:
        """One line for the terminal and the nightly log (what `leadscore publish` printed)."""
        return (f"published {self.path}: " + ", ".join(f"{t} {n} rows" for t, n in self.tables.items())
                + f"; {self.columns_described} column comments")


@dataclass(frozen=True)
class Description:
    """A relation's dbt description: the table's (first paragraph) and each column's."""
    table: str | None
    columns: dict[str, str]


def manifest_path() -> Path | None:
    """dbt's manifest.json of this database's last build, else the repository's target/ (a plain
    `dbt build`); None when neither exists."""
    from leadscore import build

    for candidate in (build.target_path() / MANIFEST_NAME, config.project_root() / "target" / MANIFEST_NAME):
        if candidate.is_file():
            return candidate
    return None


def descriptions(manifest: Path | None) -> dict[str, Description]:
    """'schema.name' -> Description for every model ('main.<name>': dbt builds into main) and
    source ('<schema>.<table>') of a dbt manifest; {} without a manifest or from one that cannot
    be read (the snapshot is then published without comments, not refused)."""
    import json

    if manifest is None:
        return {}
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, Description] = {}
    for node in [*data.get("nodes", {}).values(), *data.get("sources", {}).values()]:
        kind = node.get("resource_type")
        if kind == "model":
            key = f"main.{node.get('alias') or node.get('name')}"
        elif kind == "source":
            key = f"{node.get('schema')}.{node.get('identifier') or node.get('name')}"
        else:
            continue
        columns = {name.lower(): _one_line(col.get("description"))
                   for name, col in (node.get("columns") or {}).items() if _one_line(col.get("description"))}
        paragraph = (node.get("description") or "").strip().split("\n\n")[0]
        found[key] = Description(_one_line(paragraph) or None, columns)
    return found


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _comment(con: duckdb.DuckDBPyConnection, table: str, described: Description | None) -> int:
    """COMMENT ON the snapshot table `table` (catalog.main.name) and each of its columns that has
    a description; returns the columns commented."""
    if described is None:
        return 0
    catalog, _, name = table.split(".")
    if described.table:
        kind = "view" if db.fetch_all(
            con, "select 1 from duckdb_views() where database_name = ? and schema_name = 'main' and view_name = ?",
            [catalog, name]) else "table"
        con.execute(f"comment on {kind} {table} is {db.quote_literal(described.table)}")
    present = [r[0] for r in db.fetch_all(
        con, "select column_name from duckdb_columns() where database_name = ? and schema_name = 'main' "
        "and table_name = ?", [catalog, name])]
    n = 0
    for column in present:
        text = described.columns.get(column.lower())
        if text:
            con.execute(f"comment on column {table}.{db.quote_ident(column)} is {db.quote_literal(text)}")
            n += 1
    return n


def serving_db_path() -> Path:
    return config.serving_dir() / SERVING_DB_NAME


def _relation_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return db.table_exists(con, schema, name)  # information_schema.tables lists views too


def _clean_leftovers(folder: Path) -> list[Path]:
    """Temp files of a publish that was killed before its cleanup ran (we hold the writer lock,
    so no other publish is in flight)."""
    removed = []
    for leftover in folder.glob(".*.tmp*"):
        if leftover.name.startswith((f".{SERVING_DB_NAME}.", f".{PARQUET_NAME}.")):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    for leftover in (folder / HISTORY_DIR).glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def _file_stem(run_id: str) -> str:
    """run_id as a file name: kept as it is when it is one (leadscore's run ids always are),
    else hex-escaped, so no run_id can name a path outside the folder."""
    if run_id and all(c.isalnum() or c in "-_" for c in run_id) and run_id.isascii():
        return run_id
    return "x" + run_id.encode().hex()


def history_files(con: duckdb.DuckDBPyConnection, folder: Path) -> tuple[list[Path], int]:
    """Write the score-history file of every run that has none yet; return every run's file
    (in run_id order) and the rows they hold.

    A run's file is named by its run_id, its row count and a hash of the history's columns, so
    a file once written is right forever and each publish writes only the runs that came since
    (a run's rows are committed in one transaction and never change afterwards; should they,
    the count in the name no longer matches and the run is written again). A file is written to
    a dot-name and renamed when complete: no reader ever sees a partial one."""
    import hashlib

    columns = db.fetch_all(
        con, "select column_name, data_type from information_schema.columns "
        "where table_schema = 'ops' and table_name = 'score_history' order by ordinal_position")
    schema = hashlib.sha256(repr(columns).encode()).hexdigest()[:8]
    runs = db.fetch_all(con, f"select run_id, count(*) from {HISTORY_SOURCE} group by run_id order by run_id")
    target = folder / HISTORY_DIR
    files: list[Path] = []
    total = 0
    for run_id, rows in runs:
        path = target / f"{_file_stem(run_id)}.{int(rows)}.{schema}.parquet"
        files.append(path)
        total += int(rows)
        if path.exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            con.execute(
                f"copy (select * from {HISTORY_SOURCE} where run_id = ?) "
                f"to {db.quote_literal(str(tmp))} (format parquet)",
                [run_id],
            )
            os.chmod(tmp, 0o444)
            fsync_path(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    if files:
        fsync_path(target)
    return files, total


def _publish_history(con: duckdb.DuckDBPyConnection, folder: Path, table: str) -> int:
    """`table` (catalog.main.score_history) as a view over the runs' files; an empty table of
    the history's columns while no run exists. Returns the rows it shows."""
    files, total = history_files(con, folder)
    if not files:
        con.execute(f"create table {table} as select * from {HISTORY_SOURCE} limit 0")
        return 0
    listing = ", ".join(db.quote_literal(str(f.resolve())) for f in files)
    con.execute(f"create view {table} as select * from read_parquet([{listing}])")
    return total


def _drop_stale_wal(db_file: Path) -> None:
    """A WAL beside the snapshot can only come from someone who opened it read-write (and was
    killed before a checkpoint): DuckDB would replay it over whatever file has that name, so it
    must never outlive a publish."""
    Path(f"{db_file}.wal").unlink(missing_ok=True)


# DuckDB's cap while publishing. Its default (80% of the machine's memory) let the copies hold
# what they read: at 5M leads the publish peaked at 6.4 GiB resident (1.5 GiB at 1M), most of it
# scored_leads' rank over every lead with its reason texts. Under a 2 GiB cap its sorts spill to
# the database's temp directory: 2.5-2.8 GiB resident at 5M in 65-68 s instead of 53-62 s; at 1M
# nothing changes (1.5 GiB, 11-12 s either way). A 1 GiB cap held 1.4 GiB at 1M and 5M alike
# but cost 30% more time.
PUBLISH_MEMORY_LIMIT_BYTES = 2 * 2**30


def _memory_limit(current: str) -> str:
    """PUBLISH_MEMORY_LIMIT_BYTES, or the connection's own limit (`current`) where that is lower."""
    return db.memory_limit_at_most(current, PUBLISH_MEMORY_LIMIT_BYTES)


def publish(con: duckdb.DuckDBPyConnection, manifest: Path | None = None) -> PublishResult:
    """Write a fresh snapshot beside the live one, then rename it into place.

    The new file is checkpointed (no WAL of its own) and made read-only (0444) before the
    rename, and any WAL left beside the live name is removed, so nothing can be replayed over
    the snapshot. Tables and columns get the dbt descriptions of `manifest` (default:
    manifest_path()) as comments. DuckDB runs under PUBLISH_MEMORY_LIMIT_BYTES meanwhile; the
    connection's own limit comes back afterwards.

    Raises NoCurrentScores, the snapshot left as it was, when main.scored_leads is empty (the
    current model has scored no lead): an empty snapshot would hide the last good scores.
    """
    current = str(db.scalar(con, "select current_setting('memory_limit')"))
    with db.settings(con, memory_limit=_memory_limit(current)):
        return _publish(con, manifest)


def _no_current_scores(con: duckdb.DuckDBPyConnection, live: Path) -> NoCurrentScores:
    """The refusal of a publish whose main.scored_leads is empty, naming the current model and
    what to run."""
    from leadscore import registry

    current = registry.current_version(con)
    kept = f"the snapshot {live} is unchanged" if live.exists() else f"no snapshot written ({live})"
    if current is None:
        return NoCurrentScores(f"nothing to publish: no model is current, so there are no scores "
                               f"(run `leadscore train`, then `leadscore score`); {kept}")
    return NoCurrentScores(
        f"nothing to publish: model {current} is current and has scored no leads, so "
        f"main.scored_leads is empty; run `leadscore score` (it scores the unlabeled leads, which "
        f"come from score files) and publish again; {kept}"
    )


def _publish(con: duckdb.DuckDBPyConnection, manifest: Path | None) -> PublishResult:
    if not _relation_exists(con, "main.scored_leads"):
        raise LeadscoreError(
            "nothing to publish: main.scored_leads does not exist yet "
            "(run `leadscore build` and `leadscore score` first); the snapshot is unchanged"
        )
    folder = config.serving_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(folder)
    tag = uuid.uuid4().hex[:8]
    tmp_db = folder / f".{SERVING_DB_NAME}.{tag}.tmp"
    tmp_parquet = folder / f".{PARQUET_NAME}.{tag}.tmp"
    counts: dict[str, int] = {}
    described = descriptions(manifest if manifest is not None else manifest_path())
    commented = 0
    alias = f"serving_{tag}"
    try:
        con.execute(f"attach {db.quote_literal(str(tmp_db))} as {alias}")
        try:
            for table, source in SNAPSHOT_TABLES.items():
                if not _relation_exists(con, source):
                    continue
                if source == HISTORY_SOURCE:  # only grows: the new runs' files, a view over all
                    counts[table] = _publish_history(con, folder, f"{alias}.main.{table}")
                else:
                    con.execute(f"create table {alias}.main.{table} as select * from {source}")
                    counts[table] = int(db.scalar(con, f"select count(*) from {alias}.main.{table}"))
                if table == "scored_leads" and counts[table] == 0:
                    # checked on the copy (the view's count costs its rank over every score once
                    # more); first in SNAPSHOT_TABLES, so nothing else is written yet
                    raise _no_current_scores(con, folder / SERVING_DB_NAME)
                commented += _comment(con, f"{alias}.main.{table}", described.get(source))
            if "scored_leads" in counts:
                # from the snapshot's copy: the same rows, without evaluating the view once more
                con.execute(
                    f"copy (select * from {alias}.main.scored_leads) to {db.quote_literal(str(tmp_parquet))} "
                    "(format parquet)"
                )
                fsync_path(tmp_parquet)
        finally:
            con.execute(f"detach {alias}")
        Path(f"{tmp_db}.wal").unlink(missing_ok=True)  # detach checkpointed: nothing left in it
        if tmp_parquet.exists():
            os.chmod(tmp_parquet, 0o444)
        _swap_in(tmp_db, folder / SERVING_DB_NAME)
        if tmp_parquet.exists():
            os.replace(tmp_parquet, folder / PARQUET_NAME)
    finally:
        for leftover in (tmp_db, tmp_parquet, Path(f"{tmp_db}.wal")):
            leftover.unlink(missing_ok=True)
    return PublishResult(folder / SERVING_DB_NAME, folder / PARQUET_NAME, counts, commented)


def _swap_in(tmp_db: Path, live: Path) -> None:
    """Make the finished temp snapshot read-only and durable, then rename it over the live one."""
    os.chmod(tmp_db, 0o444)
    fsync_path(tmp_db)
    faults.pause_point("publish.before_swap")
    _drop_stale_wal(live)
    os.replace(tmp_db, live)
    _drop_stale_wal(live)  # a read-write open of the old file during the swap


def publish_run_log(con: duckdb.DuckDBPyConnection) -> PublishResult | None:
    """Replace only the snapshot's nightly_runs with ops.nightly_runs; None when there is no snapshot.

    For a nightly run that failed: its scores may be half done (scored, not yet checked by a
    publish), so the snapshot keeps every other table of the last good publish and only learns
    how the runs went. Same swap as `publish`: a copy of the live file is changed, then renamed
    into place, so readers never see a half-written file."""
    folder = config.serving_dir()
    live = folder / SERVING_DB_NAME
    if not live.exists() or not _relation_exists(con, "ops.nightly_runs"):
        return None
    _clean_leftovers(folder)
    _drop_stale_wal(live)
    tag = uuid.uuid4().hex[:8]
    tmp_db = folder / f".{SERVING_DB_NAME}.{tag}.tmp"
    alias = f"serving_{tag}"
    try:
        shutil.copyfile(live, tmp_db)
        os.chmod(tmp_db, 0o644)
        con.execute(f"attach {db.quote_literal(str(tmp_db))} as {alias}")
        try:
            con.execute(f"create or replace table {alias}.main.nightly_runs as select * from ops.nightly_runs")
            n = int(db.scalar(con, f"select count(*) from {alias}.main.nightly_runs"))
            commented = _comment(con, f"{alias}.main.nightly_runs", descriptions(manifest_path()).get("ops.nightly_runs"))
        finally:
            con.execute(f"detach {alias}")
        Path(f"{tmp_db}.wal").unlink(missing_ok=True)
        _swap_in(tmp_db, live)
    finally:
        for leftover in (tmp_db, Path(f"{tmp_db}.wal")):
            leftover.unlink(missing_ok=True)
    return PublishResult(live, folder / PARQUET_NAME, {"nightly_runs": n}, commented)


def unexported_ids(con: duckdb.DuckDBPyConnection) -> int:
    """Unlabeled leads with an id that main.scored_leads lacks: ingested since the last build, or
    not yet scored by the current model. export-submission warns of them: a competition file
    without them is incomplete."""
    if not db.table_exists(con, "raw", "leads"):
        return 0
    return int(db.scalar(
        con,
        "select count(*) from raw.leads as l where l.id is not null and l.is_converted is null "
        "and not exists (select 1 from main.scored_leads as s where s.id = l.id)",
    ))


def export_submission(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    """Competition format: `id,is_converted` (0/1) for every scored lead that came with an id."""
    if not _relation_exists(con, "main.scored_leads"):
        raise LeadscoreError("main.scored_leads does not exist: run `leadscore build` and `leadscore score` first")
    # Each id once: ingestion loads an id once, and should an older database hold an id twice,
    # the lead scored most recently speaks for it.
    rows = (
        "select id, predicted_converted::integer as is_converted from main.scored_leads "
        "where id is not null qualify row_number() over (partition by id order by scored_at desc, lead_id) = 1"
    )
    n = int(db.scalar(con, f"select count(*) from ({rows})"))
    if n == 0:
        raise LeadscoreError(
            f"nothing to export: no scored lead has an id (ids come from score files such as "
            f"submission.csv; run `leadscore score` after loading one); {out} not written"
        )
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            raise IsADirectoryError(21, "is a folder, give a file path", str(out))
        tmp.touch()  # the folder takes a file: an OSError naming the path, not a DuckDB IO error
        con.execute(f"copy ({rows} order by id) to {db.quote_literal(str(tmp))} (header, delimiter ',')")
        os.replace(tmp, out)
    except (OSError, duckdb.IOException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise LeadscoreError(f"cannot write {out}: {reason}") from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return n
