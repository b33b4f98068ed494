"""csv_input.py: reading one lead file. File-level problems (CSV errors, header problems,
delimiters, gzip) are refused in one line naming the file, the line and the reason, and leave
the database unchanged; the role of a file comes from the flag or from its header."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from helpers import assert_fails_unchanged, rows_of, run, score_rows, train_rows, write_csv
from leadscore import csv_input, ingest
from leadscore.csv_input import FileRefused
from leadscore.errors import LeadscoreError


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# -- the role of a file ------------------------------------------------------------------------

def test_role_from_the_file_when_not_given(db_file, tmp_path, capsys):
    t = write_csv(tmp_path / "train.csv", train_rows(3))
    rows = score_rows(2)
    rows[0]["is_converted"] = "1"
    s = write_csv(tmp_path / "submission.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", str(t), str(s))
    assert code == 0, err
    assert "loaded 3 rows as a train file (no 'id' column" in out
    assert "loaded 2 rows as a score file (has an 'id' column" in out
    assert rows_of(db_file, "select file_name, declared_kind, train_rows, score_rows from raw.loads order by 1") == [
        ("submission.csv", "score", 0, 2), ("train.csv", "train", 3, 0)]


def test_open_lead_file_decides_the_role_flag_first_then_header(tmp_path):
    with_id = write_csv(tmp_path / "with_id.csv", score_rows(2), with_id=True)
    without = write_csv(tmp_path / "without.csv", train_rows(2))
    assert (csv_input.open_lead_file(with_id, "auto").role, csv_input.open_lead_file(without, "auto").role) == (
        "score", "train")
    forced = csv_input.open_lead_file(with_id, "train")
    assert (forced.role, forced.role_reason) == ("train", "given with --train")
    assert csv_input.open_lead_file(without, "score").role == "score"
    unlabeled = write_csv(tmp_path / "unlabeled.csv", train_rows(2), label=False)
    with pytest.raises(FileRefused, match="a training file needs an 'is_converted' column .read as training data"):
        csv_input.open_lead_file(unlabeled, "auto")


def test_open_lead_file_lists_extra_columns_in_file_order(tmp_path):
    p = write_csv(tmp_path / "extra.csv", train_rows(1), extra=("zeta", "alpha"))
    f = csv_input.open_lead_file(p, "auto")
    assert f.extra == ["zeta", "alpha"] and f.has_label and not f.has_id and not f.gz


# -- CSV errors name the file, line and reason ---------------------------------------------------

def test_ragged_row_names_the_line(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "ragged.csv", train_rows(5, start=600))
    lines = _lines(p)
    lines[3] = lines[3] + ",extra"
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "ragged.csv", "line 4", "expected 29 fields like the header, found 30")


def test_a_trailing_comma_on_the_header_alone_is_named_as_the_cause(seeded, tmp_path, capsys):
    """An editor left a comma after the header's last name and none on the rows: every row is one
    field short, and the refusal says where the extra field is."""
    p = write_csv(tmp_path / "header-comma.csv", train_rows(5, start=600))
    lines = _lines(p)
    lines[0] += ","
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "header-comma.csv", "line 2",
                           "expected 30 fields like the header, found 29 (the header ends with an empty column "
                           "name, a trailing comma on the header line that the rows do not have: remove it)")


def test_a_row_short_of_a_named_column_gets_no_comma_hint():
    assert csv_input._ragged_hint(["a", "b", ""], 1) == ""  # two short: not the blank name alone
    assert csv_input._ragged_hint(["a", "b", "c"], 2) == ""
    assert "2 empty column names" in csv_input._ragged_hint(["a", "", " "], 1)


def test_ragged_row_past_the_sniffer_keeps_duckdbs_line_and_reason(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "long.csv", train_rows(25_002, start=10_000))
    lines = _lines(p)
    lines[25_001] = lines[25_001].rsplit(",", 1)[0]  # data row 25,001 (line 25,002) loses its label field
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "long.csv", "Line: 25002",
                           "Expected Number of Columns: 29 Found: 28")


def test_unterminated_quote_names_the_line(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "quote.csv", train_rows(5, start=600))
    lines = _lines(p)
    lines[2] = lines[2].replace("/Lima/Peru", '"/Lima/Peru', 1)
    p.write_text("\n".join(lines) + "\n")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "quote.csv", "line 3", "quote")


def test_oversized_field_names_the_line(seeded, tmp_path, capsys):
    rows = train_rows(3, start=600)
    rows[1]["product_modelname"] = "x" * 3_000_000
    p = write_csv(tmp_path / "blob.csv", rows)
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "blob.csv", "line 3", "limit")


# -- header problems ---------------------------------------------------------------------------

def test_semicolon_file_gets_the_delimiter_hint(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "semi.csv", train_rows(2, start=600))
    p.write_text(p.read_text().replace(",", ";"))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "semi.csv", "';'-separated")


@pytest.mark.parametrize("sep, name", [("\t", "tab"), ("|", "'|'")])
def test_tab_and_pipe_files_get_the_delimiter_hint(tmp_path, sep, name):
    p = write_csv(tmp_path / "other.csv", train_rows(2, start=600))
    p.write_text(p.read_text().replace(",", sep))
    with pytest.raises(FileRefused, match=f"looks {name}-separated"):
        csv_input.open_lead_file(p, "auto")


def test_case_only_header_mismatch_is_pointed_out(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "case.csv", train_rows(2, start=600))
    p.write_text(p.read_text().replace("lead_owner", "Lead_Owner", 1))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "'Lead_Owner' should be 'lead_owner'")


def test_duplicated_header_is_refused(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "dup.csv", train_rows(2, start=600), extra=("lead_owner",))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)],
                           "dup.csv: duplicated column name in the header: lead_owner (columns 28 and 30)")


def test_blank_header_cells_are_extra_columns_named_by_position(tmp_path):
    p = write_csv(tmp_path / "blank.csv", train_rows(2), extra=("note",))
    p.write_text("".join(f",{line}, \n" for line in _lines(p)))  # an index column, a trailing comma
    f = csv_input.open_lead_file(p, "auto")
    assert f.extra == ["unnamed_1", "note", "unnamed_32"] and f.unnamed == (1, 32)
    assert f.header[:2] == ["unnamed_1", "bant_submit"] and f.header[-1] == "unnamed_32"
    con = duckdb.connect()
    try:  # the cells table goes by the same names (DuckDB's reader would make up its own), then the row number
        cells = csv_input.read_cells(con, f)
        assert [d[0] for d in con.execute(f"select * from {cells.table} limit 0").description] == [
            *f.header, cells.row_column]
        csv_input.release_cells(con, cells)
    finally:
        con.close()


def test_a_name_clashing_with_a_blank_cells_name_is_refused_naming_the_columns(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "clash.csv", train_rows(2, start=600), extra=("unnamed_1",))
    p.write_text("".join(f",{line}\n" for line in _lines(p)))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)],
                           "clash.csv: duplicated column name in the header: unnamed_1 (columns 1 (no name) and 31)")


def test_names_that_differ_only_in_case_are_refused_naming_both(seeded, tmp_path, capsys):
    # DuckDB does not tell them apart: the second would have been read as the first
    p = write_csv(tmp_path / "cased.csv", train_rows(2, start=600), extra=("LEAD_OWNER",))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)],
                           "cased.csv: column names that differ only in case", "'lead_owner' (column 28) and 'LEAD_OWNER' (column 30)")


# -- gzip and the files a folder offers ------------------------------------------------------------

def test_gzip_files_load_and_nightly_finds_every_spelling(db_file, tmp_path, capsys):
    plain = write_csv(tmp_path / "plain.csv", train_rows(3, start=600))
    disguised = tmp_path / "disguised.csv"
    disguised.write_bytes(gzip.compress(plain.read_bytes()))
    code, out, err = run(capsys, "ingest", "--train", str(disguised))
    assert code == 0 and "loaded 3 rows" in out and "gzip-compressed" in err
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.csv", "b.CSV", "c.csv.gz", "notes.txt", ".hidden.csv"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p, _ in ingest.discover_inputs(folder)] == ["a.csv", "b.CSV", "c.csv.gz"]


def test_read_cells_keeps_every_cell_as_text_in_file_order(tmp_path):
    rows = train_rows(3, start=600)
    rows[1]["bant_submit"] = "not a number"  # text at this stage: the rules judge it later
    p = tmp_path / "cells.csv.gz"
    p.write_bytes(gzip.compress(write_csv(tmp_path / "cells.csv", rows).read_bytes()))
    f = csv_input.open_lead_file(p, "auto")
    con = duckdb.connect()
    try:
        cells = csv_input.read_cells(con, f)
        got = con.execute(
            f"select {cells.row}, customer_idx, bant_submit from {cells.table} as s order by 1"
        ).fetchall()
        csv_input.release_cells(con, cells)
        attached = con.execute("select database_name from duckdb_databases() where not internal").fetchall()
    finally:
        con.close()
    assert f.gz and got == [(1, "600", "0.5"), (2, "601", "not a number"), (3, "602", "0.5")]
    assert attached == [("memory",)]  # released: only the connection's own database is left


def test_input_file_is_not_a_folder(tmp_path):
    """discover_inputs for any caller; the CLI's `nightly --input` refuses both before it runs
    (a usage error, test_cli)."""
    p = write_csv(tmp_path / "train.csv", train_rows(2))
    with pytest.raises(LeadscoreError, match="is a file, not a folder"):
        csv_input.discover_inputs(p)
    with pytest.raises(LeadscoreError, match="no such folder"):
        csv_input.discover_inputs(tmp_path / "nowhere")


# -- cells as written: a '#', a column of any name, a broken gzip stream --------------------------

def test_a_cell_starting_with_hash_is_data_not_a_comment(db_file, tmp_path, capsys):
    """DuckDB's sniffer took '#' for a comment marker: a row starting with Excel's '#N/A' (or an
    id '#REF!') vanished, the rows after it were numbered one too low, and a cell was cut at its
    '#'. Every row is read and every cell kept; a '#N/A' is then a bad value like any other."""
    rows = train_rows(4, start=610)
    rows[0]["note"] = "ticket #6 callback"
    rows[1]["bant_submit"] = "#N/A"  # bant_submit is the first column: the line starts with '#'
    train = write_csv(tmp_path / "hash.csv", rows, extra=("note",))
    code, out, err = run(capsys, "ingest", "--train", str(train))
    assert code == 0 and "loaded 3 rows" in out, err
    assert rows_of(db_file, "select source_row, customer_idx, extra_columns->>'note' from raw.leads order by 1") == [
        (1, 610, "ticket #6 callback"), (3, 612, None), (4, 613, None)]
    scores = score_rows(3, start=5001)
    scores[1]["id"] = "#REF!"  # the id is the first column
    score = write_csv(tmp_path / "hash_id.csv", scores, with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(score))
    assert code == 0 and "loaded 2 rows" in out, err
    assert rows_of(db_file, "select load_id, source_row, column_name, raw_value, reason from raw.rejected_rows "
                            "order by 1, 2") == [(1, 2, "bant_submit", "#N/A", "not a number"),
                                                 (2, 2, "id", "#REF!", "not a number")]
    assert rows_of(db_file, "select source_row, id from raw.leads where load_id = 2 order by 1") == [(1, 5001), (3, 5015)]


def test_a_column_named_rowid_is_an_extra_column_like_any_other(db_file, tmp_path, capsys):
    """`rowid` (any case) hid DuckDB's row id, which numbered the rows: the load failed as a bug.
    A column named like the cells' own row number is kept too (the row number takes another name)."""
    rows = train_rows(3, start=620)
    for i, row in enumerate(rows):
        row.update({"ROWID": "x" if i == 1 else str(100 - i), "_data_row": "7"})
    rows[2]["lead_owner"] = "seven"  # a rejected row: its record and row number too
    p = write_csv(tmp_path / "rowid.csv", rows, extra=("ROWID", "_data_row"))
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 2 rows" in out, err
    assert rows_of(db_file, "select source_row, customer_idx, extra_columns->>'ROWID', extra_columns->>'_data_row' "
                            "from raw.leads order by 1") == [(1, 620, "100", "7"), (2, 621, "x", "7")]
    assert rows_of(db_file, "select source_row, column_name, raw_record->>'ROWID', raw_record->>'customer_idx' "
                            "from raw.rejected_rows") == [(3, "lead_owner", "98", "622")]
    scores = score_rows(2, start=6001)
    scores[0]["rowid"] = "1"
    score = write_csv(tmp_path / "rowid_score.csv", scores, with_id=True, extra=("rowid",))
    code, out, err = run(capsys, "ingest", "--score", str(score))
    assert code == 0 and "loaded 2 rows" in out, err


def _broken_gzips(tmp_path: Path) -> tuple[Path, Path]:
    """A gzip file cut in half (a copy that broke off) and one with 64 bytes in the middle flipped."""
    packed = gzip.compress(write_csv(tmp_path / "whole.csv", train_rows(400, start=3000)).read_bytes())
    truncated = tmp_path / "truncated.csv.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    flipped = bytearray(packed)
    middle = len(flipped) // 2
    flipped[middle:middle + 64] = bytes(b ^ 0xFF for b in flipped[middle:middle + 64])
    corrupt = tmp_path / "corrupt.csv.gz"
    corrupt.write_bytes(bytes(flipped))
    return truncated, corrupt


def test_a_broken_gzip_file_is_refused_naming_the_file(seeded, tmp_path, capsys):
    """Python's gzip reader, reading the file again to name the line, raised EOFError /
    BadGzipFile / zlib.error: reported as a bug, and the nightly job retried it every run."""
    truncated, corrupt = _broken_gzips(tmp_path)
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(truncated)],
                           "truncated.csv.gz: not a valid gzip file: it is truncated")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(corrupt)],
                           "corrupt.csv.gz: not a valid gzip file: it is corrupt")
    # the header itself in the broken part: refused the same way
    head_cut = tmp_path / "head_cut.csv.gz"
    head_cut.write_bytes(truncated.read_bytes()[:30])
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(head_cut)],
                           "head_cut.csv.gz: not a valid gzip file: it is truncated")


def test_a_gzip_file_cut_where_its_writer_flushed_is_refused_not_loaded_short(seeded, tmp_path, capsys):
    """DuckDB reads a gzip stream that stops at a flush point, before its end-of-stream marker,
    without an error, and loads the rows before the cut: the file's tail would be lost without a
    word. Every gzip file is decompressed to its end before it is read."""
    import zlib

    full = (tmp_path / "full.csv")
    write_csv(full, train_rows(40, start=5000))
    lines = full.read_bytes().splitlines(keepends=True)
    packer = zlib.compressobj(wbits=31)  # gzip framing
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packer.compress(b"".join(lines[:21])) + packer.flush(zlib.Z_FULL_FLUSH))
    assert duckdb.sql(f"select count(*) from read_csv('{cut}', header = true, all_varchar = true)").fetchone() == (20,)
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(cut)],
                           "cut.csv.gz: not a valid gzip file: it is truncated")


def test_nightly_quarantines_a_broken_gzip_file(db_file, tmp_path):
    truncated, corrupt = _broken_gzips(tmp_path)
    good = write_csv(tmp_path / "good.csv", train_rows(2, start=3900))
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, [(truncated, "auto"), (corrupt, "auto"), (good, "auto")], quarantine=True)
        assert [r.status for r in results] == ["refused", "refused", "loaded"]
        assert con.execute("select file_name, status, reason from raw.loads order by load_id").fetchall() == [
            ("truncated.csv.gz", "refused", results[0].message),
            ("corrupt.csv.gz", "refused", results[1].message),
            ("good.csv", "loaded", "role train: no 'id' column, like the competition's training file"),
        ]
        assert "not a valid gzip file: it is truncated" in results[0].message
        assert "not a valid gzip file: it is corrupt" in results[1].message
        again = ingest.ingest_files(con, [(truncated, "auto")], quarantine=True)
        assert "not retried until the file changes" in again[0].message
    finally:
        con.close()


def test_the_encoding_is_looked_into_only_on_an_encoding_error(tmp_path, monkeypatch):
    """Every DuckDB sniffer error prints 'Encoding: utf-8' among the reader's options; taken for an
    encoding error, it made the whole file be read once more (and a broken gzip one raise)."""
    p = write_csv(tmp_path / "fine.csv", train_rows(2))
    calls: list[Path] = []
    real = csv_input.invalid_utf8
    monkeypatch.setattr(csv_input, "invalid_utf8", lambda path, gz=None: calls.append(path) or real(path, gz))
    sniffed = duckdb.InvalidInputException(
        'Invalid Input Error: Error when sniffing file "fine.csv".\nIt was not possible to automatically detect '
        "the CSV parsing dialect\nDelimiter Candidates: ','\nEncoding: utf-8\n")
    refused = csv_input._csv_error(p, sniffed, False)
    assert "fine.csv: cannot be read as CSV" in str(refused)
    assert calls == [p]  # once, by the structural diagnosis (which looks at the encoding first)
