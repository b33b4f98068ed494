"""rejections.py: how a lead is known across loads (an id is loaded once; a row without an id
is known by its content) and rows an earlier version let in that break today's rules."""

from __future__ import annotations

import duckdb

from helpers import rows_of, run, score_rows, train_rows, write_csv
from leadscore.input_format import LEAD_COLUMN_NAMES


def test_an_id_is_loaded_once_across_files_and_loads(db_file, tmp_path, capsys):
    first = write_csv(tmp_path / "day1.csv", score_rows(4), with_id=True)
    assert run(capsys, "ingest", "--score", str(first))[0] == 0
    # the same file re-exported with two more leads, and another file of the same run with one of them
    again = write_csv(tmp_path / "day1_reexport.csv", score_rows(6), with_id=True)
    other = write_csv(tmp_path / "other.csv", score_rows(1, start=1029) + score_rows(1, start=5000), with_id=True)
    code, out, err = run(capsys, "ingest", "--score", str(again), "--score", str(other))
    assert code == 0
    assert "day1_reexport.csv: loaded 2 rows" in out and "other.csv: loaded 1 rows" in out
    assert "id 1001 already loaded (load 1, data row 1); a lead is loaded once" in err
    assert rows_of(db_file, "select count(*), count(distinct id) from raw.leads") == [(7, 7)]
    assert rows_of(db_file, "select reason from raw.rejected_rows where raw_value = '1029'") == [
        ("id 1029 already loaded (load 2, data row 5); a lead is loaded once",)]


def test_an_id_that_breaks_the_id_rule_gets_that_reason_alone(db_file, tmp_path, capsys):
    """Read as numbers, 9007199254740992 and 9007199254740993 are one double, and 12.5 rounds to
    13: each such id has its own reason (out of range, not a whole number), never also 'duplicate
    id', and the whole id 13 loads."""
    rows = score_rows(4)
    for row, value in zip(rows, ["9007199254740992", "9007199254740993", "12.5", "13"], strict=True):
        row["id"] = value
    path = write_csv(tmp_path / "ids.csv", rows, with_id=True)
    code, _, _ = run(capsys, "ingest", "--score", str(path))
    assert code == 0
    assert rows_of(db_file, "select raw_value, reason from raw.rejected_rows order by source_row") == [
        ("9007199254740992", "out of range: must be between 0 and 9,007,199,254,740,991"),
        ("9007199254740993", "out of range: must be between 0 and 9,007,199,254,740,991"),
        ("12.5", "not a whole number"),
    ]
    assert rows_of(db_file, "select id from raw.leads") == [(13,)]


def test_a_reexported_file_without_ids_loads_only_its_new_rows(db_file, tmp_path, capsys):
    rows = train_rows(4, start=300)
    rows.append(dict(rows[0]))  # a true duplicate within one file is kept
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t1.csv", rows)))[0] == 0
    more = rows + [dict(rows[0])] + train_rows(2, start=900)
    code, out, _ = run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t2.csv", more)))
    assert code == 0 and "t2.csv: loaded 3 rows" in out  # the third copy of row 1, and two new rows
    assert rows_of(db_file, "select count(*) from raw.leads") == [(8,)]


def test_rows_let_in_by_an_earlier_version_are_moved_out(db_file, tmp_path, capsys):
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t.csv", train_rows(3, start=650))))[0] == 0
    con = duckdb.connect(str(db_file))
    con.execute("update raw.leads set bant_submit = 2 where customer_idx = 651")  # as the old door allowed
    con.close()
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "u.csv", train_rows(1, start=660))))[0] == 0
    assert rows_of(db_file, "select count(*) from raw.leads where customer_idx = 651") == [(0,)]
    assert rows_of(db_file, "select column_name, reason from raw.rejected_rows") == [
        ("bant_submit", "not one of 0, 0.25, 0.5, 0.75, 1 (loaded before this rule was enforced; moved out of raw.leads)")]


def test_a_row_with_a_blank_id_is_known_by_its_content(db_file, tmp_path, capsys):
    """A file with an id column whose cell is blank on a row: the row is known by its content, as
    in a file without ids, so a re-sent file does not load it again (it loaded from every file)."""
    rows = score_rows(4)
    rows[1]["id"] = rows[2]["id"] = ""
    rows[2]["customer_idx"] = "4321"
    assert run(capsys, "ingest", "--score", str(write_csv(tmp_path / "a.csv", rows, with_id=True)))[0] == 0
    new_lead = {**score_rows(1)[0], "id": "", "customer_idx": "9876"}
    code, out, err = run(capsys, "ingest", "--score", str(write_csv(tmp_path / "b.csv", rows + [new_lead], with_id=True)))
    assert code == 0 and "b.csv: loaded 1 rows" in out, err
    known = ("identical row already loaded (load 1); a lead without an id is known by its content, "
             "so a re-sent row is not loaded twice")
    assert rows_of(db_file, "select source_row, column_name, reason from raw.rejected_rows order by 1") == [
        (1, "id", "id 1001 already loaded (load 1, data row 1); a lead is loaded once"),
        (2, "row", known),
        (3, "row", known),
        (4, "id", "id 1022 already loaded (load 1, data row 4); a lead is loaded once"),
    ]
    assert rows_of(db_file, "select load_id, source_row, customer_idx from raw.leads where id is null order by 1, 2") == [
        (1, 2, 1234), (1, 3, 4321), (2, 5, 9876)]


def test_a_rejected_rows_record_is_the_whole_row_whatever_its_columns_are_called(db_file, tmp_path, capsys):
    """`to_json(s)` took a column named `s` for the cells' alias and kept that one cell as the
    record. Every way a row is rejected keeps the whole row, under the header's names."""
    extra = ("s", "rowid", "l", "t", "r")

    def named(rows: list[dict]) -> list[dict]:
        return [{**row, "s": f"s{n}", "rowid": "x", "l": "l", "t": "t", "r": "r"} for n, row in enumerate(rows, 1)]

    train = named(train_rows(2, start=830))
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t1.csv", train, extra=extra)))[0] == 0
    bad = named(train_rows(3, start=830))
    bad[2]["bant_submit"] = "abc"  # rows 1 and 2: already loaded (by content); row 3: a rule broken
    assert run(capsys, "ingest", "--train", str(write_csv(tmp_path / "t2.csv", bad, extra=extra)))[0] == 0
    assert run(capsys, "ingest", "--score", str(write_csv(tmp_path / "s1.csv", named(score_rows(1)), with_id=True,
                                                          extra=extra)))[0] == 0
    scores = named(score_rows(2))
    scores.append({**scores[1], "s": "s3"})  # row 1: id already loaded; row 3: a duplicate id of row 2
    assert run(capsys, "ingest", "--score", str(write_csv(tmp_path / "s2.csv", scores, with_id=True, extra=extra)))[0] == 0
    got = rows_of(db_file, "select load_id, source_row, column_name, raw_record->>'s', raw_record->>'customer_idx', "
                           "json_keys(raw_record) from raw.rejected_rows order by 1, 2")
    train_header = [*LEAD_COLUMN_NAMES, "is_converted", *extra]
    assert got == [
        (2, 1, "row", "s1", "830", train_header),
        (2, 2, "row", "s2", "831", train_header),
        (2, 3, "bant_submit", "s3", "832", train_header),
        (4, 1, "id", "s1", "1234", ["id", *train_header]),
        (4, 3, "id", "s3", "1234", ["id", *train_header]),
    ]
