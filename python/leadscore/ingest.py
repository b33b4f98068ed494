"""Load competition-format CSV files into the raw tables.

Policy, in one place:
- File-level problems (missing, empty, header only, a required column missing, not UTF-8,
  malformed CSV) fail the whole command: nothing is written, the exit code is non-zero and
  the message names the file (and line or column where there is one).
- Row-level problems (an unparseable number or label, a duplicate `id`) do not stop the load:
  the row is kept in `raw.rejected_rows` with the file, row number, column, raw value and
  reason, and the command warns. `--strict` turns any rejected row into a failed load.
- All files of one command load in one transaction, so a failure leaves the database exactly
  as it was. A file whose sha256 is already in `raw.loads` is skipped and reported as such.

The CSV is parsed by DuckDB's reader as text, then validated and cast in SQL: no Python row
loops, so 1M rows load in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from leadscore import db, store
from leadscore.errors import LeadscoreError
from leadscore.fileio import sha256_file
from leadscore.schema import FALSE_LABELS, ID_COLUMN, LABEL_COLUMN, LEAD_COLUMNS, TRUE_LABELS

_CSV_OPTIONS = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"'"


@dataclass
class LoadResult:
    """What happened to one file; the CLI prints one line per result."""

    path: Path
    status: str  # "loaded" or "skipped"
    load_id: int | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    train_rows: int = 0
    score_rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    message: str = ""


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    files: list[tuple[Path, str]],
    strict: bool = False,
) -> list[LoadResult]:
    """Load each (path, declared_kind) in one transaction; declared_kind is train, score or auto.

    The declared kind only adds checks (a train file must have labels); whether a row trains or
    is scored is decided by the row itself: labeled rows train, unlabeled rows are scored.
    """
    for path, _ in files:
        _check_file(path)
    hashes = [sha256_file(path) for path, _ in files]
    results: list[LoadResult] = []
    with db.transaction(con):
        store.ensure_schemas(con)
        seen_in_this_call: dict[str, Path] = {}
        for (path, kind), sha in zip(files, hashes):
            previous = db.fetch_one(
                con, "select load_id, file_name, loaded_at from raw.loads where sha256 = ?", [sha]
            )
            if previous is not None or sha in seen_in_this_call:
                where = (
                    f"load {previous[0]} ({previous[1]}, {previous[2]:%Y-%m-%d %H:%M})"
                    if previous
                    else f"{seen_in_this_call[sha]} in this command"
                )
                results.append(
                    LoadResult(path, "skipped", message=f"already loaded as {where}; nothing to do")
                )
                continue
            seen_in_this_call[sha] = path
            results.append(_load_one(con, path, kind, sha, strict))
    return results


def _check_file(path: Path) -> None:
    if not path.exists():
        raise LeadscoreError(f"{path}: no such file")
    if not path.is_file():
        raise LeadscoreError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise LeadscoreError(f"{path}: file is empty (expected a header row and data rows)")


def _first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(line, byte offset) of the first invalid UTF-8 sequence, or None. Only called after
    DuckDB has refused the file, to name the exact line."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk[: exc.start].count(b"\n"), offset + exc.start
            line += chunk.count(b"\n")
            offset += len(chunk)
    return None


def _read_header(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    try:
        rows = db.fetch_all(con, f"describe select * from read_csv(?, {_CSV_OPTIONS})", [str(path)])
    except duckdb.Error as exc:
        raise _csv_error(path, exc) from exc
    return [r[0] for r in rows]


def _csv_error(path: Path, exc: duckdb.Error) -> LeadscoreError:
    text = str(exc)
    if "unicode" in text.lower() or "utf-8" in text.lower():
        where = _first_invalid_utf8(path)
        if where:
            return LeadscoreError(
                f"{path}: not valid UTF-8 at line {where[0]} (byte {where[1]}); "
                "save the file as UTF-8 and load it again"
            )
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return LeadscoreError(f"{path}: cannot be read as CSV: {first}")


def _load_one(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, sha: str, strict: bool
) -> LoadResult:
    header = _read_header(con, path)
    missing = [c.name for c in LEAD_COLUMNS if c.name not in header]
    if missing:
        if header == ["column0"]:
            raise LeadscoreError(f"{path}: no header row found (expected the competition columns)")
        raise LeadscoreError(
            f"{path}: required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
        )
    has_id = ID_COLUMN in header
    has_label = LABEL_COLUMN in header
    if kind == "train" and not has_label:
        raise LeadscoreError(f"{path}: a training file needs an '{LABEL_COLUMN}' column")
    known = {c.name for c in LEAD_COLUMNS} | {ID_COLUMN, LABEL_COLUMN}
    extra = [h for h in header if h not in known]

    con.execute("drop table if exists _ingest_src")
    try:
        # CTAS keeps file order (preserve_insertion_order), so rowids are in file order. Inside a
        # transaction they start at a large offset, hence the subtraction of the first rowid.
        con.execute(
            f"create temp table _ingest_src as select * from read_csv(?, {_CSV_OPTIONS})", [str(path)]
        )
    except duckdb.Error as exc:
        raise _csv_error(path, exc) from exc
    total, first_rowid = db.fetch_one(con, "select count(*), min(rowid) from _ingest_src")
    if total == 0:
        raise LeadscoreError(f"{path}: header only, no data rows")

    load_id = int(db.scalar(con, "select coalesce(max(load_id), 0) + 1 from raw.loads"))
    row = f"(s.rowid - {int(first_rowid)} + 1)"
    _write_rejections(con, path, load_id, has_id, has_label, row)
    rejected = int(
        db.scalar(con, "select count(distinct source_row) from raw.rejected_rows where load_id = ?", [load_id])
    )
    if rejected and strict:
        first = db.fetch_one(
            con,
            "select source_row, column_name, raw_value, reason from raw.rejected_rows "
            "where load_id = ? order by source_row limit 1",
            [load_id],
        )
        raise LeadscoreError(
            f"{path}: {rejected} row(s) rejected (--strict); first: data row {first[0]}, "
            f"column {first[1]}: {first[3]} (value {first[2]!r})"
        )

    select_cols = ",\n".join(f"    {_cast_expr(c.name, c.sql_type)}" for c in LEAD_COLUMNS)
    label_expr = _label_expr() if has_label else "null::boolean"
    id_expr = f"{_int_expr(ID_COLUMN)}" if has_id else "null::bigint"
    extra_expr = (
        "to_json({" + ", ".join(f"{db.quote_literal(e)}: {db.quote_ident(e)}" for e in extra) + "})"
        if extra
        else "null::json"
    )
    con.execute(
        f"""
        insert into raw.leads
        select
            substr(md5(? || ':' || {row}::varchar), 1, 16) as lead_id,
            ? as load_id,
            {row} as source_row,
            {id_expr} as id,
        {select_cols},
            {label_expr} as is_converted,
            {extra_expr} as extra_columns,
            now()::timestamp as loaded_at
        from _ingest_src as s
        where {row} not in (
            select source_row from raw.rejected_rows where load_id = ?
        )
        order by s.rowid
        """,
        [sha, load_id, load_id],
    )
    counts = db.fetch_one(
        con,
        "select count(*), count(is_converted), count(*) - count(is_converted) "
        "from raw.leads where load_id = ?",
        [load_id],
    )
    loaded, train_rows, score_rows = (int(x) for x in counts)
    con.execute(
        "insert into raw.loads values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::timestamp)",
        [load_id, path.name, str(path.resolve()), sha, kind, loaded, rejected, train_rows, score_rows, extra],
    )
    con.execute("drop table _ingest_src")
    notes = []
    if rejected:
        first = db.fetch_one(
            con,
            "select source_row, column_name, reason from raw.rejected_rows "
            "where load_id = ? order by source_row limit 1",
            [load_id],
        )
        notes.append(
            f"{rejected} row(s) rejected, kept in raw.rejected_rows "
            f"(first: data row {first[0]}, column {first[1]}: {first[2]})"
        )
    if extra:
        notes.append(f"extra column(s) kept in extra_columns: {', '.join(extra)}")
    if kind == "train" and score_rows:
        notes.append(f"{score_rows} row(s) without a label will be scored, not trained on")
    return LoadResult(
        path, "loaded", load_id, loaded, rejected, train_rows, score_rows, extra, "; ".join(notes)
    )


def _col(name: str) -> str:
    return f"s.{db.quote_ident(name)}"


def _int_expr(name: str) -> str:
    return f"try_cast(try_cast(trim({_col(name)}) as double) as bigint)"


def _cast_expr(name: str, sql_type: str) -> str:
    if sql_type == "BIGINT":
        expr = _int_expr(name)
    elif sql_type == "DOUBLE":
        expr = f"try_cast(trim({_col(name)}) as double)"
    else:
        expr = f"nullif(trim({_col(name)}), '')"
    return f"{expr} as {db.quote_ident(name)}"


def _label_expr() -> str:
    trues = ", ".join(db.quote_literal(v) for v in TRUE_LABELS)
    falses = ", ".join(db.quote_literal(v) for v in FALSE_LABELS)
    v = f"lower(trim({_col(LABEL_COLUMN)}))"
    return f"case when {v} in ({trues}) then true when {v} in ({falses}) then false else null end"


def _number_problem(name: str, integer: bool) -> str:
    """SQL for the reason a non-empty cell is not a usable number, or null when it is."""
    raw = f"trim({_col(name)})"
    as_double = f"try_cast({raw} as double)"
    checks = [
        f"when {as_double} is null then 'not a number'",
        f"when not isfinite({as_double}) then 'not a finite number'",
    ]
    if integer:
        checks.append(f"when {as_double} <> round({as_double}) then 'not a whole number'")
        checks.append(f"when abs({as_double}) > 9.0e18 then 'integer out of range'")
    return f"case when nullif({raw}, '') is null then null {' '.join(checks)} else null end"


def _write_rejections(
    con: duckdb.DuckDBPyConnection, path: Path, load_id: int, has_id: bool, has_label: bool, row: str
) -> None:
    """One row per (data row, column) problem, with the whole raw record, so nothing is lost."""
    problems: list[tuple[str, str]] = []
    for c in LEAD_COLUMNS:
        if c.sql_type in ("BIGINT", "DOUBLE"):
            problems.append((c.name, _number_problem(c.name, c.sql_type == "BIGINT")))
    if has_id:
        problems.append((ID_COLUMN, _number_problem(ID_COLUMN, True)))
    if has_label:
        allowed = ", ".join(db.quote_literal(v) for v in (*TRUE_LABELS, *FALSE_LABELS))
        raw = f"lower(trim({_col(LABEL_COLUMN)}))"
        problems.append(
            (
                LABEL_COLUMN,
                f"case when nullif({raw}, '') is null then null when {raw} in ({allowed}) then null "
                "else 'not a label (expected True/False or 1/0)' end",
            )
        )
    union = "\nunion all\n".join(
        f"select {row} as source_row, {db.quote_literal(name)} as column_name, "
        f"{_col(name)} as raw_value, {reason} as reason, to_json(s) as raw_record "
        f"from _ingest_src as s where ({reason}) is not null"
        for name, reason in problems
    )
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, source_row, column_name, raw_value, reason, raw_record, now()::timestamp
        from ({union})
        """,
        [load_id, str(path.resolve())],
    )
    if has_id:
        # Every occurrence after the first of an id is rejected, naming the row that kept it.
        con.execute(
            f"""
            insert into raw.rejected_rows
            select ?, ?, source_row, 'id', raw_id,
                'duplicate id ' || raw_id || ' (first on data row ' || first_row || ')',
                raw_record, now()::timestamp
            from (
                select
                    {row} as source_row,
                    {_col(ID_COLUMN)} as raw_id,
                    to_json(s) as raw_record,
                    min({row}) over (partition by {_int_expr(ID_COLUMN)}) as first_row
                from _ingest_src as s
                where {_int_expr(ID_COLUMN)} is not null
            )
            where source_row > first_row
            """,
            [load_id, str(path.resolve())],
        )


def discover_inputs(folder: Path) -> list[tuple[Path, str]]:
    """CSV files in a folder, in name order, each loaded with declared kind 'auto'."""
    if not folder.is_dir():
        raise LeadscoreError(f"{folder}: no such folder")
    return [(p, "auto") for p in sorted(folder.glob("*.csv")) if p.is_file()]


def summarize(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts the nightly summary prints."""
    if not db.table_exists(con, "raw", "leads"):
        return {"leads": 0, "train": 0, "score": 0, "rejected": 0}
    leads, train = db.fetch_one(con, "select count(*), count(is_converted) from raw.leads")
    rejected = db.scalar(con, "select count(distinct (load_id, source_row)) from raw.rejected_rows")
    return {"leads": int(leads), "train": int(train), "score": int(leads - train), "rejected": int(rejected)}
