"""Ingestion: good files load with stable ids, bad files fail with a message naming the file,
row or column, and a failure leaves the database exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from helpers import assert_fails_unchanged, rows_of, run, score_rows, snapshot, train_rows, write_csv
from leadscore import ingest


def test_loads_train_and_score_files(db_file, tmp_path, capsys):
    t = write_csv(tmp_path / "train.csv", train_rows(6))
    s = write_csv(tmp_path / "submission.csv", score_rows(4), with_id=True)
    code, out, _ = run(capsys, "ingest", "--train", str(t), "--score", str(s))
    assert code == 0
    assert "loaded 6 rows" in out and "loaded 4 rows" in out
    con = duckdb.connect(str(db_file), read_only=True)
    leads = con.execute(
        'select lead_id, id, source_row, is_converted, bant_submit, customer_idx, "customer_country.1" '
        "from raw.leads order by load_id, source_row"
    ).fetchall()
    assert len(leads) == 10
    assert [r[3] for r in leads[:6]] == [True, False, False, True, False, False]
    assert all(r[3] is None for r in leads[6:])
    assert [r[1] for r in leads[6:]] == [1001, 1008, 1015, 1022]
    assert all(r[1] is None for r in leads[:6])
    assert leads[0][4] == 0.5 and leads[0][5] == 100 and leads[0][6] == "/Lima/Peru"
    assert len({r[0] for r in leads}) == 10
    loads = con.execute("select file_name, rows_loaded, train_rows, score_rows from raw.loads order by load_id").fetchall()
    assert loads == [("train.csv", 6, 6, 0), ("submission.csv", 4, 0, 4)]


def test_same_file_twice_is_a_noop(db_file, tmp_path, capsys):
    t = write_csv(tmp_path / "train.csv", train_rows(3))
    assert run(capsys, "ingest", "--train", str(t))[0] == 0
    before = snapshot(db_file)
    code, out, _ = run(capsys, "ingest", "--train", str(t))
    assert code == 0 and "skipped, already loaded as load 1" in out
    assert snapshot(db_file) == before


def test_lead_ids_are_stable_across_databases(tmp_path, monkeypatch, capsys):
    t = write_csv(tmp_path / "train.csv", train_rows(4))
    ids = []
    for name in ("a.duckdb", "b.duckdb"):
        monkeypatch.setenv("LEADSCORE_DB", str(tmp_path / name))
        assert run(capsys, "ingest", "--train", str(t))[0] == 0
        con = duckdb.connect(str(tmp_path / name), read_only=True)
        ids.append(con.execute("select lead_id from raw.leads order by source_row").fetchall())
        con.close()
    assert ids[0] == ids[1]


def test_extra_columns_are_kept(db_file, tmp_path, capsys):
    # columns the format does not know (the final round's typed ones: tests/test_ingest_final_round.py)
    rows = [{**r, "crm_stage": f"stage {i + 1}", "budget_note": "1,000"} for i, r in enumerate(train_rows(2))]
    t = write_csv(tmp_path / "crm_export.csv", rows, extra=("crm_stage", "budget_note"))
    code, _, err = run(capsys, "ingest", "--train", str(t))
    assert code == 0 and "extra column(s) kept in extra_columns: crm_stage, budget_note" in err
    con = duckdb.connect(str(db_file), read_only=True)
    vals = con.execute("select extra_columns->>'crm_stage', extra_columns->>'budget_note' from raw.leads order by source_row").fetchall()
    assert vals == [("stage 1", "1,000"), ("stage 2", "1,000")]


def test_missing_file(seeded, tmp_path, capsys):
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(tmp_path / "nope.csv")], "nope.csv: no such file")


def test_empty_file(seeded, tmp_path, capsys):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "empty.csv: file is empty")


def test_header_only(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "header.csv", [])
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "header.csv: header only, no data rows")


def test_required_column_missing(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "nolead.csv", train_rows(2), drop=("lead_owner",))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "nolead.csv: required column missing: lead_owner")


def test_non_utf8_names_the_line(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "latin1.csv", train_rows(3))
    lines = p.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"engineering", b"ingenier\xeda")
    p.write_bytes(b"\n".join(lines))
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "latin1.csv: not valid UTF-8 at line 4")


def test_a_failure_in_a_later_file_rolls_back_earlier_files(seeded, tmp_path, capsys):
    good = write_csv(tmp_path / "good2.csv", train_rows(5))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(good), "--train", str(bad)], "bad.csv")


def test_unparseable_values_are_rejected_with_reason(seeded, tmp_path, capsys):
    rows = train_rows(5, start=200)  # other leads than the seeded ones (identical rows are one lead)
    rows[1]["bant_submit"] = "half"
    rows[3]["is_converted"] = "maybe"
    rows[4]["lead_owner"] = "7.5"
    p = write_csv(tmp_path / "messy.csv", rows)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 2 rows" in out
    assert "3 row(s) rejected, kept in raw.rejected_rows (first: data row 2, column bant_submit: not a number)" in err
    con = duckdb.connect(str(seeded), read_only=True)
    rej = con.execute(
        "select source_row, column_name, raw_value, reason, raw_record->>'customer_idx' "
        "from raw.rejected_rows order by source_row"
    ).fetchall()
    assert rej == [
        (2, "bant_submit", "half", "not a number", "201"),
        (4, "is_converted", "maybe", "not a label (expected true/false, 1/0, 1.0/0.0 or yes/no, any case)", "203"),
        (5, "lead_owner", "7.5", "not a whole number", "204"),
    ]
    assert con.execute("select list(source_row order by source_row) from raw.leads where load_id = 2").fetchall() == [([1, 3],)]


def test_strict_mode_fails_on_rejected_rows(seeded, tmp_path, capsys):
    rows = train_rows(3, start=200)  # other leads than the seeded ones (identical rows are rejected too)
    rows[2]["com_reg_ver_win_rate"] = "n/a"
    p = write_csv(tmp_path / "strict.csv", rows)
    assert_fails_unchanged(
        seeded, capsys, ["ingest", "--strict", "--train", str(p)],
        "strict.csv: 1 row(s) rejected (--strict); first: data row 3, column com_reg_ver_win_rate: not a number",
    )


def test_duplicate_ids_keep_the_first_and_reject_the_rest(db_file, tmp_path, capsys):
    rows = score_rows(4)
    rows[3]["id"] = rows[1]["id"]
    p = write_csv(tmp_path / "dups.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(p))
    assert code == 0 and "loaded 3 rows" in out
    assert f"duplicate id {rows[1]['id']} (first on data row 2)" in err
    con = duckdb.connect(str(db_file), read_only=True)
    assert con.execute("select count(*), count(distinct id) from raw.leads").fetchall() == [(3, 3)]


def test_path_with_quotes_and_spaces(db_file, tmp_path, capsys):
    folder = tmp_path / "it's a \"folder\" with spaces"
    folder.mkdir()
    p = write_csv(folder / "my leads; 'q'.csv", train_rows(2))
    code, out, _ = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 2 rows" in out


def test_quoted_commas_and_label_spellings(db_file, tmp_path, capsys):
    rows = [{"product_category": "a, b, c", "is_converted": v} for v in ("True", "false", "1", "0", "")]
    p = write_csv(tmp_path / "labels.csv", rows)
    assert run(capsys, "ingest", "--train", str(p))[0] == 0
    con = duckdb.connect(str(db_file), read_only=True)
    got = con.execute("select product_category, is_converted from raw.leads order by source_row").fetchall()
    assert got == [("a, b, c", True), ("a, b, c", False), ("a, b, c", True), ("a, b, c", False), ("a, b, c", None)]


def test_train_file_without_label_column_is_refused(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "nolabel.csv", score_rows(2), with_id=True, label=False)
    assert_fails_unchanged(seeded, capsys, ["ingest", "--train", str(p)], "nolabel.csv: a training file needs an 'is_converted' column")


def test_source_row_follows_file_order_on_a_larger_file(db_file, tmp_path, capsys):
    # Large enough for DuckDB to read the CSV in parallel chunks and, with nothing rejected, to
    # insert more than two row groups in parallel batches: stored in file order all the same.
    rows = [{"customer_idx": str(i), "is_converted": "False"} for i in range(260_000)]
    p = write_csv(tmp_path / "big.csv", rows)
    assert run(capsys, "ingest", "--train", str(p))[0] == 0
    assert rows_of(db_file, "select count(*) from raw.rejected_rows") == [(0,)]
    assert rows_of(db_file, "select count(*) from raw.leads where source_row <> customer_idx + 1") == [(0,)]
    in_storage = [r[0] for r in rows_of(db_file, "select source_row from raw.leads")]  # no order by: as stored
    assert in_storage == list(range(1, 260_001))


def test_labels_in_a_score_file_are_set_aside_and_every_row_is_scored(db_file, tmp_path, capsys):
    rows = score_rows(6)
    for i, r in enumerate(rows):
        r["is_converted"] = ["1", "0", "True", "False", "", "1"][i]
    p = write_csv(tmp_path / "submission_filled.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(p))
    assert code == 0 and "(0 labeled, 6 to score)" in out
    assert "5 label(s) in a file loaded as a score file set aside in raw.set_aside_labels, never trained on" in err
    assert rows_of(db_file, "select count(*), count(is_converted) from raw.leads") == [(6, 0)]
    aside = rows_of(db_file, "select id, raw_value, is_converted from raw.set_aside_labels order by source_row")
    assert aside == [(1001, "1", True), (1008, "0", False), (1015, "True", True), (1022, "False", False), (1036, "1", True)]


def test_quarantine_records_bad_files_and_does_not_retry_them_until_they_change(db_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a_good.csv", train_rows(3))
    (folder / "b_empty.csv").write_bytes(b"")
    write_csv(folder / "c_header_only.csv", [])
    (folder / "d_junk.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a picture
    files = ingest.discover_inputs(folder)
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, files, quarantine=True)
        assert [r.status for r in results] == ["loaded", "refused", "refused", "refused"]
        assert "file is empty" in results[1].message and "header only" in results[2].message
        assert "not valid UTF-8" in results[3].message
        recorded = con.execute("select file_name, status from raw.loads order by file_name").fetchall()
        assert recorded == [("a_good.csv", "loaded"), ("b_empty.csv", "refused"), ("c_header_only.csv", "refused"),
                            ("d_junk.csv", "refused")]
        again = ingest.ingest_files(con, files, quarantine=True)
        assert [r.status for r in again] == ["skipped", "refused", "refused", "refused"]
        assert all("not retried until the file changes" in r.message for r in again[1:])
        assert con.execute("select count(*) from raw.loads").fetchall() == [(4,)]
        write_csv(folder / "c_header_only.csv", train_rows(2, start=700))  # fixed: loads next time
        third = ingest.ingest_files(con, ingest.discover_inputs(folder), quarantine=True)
        assert third[2].status == "loaded"
        assert _cells_databases(con) == []  # every file's cells released, refused files' too
    finally:
        con.close()


def _cells_databases(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The in-memory databases of text cells (csv_input.read_cells) still attached."""
    return [r[0] for r in con.execute(
        "select database_name from duckdb_databases() where starts_with(database_name, '_ingest_cells')"
    ).fetchall()]


def test_each_file_of_one_transaction_reads_its_own_cells_and_a_failure_releases_them(db_file, tmp_path):
    # one transaction for both files: the second file's cells are a new table the transaction
    # has not seen yet (a name read once would keep showing the first file's rows)
    train = write_csv(tmp_path / "t.csv", train_rows(3))
    score = write_csv(tmp_path / "s.csv", score_rows(2, start=900))
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, [(train, "train"), (score, "score")])
        assert [(r.status, r.rows_loaded) for r in results] == [("loaded", 3), ("loaded", 2)]
        assert con.execute("select count(*), count(is_converted) from raw.leads").fetchall() == [(5, 3)]
        bad = write_csv(tmp_path / "bad.csv", [{**train_rows(1, start=950)[0], "bant_submit": "lots"}])
        before = con.execute("select count(*) from raw.leads").fetchall()
        try:
            ingest.ingest_files(con, [(write_csv(tmp_path / "t2.csv", train_rows(2, start=960)), "train"),
                                      (bad, "train")], strict=True)
            raise AssertionError("a rejected row under strict must refuse the file")
        except ingest.FileRefused as exc:
            assert "bad.csv" in str(exc)
        assert con.execute("select count(*) from raw.leads").fetchall() == before  # rolled back
        assert _cells_databases(con) == []
    finally:
        con.close()


def test_failed_ingest_on_a_new_path_leaves_no_database_file(db_file, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    code, _, _ = run(capsys, "ingest", "--train", str(bad))
    assert code == 1 and not db_file.exists() and not Path(f"{db_file}.wal").exists()


def test_rows_go_in_in_file_order_around_rejected_rows_on_a_larger_file(db_file, tmp_path, capsys):
    # Parallel chunks, and rejected rows that the insert leaves out with an anti-join.
    rows = [{"customer_idx": "x" if i % 997 == 0 else str(i), "is_converted": "False"} for i in range(120_000)]
    p = write_csv(tmp_path / "big.csv", rows)
    assert run(capsys, "ingest", "--train", str(p))[0] == 0
    assert rows_of(db_file, "select count(*) from raw.rejected_rows") == [(121,)]
    assert rows_of(db_file, "select count(*) from raw.leads where source_row <> customer_idx + 1") == [(0,)]
    in_storage = rows_of(db_file, "select source_row from raw.leads")  # no order by: as stored
    assert [r[0] for r in in_storage] == sorted(r[0] for r in in_storage)


def test_ingest_puts_the_connections_memory_limit_back(db_file, tmp_path):
    con = duckdb.connect(str(db_file))
    try:
        con.execute("set memory_limit = '3GiB'")
        ingest.ingest_files(con, [(write_csv(tmp_path / "t.csv", train_rows(3)), "train")])
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "3.0 GiB"
        assert ingest._memory_limit(con) == "2048MiB"
        con.execute("set memory_limit = '1GiB'")
        assert ingest._memory_limit(con) == "1.0 GiB"  # a lower limit already set is kept
    finally:
        con.close()


# -- header names: blank, spaced, quoted; a bad file in the nightly folder -------------------------

def _pandas_export(path: Path, rows: list[dict], with_id: bool = False) -> Path:
    """The file as pandas' default `DataFrame.to_csv` writes it: the index first, under a blank
    header cell."""
    import pandas as pd

    pd.read_csv(write_csv(path, rows, with_id=with_id), dtype=str, keep_default_na=False).to_csv(path)
    return path


def test_a_pandas_index_and_a_trailing_comma_are_kept_as_unnamed_columns(db_file, tmp_path, capsys):
    rows = train_rows(3)
    rows[2]["bant_submit"] = "lots"  # a rejected row keeps the unnamed cells in its record too
    p = _pandas_export(tmp_path / "pandas.csv", rows)
    p.write_text("".join(line + ",\n" for line in p.read_text().splitlines()))  # and a trailing comma
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0, err
    assert "loaded 2 rows" in out
    assert "column 1 has no name in the header (a pandas index? a trailing comma?): kept as 'unnamed_1'" in err
    assert "kept as 'unnamed_31'" in err
    assert rows_of(db_file, "select extra_columns->>'unnamed_1', extra_columns->>'unnamed_31', customer_idx "
                            "from raw.leads order by source_row") == [("0", None, 100), ("1", None, 101)]
    assert rows_of(db_file, "select extra_columns from raw.loads") == [(["unnamed_1", "unnamed_31"],)]
    assert rows_of(db_file, "select source_row, raw_record->>'unnamed_1' from raw.rejected_rows") == [(3, "2")]


def test_extra_column_names_are_the_headers_own_spaces_quotes_and_line_breaks_included(db_file, tmp_path, capsys):
    names = (" note ", 'say "hi"', "it's", "two\nlines")
    rows = [{**r, **{n: f"{n.strip()[:3]}{i}" for n in names}} for i, r in enumerate(train_rows(2))]
    p = write_csv(tmp_path / "names.csv", rows, extra=names)
    code, _, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0, err
    got = [json.loads(r[0]) for r in rows_of(db_file, "select extra_columns from raw.leads order by source_row")]
    assert got == [{n: f"{n.strip()[:3]}{i}" for n in names} for i in range(2)]


def test_nightly_loads_a_pandas_export_and_the_good_files_beside_it(db_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a_train.csv", train_rows(3))
    _pandas_export(folder / "b_pandas.csv", score_rows(2), with_id=True)
    write_csv(folder / "c_score.csv", score_rows(2, start=5000), with_id=True)
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, ingest.discover_inputs(folder), quarantine=True)
        assert [(r.status, r.rows_loaded) for r in results] == [("loaded", 3), ("loaded", 2), ("loaded", 2)]
        assert con.execute("select id, extra_columns->>'unnamed_1' from raw.leads where load_id = 2 "
                           "order by source_row").fetchall() == [(1001, "0"), (1008, "1")]
    finally:
        con.close()


def test_nightly_goes_on_past_an_unexpected_error_and_tries_that_file_again(db_file, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", train_rows(3))
    write_csv(folder / "b_bug.csv", train_rows(2, start=300))
    write_csv(folder / "c.csv", train_rows(2, start=400))
    real_load_cells = ingest._load_cells

    def load_cells(con, f, cells, sha, strict):
        result = real_load_cells(con, f, cells, sha, strict)
        if f.path.name == "b_bug.csv":  # fails after its rows are written
            raise RuntimeError("a bug in leadscore")
        return result

    monkeypatch.setattr(ingest, "_load_cells", load_cells)
    monkeypatch.delenv("LEADSCORE_DEBUG", raising=False)
    con = duckdb.connect(str(db_file))
    try:
        results = ingest.ingest_files(con, ingest.discover_inputs(folder), quarantine=True)
        assert [r.status for r in results] == ["loaded", "refused", "loaded"]
        assert "unexpected RuntimeError while loading: a bug in leadscore (a bug, not your input" in results[1].message
        assert "tried again on the next run" in results[1].summary()
        assert "RuntimeError: a bug in leadscore" in (db_file.parent / "leadscore-errors.log").read_text()
        # its transaction rolled back, and no refusal recorded: the file is not at fault
        assert con.execute("select file_name, status from raw.loads order by 1").fetchall() == [
            ("a.csv", "loaded"), ("c.csv", "loaded")]
        assert con.execute("select count(*) from raw.leads where customer_idx between 300 and 399").fetchall() == [(0,)]
        monkeypatch.setattr(ingest, "_load_cells", real_load_cells)  # leadscore fixed
        again = ingest.ingest_files(con, ingest.discover_inputs(folder), quarantine=True)
        assert [r.status for r in again] == ["skipped", "loaded", "skipped"]
        assert _cells_databases(con) == []
    finally:
        con.close()


def test_a_reexported_training_file_whose_outcomes_moved_on_says_so(db_file, tmp_path, capsys):
    """Training rows carry no id: a row whose label changed since the earlier export cannot be
    told from a new lead, so it loads as one, and the load says how many rows look like that."""
    first = train_rows(5, start=400)
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "march.csv", first)))[0] == 0
    again = [dict(r) for r in first]
    again[0]["is_converted"] = "False" if again[0]["is_converted"] == "True" else "True"  # outcome moved on
    again.append({"customer_idx": "499", "is_converted": "False"})  # a new lead
    code, out, err = run(capsys, "ingest", "--train", str(write_csv(tmp_path / "april.csv", again)))
    assert code == 0, err
    assert "1 row(s) repeat a lead of an earlier file in every column but is_converted" in out + err
    assert rows_of(db_file, "select count(*) from raw.leads where customer_idx = 400") == [(2,)]
    assert rows_of(db_file, "select count(*) from raw.leads") == [(7,)]  # 5, then the changed and the new
    # rows sent again unchanged and a new lead: no such note
    unchanged = [*first[1:3], {"customer_idx": "498", "is_converted": "True"}]
    code, out, err = run(capsys, "ingest", "--train", str(write_csv(tmp_path / "may.csv", unchanged)))
    assert code == 0 and "repeat a lead" not in out + err
    assert rows_of(db_file, "select count(*) from raw.leads") == [(8,)]


def test_strict_refuses_rows_without_ids_already_loaded(seeded, tmp_path, capsys):
    """--strict was checked before the rows without an id were matched against the leads already
    loaded: a re-sent training file whose every row was rejected loaded 0 rows and exited 0."""
    again = write_csv(tmp_path / "again.csv", train_rows(3))  # the seeded leads
    again.write_bytes(again.read_bytes().replace(b"\n", b"\r\n"))  # other bytes (no sha256 skip), same rows
    assert_fails_unchanged(
        seeded, capsys, ["ingest", "--strict", "--train", str(again)],
        "again.csv: 3 row(s) rejected (--strict); first: data row 1, column row: identical row already loaded (load 1)",
    )


def test_a_repeated_id_is_kept_by_its_first_copy_that_passes_the_other_rules(db_file, tmp_path, capsys):
    """The first copy of id 1008 has an unreadable customer_idx: the second copy loads (it was
    rejected as a duplicate of a row that never loaded, and the lead was lost); the third is a
    duplicate of the second."""
    rows = score_rows(5)
    rows[1]["customer_idx"] = "abc"
    rows[3]["id"] = rows[4]["id"] = rows[1]["id"]
    p = write_csv(tmp_path / "dups.csv", rows, with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(p))
    assert code == 0 and "loaded 3 rows" in out, err
    assert rows_of(db_file, "select source_row, column_name, reason from raw.rejected_rows order by 1") == [
        (2, "customer_idx", "not a number"),
        (5, "id", "duplicate id 1008 (kept on data row 4, its first copy that passed the other rules)"),
    ]
    assert rows_of(db_file, "select source_row, id from raw.leads order by 1") == [(1, 1001), (3, 1015), (4, 1008)]
