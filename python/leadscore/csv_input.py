"""Reading one competition-format CSV file, up to a table of text cells; finding such files.

File-level problems refuse the whole file (FileRefused) with a one-line message naming the file
(and line or column where there is one): missing, empty, header only, a required column missing,
a duplicated or wrongly cased column name, a file separated by ';', tab or '|', not UTF-8,
malformed CSV (a row of the wrong width, an unterminated quote, a line over DuckDB's size
limit). What happens to a refused file (`ingest` fails, `nightly` quarantines it) is decided in
leadscore.ingest.

A file's role: `--train` / `--score` on the command line decide it; otherwise (`nightly`,
positional files) the file does: a file with an `id` column is a score file (the competition's
test file has one, its training file has none). A training file needs an `is_converted` column.

A file's columns: the 28 lead columns are required; the final round's (input_format.FINAL_COLUMNS)
are optional, anywhere in the header, so qualifier-format and final-round files can sit in one
folder; every other column is an extra column (kept as JSON by leadscore.ingest). A column whose
header cell is empty (pandas' `to_csv` writes its index so, a spreadsheet a trailing comma) is an
extra column too, named by its position (`unnamed_<n>`, column 1 first): its cells may be all a
file has of a lead's own number, so they are kept, not dropped. Names are the header's exactly,
spaces included; two names the database cannot tell apart (the same but for case) refuse the file.

Reading a file as text (gzip whatever its name, UTF-8 with or without a byte-order mark) lives
here once: `open_text`, and `invalid_utf8` to name the line that is not UTF-8; the labels file of
`leadscore evaluate` (leadscore.labels_file) reads through them too.

The CSV is parsed by DuckDB's reader, every cell as text, into a table of its own (`Cells`,
gzip-compressed files too, whatever their name); the cells are validated and cast in SQL
afterwards (leadscore.column_rules): no Python row loops, so 1M rows load in seconds. Beyond
the header line, Python's own CSV reader runs only on a file DuckDB refused, to name the line
and the reason DuckDB does not give.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from leadscore import db
from leadscore.errors import LeadscoreError
from leadscore.fileio import check_input_file
from leadscore.input_format import (
    FINAL_COLUMN_NAMES,
    FINAL_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    LEAD_COLUMNS,
    Column,
)

# The dialect is given, not left to DuckDB's sniffer to guess; the comment marker too (none):
# left unset, the sniffer took '#' for one in a file that has a cell starting with '#' (Excel's
# '#N/A', an id '#REF!'), and then dropped that row, cut every other cell at its '#' ('ticket #6'
# read as 'ticket ') and numbered the rows after a dropped one one too low, all silently.
_CSV_OPTIONS = (
    "header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"', comment = ''"
)
_GZIP_MAGIC = b"\x1f\x8b"
# DuckDB's CSV reader refuses lines longer than this (its max_line_size default).
_MAX_LINE_BYTES = 2_000_000
# The header record is read from at most this many characters of the file (a header that long
# is a broken quote, not names).
_MAX_HEADER_CHARS = 1 << 20


class FileRefused(LeadscoreError):
    """A file-level problem: the file cannot be loaded at all."""


def check_file(path: Path) -> None:
    """The file exists, is a regular file and is not empty (else FileRefused)."""
    check_input_file(path, "a header row and data rows", FileRefused)


def is_gzip(path: Path) -> bool:
    """Whether the file is gzip-compressed, by its first bytes: a file named .csv that is gzip
    is read as gzip, one named .gz that is not is read as it is."""
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def open_text(path: Path, gz: bool | None = None) -> io.TextIOWrapper:
    """The file as UTF-8 text for Python's csv module (newline=''), decompressed when it is gzip
    (`gz`; found out from its bytes when None), a leading byte-order mark dropped. An invalid
    byte raises UnicodeDecodeError when read: `invalid_utf8` then names its line."""
    if gz is None:
        gz = is_gzip(path)
    raw = gzip.open(path, "rb") if gz else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def invalid_utf8(path: Path, gz: bool | None = None) -> str | None:
    """'not valid UTF-8 at line N (byte B); ...' for the first invalid sequence, or None. Only
    called on a file that failed to decode: it reads the file again to name the line."""
    if gz is None:
        gz = is_gzip(path)
    where = _first_invalid_utf8(path, gz)
    if where is None:
        return None
    return f"not valid UTF-8 at line {where[0]} (byte {where[1]}); save the file as UTF-8 and load it again"


def _first_invalid_utf8(path: Path, gz: bool = False) -> tuple[int, int] | None:
    """(line, byte offset) of the first invalid UTF-8 sequence, or None. Only called after
    DuckDB has refused the file, to name the exact line. A gzip stream that breaks off
    (truncated, corrupt) ends the search there: that is `gzip_problem`'s to name, not a bug."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with (gzip.open(path, "rb") if gz else path.open("rb")) as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return line + chunk[: exc.start].count(b"\n"), offset + exc.start
                line += chunk.count(b"\n")
                offset += len(chunk)
        except _GZIP_ERRORS:
            return None
    return None


# What Python's gzip reader raises on a broken stream: EOFError when it is cut short,
# gzip.BadGzipFile (an OSError) on a bad header or CRC, zlib.error on corrupt compressed data.
_GZIP_ERRORS = (EOFError, OSError, zlib.error)


def gzip_problem(path: Path) -> str | None:
    """Why a gzip file cannot be decompressed to its end ('not a valid gzip file: ...'), or None
    when it can. Run on every gzip file before it is read (open_lead_file): DuckDB reads a stream
    that stops before its end-of-stream marker without a word when the cut falls where the writer
    had flushed, and loads the rows before it, so a file cut off in transfer would lose its tail
    silently; where the cut falls mid-row, DuckDB's own error is a sniffer failure or a ragged
    line, which would send the user looking for a CSV problem. One extra decompression pass."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
    except EOFError:
        return ("not a valid gzip file: it is truncated (the compressed data ends before its "
                "end-of-stream marker); copy the whole file again")
    except _GZIP_ERRORS as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return f"not a valid gzip file: it is corrupt ({detail}); copy the file again"
    return None


def _diagnose_csv(path: Path, gz: bool) -> str | None:
    """The first structural problem, found by Python's CSV reader, for when DuckDB's sniffer
    gives up without saying why: 'line N: expected X fields, found Y', an unterminated quote,
    a line over DuckDB's size limit. Only runs on a file DuckDB refused, a gzip file's stream
    found whole first (open_lead_file)."""
    problem = invalid_utf8(path, gz)
    if problem:
        return problem
    csv.field_size_limit(sys.maxsize)
    with open_text(path, gz) as fh:
        reader = csv.reader(fh, strict=True)
        width = None
        header: list[str] = []
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
                    width, header = len(row), row
                elif len(row) != width and row:
                    return f"line {start}: expected {width} fields like the header, found {len(row)}" + _ragged_hint(
                        header, len(row))
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"line {start}: {exc} (a quote opened there is never closed?)"
    return None


def _ragged_hint(header: list[str], found: int) -> str:
    """Why a row may be shorter than the header: blank header cells at its end (a trailing comma
    a spreadsheet or an editor left on the header line alone)."""
    blank_tail = 0
    for cell in reversed(header):
        if cell.strip():
            break
        blank_tail += 1
    if blank_tail and found == len(header) - blank_tail:
        names = "an empty column name" if blank_tail == 1 else f"{blank_tail} empty column names"
        return f" (the header ends with {names}, a trailing comma on the header line that the rows do not have: remove it)"
    return ""


def _csv_error(path: Path, exc: duckdb.Error, gz: bool) -> FileRefused:
    """One line: the file, the line and DuckDB's reason (or ours, when DuckDB gives none).

    A gzip file's stream was found whole before it was read (open_lead_file). The encoding is
    looked into only when DuckDB says 'Invalid unicode': its other errors all print the reader's
    options, 'Encoding: utf-8' among them, and a sniffer failure is diagnosed (encoding first) by
    `_diagnose_csv` anyway."""
    text = str(exc)
    if "unicode" in text.lower():
        problem = invalid_utf8(path, gz)
        if problem:
            return FileRefused(f"{path}: {problem}")
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


def unnamed_column_name(position: int) -> str:
    """The name of a column whose header cell is empty or only spaces: its position, column 1
    first (pandas' index column: 'unnamed_1'). Documented in the README, for
    `extra_columns->>'unnamed_1'`."""
    return f"unnamed_{position}"


def column_names(header: list[str]) -> list[str]:
    """The name each column goes by everywhere (the cells table, extra_columns, raw_record): the
    header cell exactly as written, or `unnamed_column_name` where it is blank. DuckDB's reader
    would make up a name of its own for a blank one and trim the others, so the names are given
    to it (read_cells) rather than taken from it."""
    return [h if h.strip() else unnamed_column_name(i) for i, h in enumerate(header, start=1)]


def _ascii_fold(name: str) -> str:
    """A name as DuckDB compares identifiers: ASCII letters in any case alike, others exactly."""
    return "".join(ch.lower() if ch.isascii() else ch for ch in name)


def _positions(numbers: list[int], header: list[str]) -> str:
    """'columns 3 and 7' (1-based, as a spreadsheet counts), a blank header cell marked '(no name)'
    so that a clash with its generated name reads as one."""
    words = [f"{n}" + (" (no name)" if not header[n - 1].strip() else "") for n in numbers]
    return "columns " + (", ".join(words[:-1]) + " and " + words[-1])


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
    names = column_names(header)
    by_name: dict[str, list[int]] = {}
    by_folded: dict[str, list[int]] = {}
    for position, name in enumerate(names, start=1):
        by_name.setdefault(name, []).append(position)
        by_folded.setdefault(_ascii_fold(name), []).append(position)
    dupes = [(name, at) for name, at in by_name.items() if len(at) > 1]
    if dupes:
        return f"duplicated column name{'s' if len(dupes) > 1 else ''} in the header: " + "; ".join(
            f"{name} ({_positions(at, header)})" for name, at in dupes
        )
    cased = [at for at in by_folded.values() if len(at) > 1]
    if cased:
        return (
            "column names that differ only in case (the database does not tell them apart; "
            "rename one): " + "; ".join(
                " and ".join(f"'{names[n - 1]}' (column {n})" for n in at) for at in cased
            )
        )
    missing = [c for c in known if c not in names]
    if missing:
        lower = {h.strip().lower(): h for h in names}
        wrong = [f"'{lower[m.lower()]}' should be '{m}'" for m in missing if m.lower() in lower]
        if wrong:
            return "column names differ only in case or spaces (names are case-sensitive): " + ", ".join(wrong)
        if len(header) <= 1:
            return "no header row found (expected the competition columns)"
        return f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
    # the optional columns too: 'Lead_Date' would otherwise be kept as an untyped extra column
    for special in (ID_COLUMN, LABEL_COLUMN, *FINAL_COLUMN_NAMES):
        if special not in names and any(h.strip().lower() == special for h in names):
            wrong_name = next(h for h in names if h.strip().lower() == special)
            return f"column names differ only in case or spaces (names are case-sensitive): '{wrong_name}' should be '{special}'"
    return None


def _limited_lines(fh: io.TextIOWrapper, limit: int) -> Iterator[str]:
    """The file's lines, up to `limit` characters in all (the last one cut there)."""
    left = limit
    while left > 0:
        line = fh.readline(left)
        if not line:
            return
        left -= len(line)
        yield line


def _read_header(path: Path, gz: bool) -> list[str]:
    """The header record's cells as Python's CSV reader parses them, from the file's first MB:
    a quoted name may hold a comma or a line break, as it may for DuckDB's reader, so that both
    readers agree on how many columns there are and what each is called."""
    try:
        with open_text(path, gz) as fh:
            lines = _limited_lines(fh, _MAX_HEADER_CHARS)
            first = next(lines, "")
            if not first.strip():
                raise FileRefused(f"{path}: no header row found (the first line is empty)")
            return next(csv.reader(itertools.chain([first], lines), strict=True))
    except UnicodeDecodeError:
        problem = invalid_utf8(path, gz) or "not valid UTF-8 at line 1; save the file as UTF-8 and load it again"
        raise FileRefused(f"{path}: {problem}") from None
    except _GZIP_ERRORS as exc:  # a gzip stream was found whole first (open_lead_file)
        raise FileRefused(f"{path}: cannot be read: {exc}") from None
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


@dataclass(frozen=True)
class LeadFile:
    """A lead file whose header passed the file-level checks, and its role. `header` holds the
    names the columns go by (column_names): the header's own, a blank one named by position."""

    path: Path
    gz: bool
    header: list[str]
    role: str  # "train" or "score"
    role_reason: str
    extra: list[str]  # columns beyond the competition's and the final round's, in file order
    final: tuple[Column, ...] = ()  # the final-round columns the file has (input_format order)
    unnamed: tuple[int, ...] = ()  # positions (1-based) of blank header cells (unnamed_column_name)

    @property
    def has_id(self) -> bool:
        return ID_COLUMN in self.header

    @property
    def has_label(self) -> bool:
        return LABEL_COLUMN in self.header


def open_lead_file(path: Path, kind: str) -> LeadFile:
    """Read and check the header, and decide the role (`kind`: train, score or auto)."""
    gz = is_gzip(path)
    if gz and (broken := gzip_problem(path)):
        raise FileRefused(f"{path}: {broken}")
    raw_header = _read_header(path, gz)
    problem = _header_problem(path, raw_header)
    if problem:
        raise FileRefused(f"{path}: {problem}")
    header = column_names(raw_header)
    unnamed = tuple(n for n, raw in enumerate(raw_header, start=1) if not raw.strip())
    has_id = ID_COLUMN in header
    has_label = LABEL_COLUMN in header
    role, role_reason = _resolve_role(path, kind, has_id)
    if role == "train" and not has_label:
        raise FileRefused(
            f"{path}: a training file needs an '{LABEL_COLUMN}' column"
            + ("" if kind == "train" else f" (read as training data: {role_reason})")
        )
    known = {c.name for c in LEAD_COLUMNS} | set(FINAL_COLUMN_NAMES) | {ID_COLUMN, LABEL_COLUMN}
    extra = [h for h in header if h not in known]
    final = tuple(c for c in FINAL_COLUMNS if c.name in header)
    return LeadFile(path, gz, header, role, role_reason, extra, final, unnamed)


@dataclass(frozen=True)
class Cells:
    """A file's text cells, one row per data row in file order, in an in-memory database of their
    own (read_cells). `table` is the qualified name of a view for SQL, read aliased `s`: a column
    per header name (`s."name"`, column_rules.cell), plus the data row's number under a name of
    no header's (`row`); `record` is the SQL for a row's whole record as JSON.

    The view, not the table the CSV reader fills, because a CSV column may take any name: one
    called `rowid` hid DuckDB's row id from `s.rowid`, one called `s` turned `to_json(s)` into
    that one cell. The stored table's columns are named by position (c1, c2, ...), so its row id
    is always reachable; the view names them as the header does."""

    database: str
    columns: tuple[str, ...]  # the header's names (LeadFile.header), in file order
    row_column: str  # the view's column for the data row's number: a name no header cell takes

    @property
    def table(self) -> str:
        return f"{db.quote_ident(self.database)}.main.cells"

    @property
    def stored(self) -> str:
        """The table the CSV reader writes, columns named by position."""
        return f"{db.quote_ident(self.database)}.main.cells_by_position"

    @property
    def row(self) -> str:
        """The data row's number (1 for the first row after the header)."""
        return f"s.{db.quote_ident(self.row_column)}"

    @property
    def record(self) -> str:
        """The row's cells as a JSON object keyed by the header's names, in file order (the row
        number left out): what raw.rejected_rows keeps as raw_record, whatever the columns are
        called."""
        fields = ", ".join(f"{db.quote_literal(c)}: s.{db.quote_ident(c)}" for c in self.columns)
        return f"to_json({{{fields}}})"


def _row_column_name(header: list[str]) -> str:
    """A name for the row number that no header name takes, as DuckDB compares names."""
    taken = {_ascii_fold(h) for h in header}
    name = "_data_row"
    while _ascii_fold(name) in taken:
        name += "_"
    return name


def read_cells(con: duckdb.DuckDBPyConnection, f: LeadFile) -> Cells:
    """Every data row of the file, every cell as text, into a table that the load's transaction
    on `con` reads through the view `Cells.table` (release_cells drops both).

    The table is written by a second connection (a cursor of `con`) into an in-memory database
    attached for this file alone, and committed there, before `con` first reads it. A temp table
    made inside the load's transaction held the cells in transaction-local storage, which DuckDB
    scans on one thread: the typed insert of 1M leads took 6.0 s from it, 3.6 s from committed
    cells. The cells are no part of what the load commits or rolls back, so nothing is lost.
    A fresh name per file: a transaction keeps seeing the first table it read under one name, so
    the view is made by the second connection too, before `con` reads anything there."""
    path = f.path
    options = _CSV_OPTIONS + (", compression = 'gzip'" if f.gz else "")
    cells = Cells(f"_ingest_cells_{uuid.uuid4().hex[:12]}", tuple(f.header), _row_column_name(f.header))
    positions = [f"c{n}" for n in range(1, len(f.header) + 1)]
    writer = con.cursor()
    try:
        writer.execute(f"attach ':memory:' as {db.quote_ident(cells.database)}")
        try:
            # CTAS keeps file order (preserve_insertion_order), so rowids are in file order.
            # The names are given (`names`), by position: DuckDB's own would rename a blank or
            # repeated one and trim spaces, and the header's own could hide the row id (`rowid`).
            writer.execute(
                f"create table {cells.stored} as select * from read_csv(?, {options}, names = ?)",
                [str(path), positions],
            )
        except duckdb.Error as exc:
            release_cells(con, cells)
            raise _csv_error(path, exc, f.gz) from exc
        total, first_rowid = db.fetch_one(writer, f"select count(*), min(rowid) from {cells.stored}")
        if total == 0:
            release_cells(con, cells)
            raise FileRefused(f"{path}: header only, no data rows")
        named = ", ".join(f"{p} as {db.quote_ident(h)}" for p, h in zip(positions, f.header, strict=True))
        writer.execute(
            f"create view {cells.table} as select {named}, "
            f"rowid - {int(first_rowid)} + 1 as {db.quote_ident(cells.row_column)} from {cells.stored}"
        )
    finally:
        writer.close()
    return cells


def release_cells(con: duckdb.DuckDBPyConnection, cells: Cells) -> None:
    """Drop a file's cells, table and view (detach their database); safe to call twice. From a second connection,
    like the write: `con`'s open transaction has read them, and DuckDB refuses that one the detach."""
    with con.cursor() as other:
        other.execute(f"detach database if exists {db.quote_ident(cells.database)}")


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

