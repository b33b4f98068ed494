"""Load competition-format CSV files into the raw tables.

Policy, in one place:
- File-level problems (missing, empty, header only, a required column missing, a duplicated or
  wrongly cased column name, not UTF-8, malformed CSV) refuse the file with a one-line message
  naming the file (and line or column where there is one). `leadscore ingest` then fails and
  writes nothing; the nightly job (`quarantine=True`) records the file in `raw.loads` with
  status 'refused' and the reason, loads the other files, and does not retry the file until
  its content changes.
- Row-level problems (an unparseable number or label, a value outside its domain as declared in
  `input_format.LEAD_COLUMNS`, a duplicate `id`, a lead already loaded) do not stop the load: the row
  is kept in `raw.rejected_rows` with the file, row number, column, raw value and reason, and
  the command warns. `--strict` turns any rejected row into a refused file.
- A file's role: `--train` / `--score` on the command line decide it; otherwise (`nightly`,
  positional files) the file does: a file with an `id` column is a score file (the
  competition's test file has one, its training file has none). In a score file every row is
  scored; labels found there are set aside in `raw.set_aside_labels`, never trained on. In a
  training file labeled rows train and unlabeled rows are scored.
- A lead's identity: its `id` when it has one; a row with an id already in `raw.leads` is
  rejected ("already loaded"), so a lead is loaded, scored and exported once. A row without an
  id is known by its content: an identical row already loaded by an earlier file (a re-exported
  file) is rejected the same way; identical rows within one file are all kept.
- `ingest` loads all its files in one transaction (a failure leaves the database as it was); the
  nightly job loads each file in its own. A file whose sha256 is already loaded is skipped.

The CSV is parsed by DuckDB's reader as text, then validated and cast in SQL: no Python row
loops, so 1M rows load in seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from leadscore import db, tables
from leadscore.errors import LeadscoreError
from leadscore.fileio import check_input_file, sha256_file
from leadscore.input_format import (
    FALSE_LABELS,
    ID_COLUMN,
    ID_RULE,
    LABEL_COLUMN,
    LEAD_COLUMNS,
    TRUE_LABELS,
    Column,
)

_CSV_OPTIONS = "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"'"
_GZIP_MAGIC = b"\x1f\x8b"
# DuckDB's CSV reader refuses lines longer than this (its max_line_size default).
_MAX_LINE_BYTES = 2_000_000


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


class FileRefused(LeadscoreError):
    """A file-level problem: the file cannot be loaded at all."""


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
    results: list[LoadResult] = []
    if not quarantine:
        for path, _ in files:
            _check_file(path)
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
    return results


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
    _check_file(path)
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


def _check_file(path: Path) -> None:
    check_input_file(path, "a header row and data rows", FileRefused)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_text(path: Path, gz: bool) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if gz else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _first_invalid_utf8(path: Path, gz: bool = False) -> tuple[int, int] | None:
    """(line, byte offset) of the first invalid UTF-8 sequence, or None. Only called after
    DuckDB has refused the file, to name the exact line."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with (gzip.open(path, "rb") if gz else path.open("rb")) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk[: exc.start].count(b"\n"), offset + exc.start
            line += chunk.count(b"\n")
            offset += len(chunk)
    return None


def _diagnose_csv(path: Path, gz: bool) -> str | None:
    """The first structural problem, found by Python's CSV reader, for when DuckDB's sniffer
    gives up without saying why: 'line N: expected X fields, found Y', an unterminated quote,
    a line over DuckDB's size limit. Only runs on a file DuckDB refused."""
    where = _first_invalid_utf8(path, gz)
    if where:
        return f"not valid UTF-8 at line {where[0]} (byte {where[1]}); save the file as UTF-8 and load it again"
    csv.field_size_limit(sys.maxsize)
    with _open_text(path, gz) as fh:
        reader = csv.reader(fh, strict=True)
        width = None
        start = 1
        try:
            for row in reader:
                size = sum(len(f.encode("utf-8", "replace")) + 1 for f in row)
                if size > _MAX_LINE_BYTES:
                    return (
                        f"line {start}: a row of {size:,} bytes, over the CSV reader's limit of "
                        f"{_MAX_LINE_BYTES:,} (a field this long is almost always a broken quote or a pasted blob)"
                    )
                if width is None:
                    width = len(row)
                elif len(row) != width and row:
                    return f"line {start}: expected {width} fields like the header, found {len(row)}"
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"line {start}: {exc} (a quote opened there is never closed?)"
    return None


def _csv_error(path: Path, exc: duckdb.Error, gz: bool) -> FileRefused:
    """One line: the file, the line and DuckDB's reason (or ours, when DuckDB gives none)."""
    text = str(exc)
    if "unicode" in text.lower() or "utf-8" in text.lower():
        where = _first_invalid_utf8(path, gz)
        if where:
            return FileRefused(
                f"{path}: not valid UTF-8 at line {where[0]} (byte {where[1]}); "
                "save the file as UTF-8 and load it again"
            )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else text
    reason = ""
    if "CSV Error on Line" in first:
        # DuckDB: "CSV Error on Line: N", "Original Line: ...", then the reason, then fixes.
        for ln in lines[1:]:
            if ln.startswith(("Original Line", "Possible")) or ln.startswith("*"):
                if ln.startswith("Possible"):
                    break
                continue
            if "=" in ln and ln.split("=")[0].strip().replace("_", "").isalpha():
                break  # the reader's option dump
            reason = ln
            break
    # DuckDB's sniffer gives no reason, and its line number for an over-long line is the
    # chunk's, not the file's: find the line ourselves then.
    diagnosis = _diagnose_csv(path, gz) if not reason or "line size" in reason.lower() else None
    first = first.replace("Invalid Input Error: ", "")
    if diagnosis:
        return FileRefused(f"{path}: cannot be read as CSV: {diagnosis}")
    return FileRefused(f"{path}: cannot be read as CSV: {first}" + (f": {reason}" if reason else ""))


def _header_problem(path: Path, header: list[str]) -> str | None:
    """File-level header checks, before any row is read."""
    known = [c.name for c in LEAD_COLUMNS]
    if len(header) == 1:
        for sep, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if header[0].count(sep) >= 2:
                return (
                    f"the header has one column with {name} in it: the file looks {name}-separated; "
                    "save it comma-separated (CSV) and load it again"
                )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        return f"duplicated column name{'s' if len(dupes) > 1 else ''} in the header: {', '.join(dupes)}"
    missing = [c for c in known if c not in header]
    if missing:
        lower = {h.strip().lower(): h for h in header}
        cased = [f"'{lower[m.lower()]}' should be '{m}'" for m in missing if m.lower() in lower]
        if cased:
            return "column names differ only in case or spaces (names are case-sensitive): " + ", ".join(cased)
        if len(header) <= 1:
            return "no header row found (expected the competition columns)"
        return f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
    for special in (ID_COLUMN, LABEL_COLUMN):
        if special not in header and any(h.strip().lower() == special for h in header):
            wrong = next(h for h in header if h.strip().lower() == special)
            return f"column names differ only in case or spaces (names are case-sensitive): '{wrong}' should be '{special}'"
    return None


def _read_header(path: Path, gz: bool) -> list[str]:
    try:
        with (gzip.open(path, "rb") if gz else path.open("rb")) as fh:
            first = fh.readline(1 << 20).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(f"{path}: not valid UTF-8 at line 1; save the file as UTF-8 and load it again") from None
    except (OSError, EOFError) as exc:
        raise FileRefused(f"{path}: cannot be read: {exc}") from None
    if not first.strip():
        raise FileRefused(f"{path}: no header row found (the first line is empty)")
    try:
        return next(csv.reader([first]))
    except csv.Error as exc:
        raise FileRefused(f"{path}: line 1: the header cannot be parsed: {exc}") from None


def _resolve_role(path: Path, kind: str, has_id: bool) -> tuple[str, str]:
    if kind == "train":
        return "train", "given with --train"
    if kind == "score":
        return "score", "given with --score"
    if has_id:
        return "score", f"has an '{ID_COLUMN}' column, like the competition's score file"
    return "train", f"no '{ID_COLUMN}' column, like the competition's training file"


def _load_one(
    con: duckdb.DuckDBPyConnection, path: Path, kind: str, sha: str, strict: bool
) -> LoadResult:
    gz = _is_gzip(path)
    header = _read_header(path, gz)
    problem = _header_problem(path, header)
    if problem:
        raise FileRefused(f"{path}: {problem}")
    has_id = ID_COLUMN in header
    has_label = LABEL_COLUMN in header
    role, role_reason = _resolve_role(path, kind, has_id)
    if role == "train" and not has_label:
        raise FileRefused(
            f"{path}: a training file needs an '{LABEL_COLUMN}' column"
            + ("" if kind == "train" else f" (read as training data: {role_reason})")
        )
    known = {c.name for c in LEAD_COLUMNS} | {ID_COLUMN, LABEL_COLUMN}
    extra = [h for h in header if h not in known]
    options = _CSV_OPTIONS + (", compression = 'gzip'" if gz else "")

    con.execute("drop table if exists _ingest_src")
    try:
        # CTAS keeps file order (preserve_insertion_order), so rowids are in file order. Inside a
        # transaction they start at a large offset, hence the subtraction of the first rowid.
        con.execute(f"create temp table _ingest_src as select * from read_csv(?, {options})", [str(path)])
    except duckdb.Error as exc:
        raise _csv_error(path, exc, gz) from exc
    total, first_rowid = db.fetch_one(con, "select count(*), min(rowid) from _ingest_src")
    if total == 0:
        raise FileRefused(f"{path}: header only, no data rows")

    load_id = int(db.scalar(con, "select coalesce(max(load_id), 0) + 1 from raw.loads"))
    row = f"(s.rowid - {int(first_rowid)} + 1)"
    _write_rejections(con, path, load_id, has_id, has_label and role == "train", row)
    if has_id:
        _reject_known_ids(con, path, load_id, row)
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
        raise FileRefused(
            f"{path}: {rejected} row(s) rejected (--strict); first: data row {first[0]}, "
            f"column {first[1]}: {first[3]} (value {first[2]!r})"
        )

    select_cols = ",\n".join(f"    {_cast_expr(c.name, c.sql_type)}" for c in LEAD_COLUMNS)
    label_expr = _label_expr() if has_label and role == "train" else "null::boolean"
    id_expr = f"{_int_expr(ID_COLUMN)}" if has_id else "null::bigint"
    extra_expr = (
        "to_json({" + ", ".join(f"{db.quote_literal(e)}: {db.quote_ident(e)}" for e in extra) + "})"
        if extra
        else "null::json"
    )
    con.execute("drop table if exists _ingest_typed")
    con.execute(
        f"""
        create temp table _ingest_typed as
        select
            substr(md5(? || ':' || {row}::varchar), 1, 16) as lead_id,
            ?::integer as load_id,
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
    if not has_id:
        _reject_known_rows(con, path, load_id, int(first_rowid))
        rejected = int(
            db.scalar(con, "select count(distinct source_row) from raw.rejected_rows where load_id = ?", [load_id])
        )
    columns = ", ".join(
        ["lead_id", "load_id", "source_row", "id", *(db.quote_ident(c.name) for c in LEAD_COLUMNS),
         "is_converted", "extra_columns", "loaded_at"]
    )
    con.execute(
        f"insert into raw.leads ({columns}) select {columns} from _ingest_typed "
        "where source_row not in (select source_row from raw.rejected_rows where load_id = ?) "
        "order by source_row",
        [load_id],
    )
    set_aside = 0
    if has_label and role == "score":
        v = f"lower(trim({_col(LABEL_COLUMN)}))"
        trues = ", ".join(db.quote_literal(x) for x in TRUE_LABELS)
        falses = ", ".join(db.quote_literal(x) for x in FALSE_LABELS)
        con.execute(
            f"""
            insert into raw.set_aside_labels
            select l.load_id, l.lead_id, l.id, l.source_row, {_col(LABEL_COLUMN)},
                case when {v} in ({trues}) then true when {v} in ({falses}) then false end,
                now()::timestamp
            from raw.leads as l
            inner join _ingest_src as s on l.source_row = {row}
            where l.load_id = ? and nullif(trim({_col(LABEL_COLUMN)}), '') is not null
            """,
            [load_id],
        )
        set_aside = int(db.scalar(con, "select count(*) from raw.set_aside_labels where load_id = ?", [load_id]))
    counts = db.fetch_one(
        con,
        "select count(*), count(is_converted), count(*) - count(is_converted) "
        "from raw.leads where load_id = ?",
        [load_id],
    )
    loaded, train_rows, score_rows = (int(x) for x in counts)
    con.execute(
        "insert into raw.loads (load_id, file_name, file_path, sha256, declared_kind, rows_loaded, "
        "rows_rejected, train_rows, score_rows, extra_columns, loaded_at, status, reason) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::timestamp, 'loaded', ?)",
        [load_id, path.name, str(path.resolve()), sha, role, loaded, rejected, train_rows, score_rows,
         extra, f"role {role}: {role_reason}"],
    )
    con.execute("drop table _ingest_src")
    con.execute("drop table _ingest_typed")
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
    if role == "train" and score_rows:
        notes.append(f"{score_rows} row(s) without a label will be scored, not trained on")
    return LoadResult(
        path, "loaded", load_id, loaded, rejected, train_rows, score_rows, extra, "; ".join(notes),
        role, role_reason, set_aside,
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


def _num(v: float) -> str:
    return repr(float(v))


def rule_problem(column: Column) -> str | None:
    """SQL for the reason a cell breaks its column's rules (input_format.LEAD_COLUMNS), or null."""
    raw = f"trim({_col(column.name)})"
    empty = f"nullif({raw}, '') is null"
    missing = "'required value missing'" if column.required else "null"
    if column.sql_type not in ("BIGINT", "DOUBLE"):
        return f"case when {empty} then {missing} else null end" if column.required else None
    d = f"try_cast({raw} as double)"
    checks = [
        f"when {empty} then {missing}",
        f"when {d} is null then 'not a number'",
        f"when not isfinite({d}) then 'not a finite number'",
    ]
    if column.sql_type == "BIGINT":
        checks.append(f"when {d} <> round({d}) then 'not a whole number'")
        checks.append(f"when abs({d}) > 9.0e18 then 'integer out of range'")
    if column.allowed is not None:
        values = ", ".join(_num(v) for v in column.allowed)
        checks.append(f"when {d} not in ({values}) then {db.quote_literal('not ' + column.rule_text())}")
    if column.min_value is not None:
        checks.append(
            f"when {d} < {_num(column.min_value)} or {d} > {_num(column.max_value)} "
            f"then {db.quote_literal('out of range: must be ' + column.rule_text().removeprefix('required; '))}"
        )
    return f"case {' '.join(checks)} else null end"


def _write_rejections(
    con: duckdb.DuckDBPyConnection, path: Path, load_id: int, has_id: bool, check_label: bool, row: str
) -> None:
    """One row per (data row, column) problem, with the whole raw record, so nothing is lost."""
    problems: list[tuple[str, str]] = []
    for c in LEAD_COLUMNS:
        reason = rule_problem(c)
        if reason:
            problems.append((c.name, reason))
    if has_id:
        problems.append((ID_COLUMN, rule_problem(ID_RULE)))
    if check_label:
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


def _reject_known_ids(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, row: str) -> None:
    """A lead is its id: an id already in raw.leads (an earlier file, or an earlier file of this
    run) is not loaded again, so it is never scored or exported twice."""
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, {row}, 'id', {_col(ID_COLUMN)},
            'id ' || l.id || ' already loaded (load ' || l.load_id || ', data row ' || l.source_row
                || '); a lead is loaded once',
            to_json(s), now()::timestamp
        from _ingest_src as s
        inner join raw.leads as l on l.id = {_int_expr(ID_COLUMN)}
        where {row} not in (select source_row from raw.rejected_rows where load_id = ?)
        """,
        [load_id, str(path.resolve()), load_id],
    )


_CONTENT_COLUMNS = [c.name for c in LEAD_COLUMNS] + ["is_converted"]


def _content_key(alias: str) -> str:
    parts = ", ".join(f"coalesce({alias}.{db.quote_ident(c)}::varchar, chr(0))" for c in _CONTENT_COLUMNS)
    return f"md5(concat_ws(chr(31), {parts}))"


def _reject_known_rows(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, first_rowid: int) -> None:
    """Rows without an id are known by their content: the k-th copy of a row in this file is
    rejected when earlier loads already hold at least k copies (a re-exported file loads only
    its new rows; identical rows within one file all stay)."""
    if not db.scalar(con, "select count(*) from raw.leads where id is null"):
        return
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, t.source_row, 'row', null,
            'identical row already loaded (load ' || k.first_load || '); a lead without an id is '
                || 'known by its content, so a re-sent row is not loaded twice',
            to_json(s), now()::timestamp
        from (
            select source_row, {_content_key('t')} as key,
                row_number() over (partition by {_content_key('t')} order by source_row) as copy
            from _ingest_typed as t
        ) as t
        inner join (
            select {_content_key('l')} as key, count(*) as copies, min(l.load_id) as first_load
            from raw.leads as l
            where l.id is null
            group by 1
        ) as k on t.key = k.key and t.copy <= k.copies
        inner join _ingest_src as s on s.rowid = t.source_row + {first_rowid} - 1
        """,
        [load_id, str(path.resolve())],
    )


def quarantine_loaded_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Move rows that an earlier version let in but that break a column rule today out of
    raw.leads into raw.rejected_rows (with the reason and the whole record), so a row accepted
    once can never fail the dbt tests of every later night. Runs inside the caller's
    transaction; returns the number of leads moved."""
    if not db.table_exists(con, "raw", "leads"):
        return 0
    checks = []
    for c in LEAD_COLUMNS:
        v = f"l.{db.quote_ident(c.name)}"
        if c.required:
            checks.append((c.name, f"{v} is null", "required value missing"))
        if c.allowed is not None:
            values = ", ".join(_num(x) for x in c.allowed)
            checks.append((c.name, f"{v} not in ({values})", "not " + c.rule_text()))
        elif c.min_value is not None:
            checks.append((
                c.name, f"({v} < {_num(c.min_value)} or {v} > {_num(c.max_value)})",
                "out of range: must be " + c.rule_text().removeprefix("required; "),
            ))
    any_bad = " or ".join(f"coalesce({cond}, false)" for _, cond, _ in checks)
    if not db.scalar(con, f"select count(*) from raw.leads as l where {any_bad}"):
        return 0  # the usual case: one scan, nothing to move
    union = "\nunion all\n".join(
        f"select l.lead_id, l.load_id, l.source_row, {db.quote_literal(name)} as column_name, "
        f"{'l.' + db.quote_ident(name)}::varchar as raw_value, "
        f"{db.quote_literal(reason + ' (loaded before this rule was enforced; moved out of raw.leads)')} as reason, "
        "to_json(l) as raw_record from raw.leads as l "
        f"where {cond}"
        for name, cond, reason in checks
    )
    con.execute(f"create or replace temp table _bad_loaded as {union}")
    moved = int(db.scalar(con, "select count(distinct lead_id) from _bad_loaded"))
    if moved:
        con.execute(
            """
            insert into raw.rejected_rows
            select b.load_id, coalesce(ld.file_path, ''), b.source_row, b.column_name, b.raw_value, b.reason,
                b.raw_record, now()::timestamp
            from _bad_loaded as b
            left join raw.loads as ld on b.load_id = ld.load_id
            """
        )
        con.execute("delete from raw.leads where lead_id in (select lead_id from _bad_loaded)")
    con.execute("drop table _bad_loaded")
    return moved


def is_input_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and (name.endswith(".csv") or name.endswith(".csv.gz"))


def discover_inputs(folder: Path) -> list[tuple[Path, str]]:
    """CSV files (*.csv, *.CSV, *.csv.gz) in a folder, in name order, each with role 'auto'."""
    if not folder.exists():
        raise LeadscoreError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise LeadscoreError(f"{folder}: is a file, not a folder (--input takes the folder the CSV files are in)")
    return [(p, "auto") for p in sorted(folder.iterdir()) if is_input_file(p)]


def summarize(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts the nightly summary prints."""
    if not db.table_exists(con, "raw", "leads"):
        return {"leads": 0, "train": 0, "score": 0, "rejected": 0}
    leads, train = db.fetch_one(con, "select count(*), count(is_converted) from raw.leads")
    rejected = db.scalar(con, "select count(distinct (load_id, source_row)) from raw.rejected_rows")
    return {"leads": int(leads), "train": int(train), "score": int(leads - train), "rejected": int(rejected)}

