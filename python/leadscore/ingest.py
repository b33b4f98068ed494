"""Load competition-format CSV files into the raw tables: the loading transaction.

One command's files go through three steps, each in its own module:
- leadscore.csv_input reads a file up to a table of text cells, refusing it (FileRefused) on a
  file-level problem (missing, empty, header only, a required column missing, a duplicated or
  wrongly cased column name, not UTF-8, malformed CSV), and decides its role (train or score);
- leadscore.rejections writes to `raw.rejected_rows` the rows that break a column rule
  (leadscore.column_rules), repeat an id, or are a lead already loaded;
- this module casts the other rows into `raw.leads`, records the file in `raw.loads`, and keeps
  labels found in a score file in `raw.set_aside_labels`.

Policy of this module:
- A refused file: `leadscore ingest` fails and writes nothing; the nightly job
  (`quarantine=True`) records the file in `raw.loads` with status 'refused' and the reason,
  loads the other files, and does not retry the file until its content changes. A file whose
  load meets an unexpected error (a bug, not the file's fault) does not stop the nightly job
  either: it is reported as refused, its traceback logged, but not recorded, so it is tried
  again on the next run and loads once the bug is fixed.
- Rejected rows do not stop the load, and the command warns; `--strict` turns any rejected row
  into a refused file.
- In a score file every row is scored; labels found there are set aside in
  `raw.set_aside_labels`, never trained on. In a training file labeled rows train and
  unlabeled rows are scored.
- The final round's columns (input_format.FINAL_COLUMNS) load typed into their raw.leads columns
  when a file has them, as null when it does not. Any other extra column is kept in
  `raw.leads.extra_columns` as JSON under its own name (`json_extract_string(extra_columns,
  '$.name')` reads it back) and profiled in the load's result: filled share, distinct values.
  A column with a blank header cell is kept the same way under `unnamed_<position>`
  (csv_input.column_names), with a note.
- `ingest` loads all its files in one transaction (a failure leaves the database as it was); the
  nightly job loads each file in its own. A file whose sha256 is already loaded is skipped.
- Before loading, rows an earlier version let in that break a rule of today are moved out of
  raw.leads (`quarantine_loaded_rows`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from leadscore import db, tables
from leadscore.column_rules import cast_expr, cell, int_expr, label_expr
from leadscore.csv_input import (
    Cells,
    FileRefused,
    LeadFile,
    check_file,
    open_lead_file,
    read_cells,
    release_cells,
    unnamed_column_name,
)
from leadscore.csv_input import discover_inputs as discover_inputs  # nightly: ingest.discover_inputs
from leadscore.errors import LeadscoreError, save_traceback
from leadscore.fileio import sha256_file
from leadscore.input_format import ALL_LEAD_COLUMNS, FINAL_COLUMNS, ID_COLUMN, LABEL_COLUMN
from leadscore.rejections import (
    quarantine_loaded_rows,
    reject_known_ids,
    reject_known_rows,
    reject_repeated_ids,
    reject_rule_breaks,
    relabelled_rows,
)


@dataclass
class LoadResult:
    """What happened to one file; the CLI prints one line per result."""

    path: Path
    status: str  # "loaded", "skipped" (same content loaded before) or "refused" (quarantined)
    load_id: int | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    train_rows: int = 0
    score_rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    message: str = ""
    role: str = ""
    role_reason: str = ""
    labels_set_aside: int = 0
    final_columns: list[str] = field(default_factory=list)  # the final-round columns the file had
    # per extra column, over the file's data rows: (name, share of non-empty cells, distinct values)
    extra_profile: list[tuple[str, float, int]] = field(default_factory=list)

    def profile_notes(self) -> list[str]:
        """One note per extra column: "extra column 'x': 92% filled, 14 distinct"."""
        return _profile_notes(self.extra_profile)

    def _final_text(self) -> str:
        if len(self.final_columns) == len(FINAL_COLUMNS):
            return f"all {len(FINAL_COLUMNS)}"
        return ", ".join(self.final_columns)

    def summary(self) -> str:
        """One line for this file, the same in `leadscore ingest` and the nightly log."""
        if self.status == "skipped":
            return f"{self.path}: skipped, {self.message}"
        if self.status == "refused":
            return f"{self.path}: refused: {self.message}"
        return (
            f"{self.path}: loaded {self.rows_loaded} rows as a {self.role} file"
            + (f" ({self.role_reason})" if self.role_reason else "")
            + f", load {self.load_id} ({self.train_rows} labeled, {self.score_rows} to score"
            + (f", {self.rows_rejected} rejected)" if self.rows_rejected else ")")
            + (f"; final-round columns: {self._final_text()}" if self.final_columns else "")
            + "".join(f"; {note}" for note in self.profile_notes())
        )


def _profile_notes(profile: list[tuple[str, float, int]]) -> list[str]:
    return [f"extra column '{name}': {_percent(share)} filled, {distinct} distinct" for name, share, distinct in profile]


def _percent(share: float) -> str:
    """A share as a whole percentage that never rounds a partly filled column to 0% or 100%."""
    pct = round(100 * share)
    if 0 < share < 1:
        pct = min(max(pct, 1), 99)
    return f"{pct}%"


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    files: list[tuple[Path, str]],
    strict: bool = False,
    quarantine: bool = False,
) -> list[LoadResult]:
    """Load each (path, declared_kind); declared_kind is train, score or auto (role from the file).

    quarantine=False: one transaction for all files; any refused file fails the whole call.
    quarantine=True: one transaction per file; a refused file is recorded in raw.loads with
    status 'refused' and its reason, and the call goes on with the next file.
    """
    with db.settings(con, memory_limit=_memory_limit(con)):
        return _ingest_files(con, files, strict, quarantine)


# DuckDB's own cap for a load. Its default (80% of the machine's memory) let a big file's text
# cells and the rows being written sit in memory: 5.2 GiB resident at 5M leads. Under the cap the
# temp tables spill to the database's temp directory (DuckDB's default: beside the database file)
# and are read back from there. The process stays some hundred MB above it (Python, the CSV
# reader's buffers).
_INGEST_MEMORY_LIMIT_BYTES = 2 * 2**30


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    """The ingest cap, or the connection's own limit where that is lower already."""
    current = str(db.scalar(con, "select current_setting('memory_limit')"))
    return db.memory_limit_at_most(current, _INGEST_MEMORY_LIMIT_BYTES)


def _ingest_files(
    con: duckdb.DuckDBPyConnection, files: list[tuple[Path, str]], strict: bool, quarantine: bool
) -> list[LoadResult]:
    results: list[LoadResult] = []
    if not quarantine:
        for path, _ in files:
            check_file(path)
        hashes = [sha256_file(path) for path, _ in files]
        with db.transaction(con):
            tables.ensure_schemas(con)
            quarantine_loaded_rows(con)
            seen: dict[str, Path] = {}
            for (path, kind), sha in zip(files, hashes):
                results.append(_load_or_skip(con, path, kind, sha, strict, seen, retry_refused=True))
        return results

    with db.transaction(con):
        tables.ensure_schemas(con)
        quarantine_loaded_rows(con)
    seen = {}
    for path, kind in files:
        try:
            sha = sha256_file(path)
        except OSError as exc:
            results.append(LoadResult(path, "refused", message=f"{path}: cannot be read: {exc.strerror or exc}"))
            continue  # nothing to key a record on (unreadable); reported every run
        try:
            with db.transaction(con):
                results.append(_load_or_skip(con, path, kind, sha, strict, seen, retry_refused=False))
        except LeadscoreError as exc:
            reason = _one_line(exc)
            with db.transaction(con):
                load_id = _record_refusal(con, path, kind, sha, reason)
            results.append(LoadResult(path, "refused", load_id=load_id, message=reason))
        except Exception as exc:  # a bug met on this file: its transaction is rolled back
            if os.environ.get("LEADSCORE_DEBUG"):
                raise
            results.append(_unexpected_failure(path, exc))
    return results


def _unexpected_failure(path: Path, exc: Exception) -> LoadResult:
    """The nightly job's result for a file whose load raised an unexpected error (a bug): one
    file must not keep the others from loading, night after night. Reported as refused (the run
    exits 3 and names it), the traceback in leadscore-errors.log as for any bug, and not
    recorded in raw.loads: a refusal is kept until the file changes, but this file is not at
    fault, so it is tried again every run and loads once leadscore is fixed. Called inside the
    `except` block, where the traceback is."""
    where = save_traceback("nightly")
    detail = " ".join(str(exc).split())[:300]
    return LoadResult(
        path, "refused",
        message=f"unexpected {type(exc).__name__} while loading: {detail} (a bug, not your input; "
        f"traceback in {where}; not recorded in raw.loads, tried again on the next run)",
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _load_or_skip(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    kind: str,
    sha: str,
    strict: bool,
    seen: dict[str, Path],
    retry_refused: bool,
) -> LoadResult:
    previous = db.fetch_one(
        con,
        "select load_id, file_name, loaded_at, coalesce(status, 'loaded'), reason from raw.loads where sha256 = ?",
        [sha],
    )
    if sha in seen:
        return LoadResult(path, "skipped", message=f"same content as {seen[sha]} in this run; nothing to do")
    if previous is not None and previous[3] == "refused" and not retry_refused:
        return LoadResult(
            path, "refused", load_id=previous[0],
            message=f"refused on {previous[2]:%Y-%m-%d %H:%M} ({previous[4]}); not retried until the file changes",
        )
    if previous is not None and previous[3] != "refused":
        where = f"load {previous[0]} ({previous[1]}, {previous[2]:%Y-%m-%d %H:%M})"
        return LoadResult(path, "skipped", message=f"already loaded as {where}; nothing to do")
    check_file(path)
    result = _load_one(con, path, kind, sha, strict)
    seen[sha] = path
    if previous is not None:  # refused before, loaded now (given explicitly): the refusal is history
        con.execute("delete from raw.loads where load_id = ?", [previous[0]])
    return result


def _record_refusal(con: duckdb.DuckDBPyConnection, path: Path, kind: str, sha: str, reason: str) -> int:
    load_id = int(db.scalar(con, "select coalesce(max(load_id), 0) + 1 from raw.loads"))
    con.execute(
        "insert into raw.loads (load_id, file_name, file_path, sha256, declared_kind, rows_loaded, "
        "rows_rejected, train_rows, score_rows, extra_columns, loaded_at, status, reason) "
        "values (?, ?, ?, ?, ?, 0, 0, 0, 0, null, now()::timestamp, 'refused', ?)",
        [load_id, path.name, str(path.resolve()), sha, kind, reason],
    )
    return load_id


def _load_one(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, sha: str, strict: bool
) -> LoadResult:
    f = open_lead_file(path, kind)
    cells = read_cells(con, f)
    try:
        return _load_cells(con, f, cells, sha, strict)
    finally:
        release_cells(con, cells)


def _load_cells(
    con: duckdb.DuckDBPyConnection, f: LeadFile, cells: Cells, sha: str, strict: bool
) -> LoadResult:
    path = f.path
    gz, has_id, has_label, role, role_reason, extra = f.gz, f.has_id, f.has_label, f.role, f.role_reason, f.extra
    load_id = int(db.scalar(con, "select coalesce(max(load_id), 0) + 1 from raw.loads"))
    row = cells.row
    reject_rule_breaks(con, path, load_id, has_id, has_label and role == "train", cells, f.final)
    if has_id:
        reject_repeated_ids(con, path, load_id, cells)
        reject_known_ids(con, path, load_id, cells)

    # the 28 and the final round's columns, typed; a final-round column the file lacks is null
    select_cols = ",\n".join(f"    {cast_expr(c, present=c.name in f.header)}" for c in ALL_LEAD_COLUMNS)
    label_sql = label_expr() if has_label and role == "train" else "null::boolean"
    id_expr = f"{int_expr(ID_COLUMN)}" if has_id else "null::bigint"
    extra_expr = (
        "to_json({" + ", ".join(f"{db.quote_literal(e)}: {cell(e)}" for e in extra) + "})"
        if extra
        else "null::json"
    )
    typed = f"""
        select
            substr(md5({db.quote_literal(sha)} || ':' || {row}::varchar), 1, 16) as lead_id,
            {int(load_id)}::integer as load_id,
            {row} as source_row,
            {id_expr} as id,
        {select_cols},
            {label_sql} as is_converted,
            {extra_expr} as extra_columns,
            now()::timestamp as loaded_at
        from {cells.table} as s
        """
    # A view, not a table: the typed rows are read once by the insert below (and by
    # reject_known_rows for the rows without an id), never stored beside the cells. It leaves out
    # the rows rejected for this load at the time it is read.
    con.execute("drop view if exists _ingest_typed")
    con.execute(
        f"""
        create temp view _ingest_typed as
        {typed}
        anti join (select source_row from raw.rejected_rows where load_id = {int(load_id)}) as r
            on r.source_row = {row}
        """
    )
    # a row without an id (the file has no id column, or the row's cell is blank) is known by its content
    reject_known_rows(con, path, load_id, cells)
    # --strict: any row rejected for any reason (a rule, a repeated id, a lead already loaded)
    # refuses the file; only now, with every rejection of this load written
    rejected = int(
        db.scalar(con, "select count(distinct source_row) from raw.rejected_rows where load_id = ?", [load_id])
    )
    if rejected and strict:
        first = db.fetch_one(
            con,
            "select source_row, column_name, raw_value, reason from raw.rejected_rows "
            "where load_id = ? order by source_row, column_name limit 1",
            [load_id],
        )
        raise FileRefused(
            f"{path}: {rejected} row(s) rejected (--strict); first: data row {first[0]}, "
            f"column {first[1]}: {first[3]}" + (f" (value {first[2]!r})" if first[2] is not None else "")
        )
    columns = ", ".join(
        ["lead_id", "load_id", "source_row", "id", *(db.quote_ident(c.name) for c in ALL_LEAD_COLUMNS),
         "is_converted", "extra_columns", "loaded_at"]
    )
    # Rows go in in file order. With rows rejected, the anti-join may build its hash table on
    # either side, so the order is made explicit. With none rejected (the usual file) the rows
    # come straight from the scan, which keeps the order (preserve_insertion_order), and without
    # the join: DuckDB then inserts in parallel batches, where the join's plan inserted rows one
    # thread at a time (ingest of 1M leads: peak memory about 1.0 GB -> 0.73 GB).
    source = "_ingest_typed order by source_row" if rejected else f"({typed})"
    con.execute(f"insert into raw.leads ({columns}) select {columns} from {source}")
    set_aside = 0
    if has_label and role == "score":
        con.execute(
            f"""
            insert into raw.set_aside_labels
            select l.load_id, l.lead_id, l.id, l.source_row, {cell(LABEL_COLUMN)},
                {label_expr()},
                now()::timestamp
            from raw.leads as l
            inner join {cells.table} as s on l.source_row = {row}
            where l.load_id = ? and nullif(trim({cell(LABEL_COLUMN)}), '') is not null
            """,
            [load_id],
        )
        set_aside = int(db.scalar(con, "select count(*) from raw.set_aside_labels where load_id = ?", [load_id]))
    counts = db.fetch_one(
        con,
        "select count(*), count(is_converted), count(*) - count(is_converted), count(*) - count(id) "
        "from raw.leads where load_id = ?",
        [load_id],
    )
    loaded, train_rows, score_rows, without_id = (int(x) for x in counts)
    relabelled = relabelled_rows(con, load_id) if without_id else 0
    profile = _profile_extra_columns(con, cells, extra)
    con.execute(
        "insert into raw.loads (load_id, file_name, file_path, sha256, declared_kind, rows_loaded, "
        "rows_rejected, train_rows, score_rows, extra_columns, loaded_at, status, reason) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::timestamp, 'loaded', ?)",
        [load_id, path.name, str(path.resolve()), sha, role, loaded, rejected, train_rows, score_rows,
         extra, f"role {role}: {role_reason}"],
    )
    con.execute("drop view _ingest_typed")
    notes = []
    if gz and not path.name.lower().endswith(".gz"):
        notes.append("the file is gzip-compressed (named as plain CSV); read it decompressed")
    if rejected:
        first = db.fetch_one(
            con,
            "select source_row, column_name, reason from raw.rejected_rows "
            "where load_id = ? order by source_row, column_name limit 1",
            [load_id],
        )
        notes.append(
            f"{rejected} row(s) rejected, kept in raw.rejected_rows "
            f"(first: data row {first[0]}, column {first[1]}: {first[2]})"
        )
    if set_aside:
        notes.append(
            f"{set_aside} label(s) in a file loaded as a score file set aside in raw.set_aside_labels, "
            "never trained on; its rows are scored"
        )
    if extra:
        notes.append(f"extra column(s) kept in extra_columns: {', '.join(extra)}")
        notes.extend(
            f"column {n} has no name in the header (a pandas index? a trailing comma?): "
            f"kept as '{unnamed_column_name(n)}'"
            for n in f.unnamed
        )
        notes.extend(_profile_notes(profile))
    if role == "train" and score_rows:
        notes.append(f"{score_rows} row(s) without a label will be scored, not trained on")
    if relabelled:
        notes.append(
            f"{relabelled} row(s) repeat a lead of an earlier file in every column but is_converted (an "
            "outcome that changed since that export?): a lead without an id is known by its content, so "
            "they load as new leads and both versions stay in raw.leads"
        )
    return LoadResult(
        path, "loaded", load_id, loaded, rejected, train_rows, score_rows, extra, "; ".join(notes),
        role, role_reason, set_aside, [c.name for c in f.final], profile,
    )


def _profile_extra_columns(
    con: duckdb.DuckDBPyConnection, cells: Cells, extra: list[str]
) -> list[tuple[str, float, int]]:
    """(name, share of non-empty cells, distinct non-empty values, both trimmed) of each extra
    column over every data row of the file (rejected rows too: it describes what the file
    brings, also when none of its rows is new), in one scan of the cells."""
    if not extra:
        return []
    aggregates = ", ".join(
        f"count(nullif(trim({cell(e)}), '')), count(distinct nullif(trim({cell(e)}), ''))" for e in extra
    )
    got = db.fetch_one(con, f"select count(*), {aggregates} from {cells.table} as s")
    total = int(got[0]) or 1
    return [(e, int(got[1 + 2 * i]) / total, int(got[2 + 2 * i])) for i, e in enumerate(extra)]
