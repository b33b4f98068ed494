"""Ingesting the final round's columns (issue 12): lead_date, lead_description, customer_history,
lead_from_channel, transfer_agreement and expected_budget load typed when a file has them and as
null when it does not, so qualifier-format and final-round files load side by side; their cells
break rules like the 28's; any other extra column is kept as JSON and profiled in the load's
result; a lead without an id is recognised across the two formats."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from helpers import rows_of, run, train_rows, write_csv
from leadscore import column_rules, ingest
from leadscore.input_format import FINAL_COLUMN_NAMES, FINAL_COLUMNS

FINAL = {c.name: c for c in FINAL_COLUMNS}
TYPED = "lead_date, lead_description, customer_history, lead_from_channel, transfer_agreement, expected_budget"


def final_rows(n: int, start: int = 100, **cells: str) -> list[dict]:
    """Training rows with every final-round column filled (dates one day apart)."""
    return [
        {
            **r,
            "lead_date": f"2024-03-{i + 1:02d}",
            "lead_description": "Need 20 displays for our lobby",
            "customer_history": "yes",
            "lead_from_channel": "web form",
            "transfer_agreement": "no",
            "expected_budget": "$10,000 - $50,000",
            **cells,
        }
        for i, r in enumerate(train_rows(n, start=start))
    ]


def _ingest(db_file, files):
    """ingest_files as the nightly job calls it: one transaction per file, role from the file."""
    con = duckdb.connect(str(db_file))
    try:
        return ingest.ingest_files(con, [(p, "auto") for p in files], quarantine=True)
    finally:
        con.close()


def test_a_final_round_file_loads_its_columns_typed(db_file, tmp_path, capsys):
    rows = final_rows(6)
    spellings = [  # (lead_date, customer_history, transfer_agreement) as CRM exports write them
        ("2024-03-05", "yes", "no"),
        ("2024/03/06", " Y ", "N"),
        ("2024-03-07 14:22:01", "TRUE", "False"),
        (" 2024-03-08 ", "1", "0"),
        ("", "", ""),
        ("2024-3-9", "No", "YES"),
    ]
    for r, (d, h, t) in zip(rows, spellings):
        r.update(lead_date=d, customer_history=h, transfer_agreement=t)
    rows[4].update(lead_description="  ", lead_from_channel=" event ", expected_budget="")
    # the final columns after the 28, in any order, around another extra column
    order = ("expected_budget", "transfer_agreement", "lead_score_vendor", "lead_date", "customer_history",
             "lead_from_channel", "lead_description")
    p = write_csv(tmp_path / "final.csv", rows, extra=order)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 6 rows" in out and "final-round columns: all 6" in out
    assert "rejected" not in err
    got = rows_of(db_file, f"select {TYPED} from raw.leads order by source_row")
    assert got == [
        (dt.date(2024, 3, 5), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000"),
        (dt.date(2024, 3, 6), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000"),
        (dt.date(2024, 3, 7), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000"),
        (dt.date(2024, 3, 8), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000"),
        (None, None, None, "event", None, None),
        (dt.date(2024, 3, 9), "Need 20 displays for our lobby", False, "web form", True, "$10,000 - $50,000"),
    ]
    types = dict(rows_of(db_file, "select column_name, data_type from information_schema.columns "
                                  "where table_schema = 'raw' and table_name = 'leads'"))
    assert {c: types[c] for c in FINAL_COLUMN_NAMES} == {c.name: c.sql_type for c in FINAL_COLUMNS}
    # not extra columns any more: only the unknown one is in the JSON and in the note
    keys = rows_of(db_file, "select distinct json_keys(extra_columns) from raw.leads")
    assert keys == [(["lead_score_vendor"],)]
    assert "extra column(s) kept in extra_columns: lead_score_vendor;" in err
    assert rows_of(db_file, "select extra_columns from raw.loads") == [(["lead_score_vendor"],)]


def test_a_qualifier_file_and_a_final_round_file_load_together(db_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    qualifier = write_csv(folder / "a_qualifier.csv", train_rows(3, start=100))
    final = write_csv(folder / "b_final.csv", final_rows(2, start=200), extra=FINAL_COLUMN_NAMES)
    partial = write_csv(folder / "c_partial.csv", final_rows(1, start=300), extra=("lead_date",))
    discovered = [p for p, _ in ingest.discover_inputs(folder)]
    assert discovered == [qualifier, final, partial]
    results = _ingest(db_file, discovered)
    assert [(r.status, r.rows_loaded, r.final_columns, r.extra_columns) for r in results] == [
        ("loaded", 3, [], []),
        ("loaded", 2, list(FINAL_COLUMN_NAMES), []),
        ("loaded", 1, ["lead_date"], []),
    ]
    assert "final-round" not in results[0].summary()
    assert "final-round columns: lead_date" in results[2].summary()
    got = rows_of(db_file, f"select customer_idx, {TYPED}, extra_columns from raw.leads order by customer_idx")
    assert got == [
        (100, None, None, None, None, None, None, None),
        (101, None, None, None, None, None, None, None),
        (102, None, None, None, None, None, None, None),
        (200, dt.date(2024, 3, 1), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000", None),
        (201, dt.date(2024, 3, 2), "Need 20 displays for our lobby", True, "web form", False, "$10,000 - $50,000", None),
        (300, dt.date(2024, 3, 1), None, None, None, None, None, None),
    ]


def test_a_bad_date_or_flag_is_a_rejected_row_naming_the_column(db_file, tmp_path, capsys):
    rows = final_rows(5, start=400)
    rows[0]["lead_date"] = "05/03/2024"
    rows[1]["lead_date"] = "2024-02-30"
    rows[2]["customer_history"] = "maybe"
    rows[3]["transfer_agreement"] = "si"
    p = write_csv(tmp_path / "bad.csv", rows, extra=FINAL_COLUMN_NAMES)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 1 rows" in out
    assert "4 row(s) rejected" in err and "column lead_date: not a date" in err
    date_rule = "not a date: YYYY-MM-DD, YYYY/MM/DD or YYYY-MM-DD HH:MM:SS"
    flag_rule = "not a yes/no flag: yes/no, y/n, true/false or 1/0"
    assert rows_of(db_file, "select source_row, column_name, raw_value, reason from raw.rejected_rows "
                            "order by source_row") == [
        (1, "lead_date", "05/03/2024", date_rule),
        (2, "lead_date", "2024-02-30", date_rule),
        (3, "customer_history", "maybe", flag_rule),
        (4, "transfer_agreement", "si", flag_rule),
    ]
    # --strict names the column and the value
    p2 = write_csv(tmp_path / "bad2.csv", final_rows(2, start=500, lead_date="yesterday"), extra=FINAL_COLUMN_NAMES)
    code, _, err = run(capsys, "ingest", "--strict", "--train", str(p2))
    assert code != 0 and "column lead_date: not a date" in err and "'yesterday'" in err


def test_other_extra_columns_are_kept_as_json_and_profiled(db_file, tmp_path, capsys):
    vendor = ["A", "B", "", "A", "A", "C", "B", "A", "", "A", " A ", "B"]  # 10 of 12 filled, 3 distinct
    rows = train_rows(12, start=700)
    for r, v in zip(rows, vendor):
        r.update(lead_score_vendor=v, campaign="spring", notes="")
    p = write_csv(tmp_path / "extra.csv", rows, extra=("lead_score_vendor", "campaign", "notes"))
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0
    profile = ("extra column 'lead_score_vendor': 83% filled, 3 distinct; "
               "extra column 'campaign': 100% filled, 1 distinct; extra column 'notes': 0% filled, 0 distinct")
    assert profile in out  # the summary line, which the nightly log prints too
    assert "extra column(s) kept in extra_columns: lead_score_vendor, campaign, notes; " + profile in err
    # still queryable by its own name, as it was in the file (an empty cell is a JSON null)
    assert rows_of(db_file, "select json_extract_string(extra_columns, '$.lead_score_vendor') from raw.leads "
                            "order by source_row") == [(v or None,) for v in vendor]
    more = [{**r, "campaign": "summer"} for r in train_rows(2, start=790)]
    results = _ingest(db_file, [write_csv(tmp_path / "more.csv", more, extra=("campaign",))])
    assert results[0].extra_profile == [("campaign", 1.0, 1)]
    assert "extra column 'campaign': 100% filled, 1 distinct" in results[0].message


def test_a_profile_describes_the_whole_file_and_never_rounds_to_0_or_100(db_file, tmp_path):
    rows = train_rows(4, start=800)
    for r, v in zip(rows, ("x", "", "y", "y")):
        r["vendor"] = v
    rows[2]["bant_submit"] = "7"  # a rejected row's cell is still part of what the file brings
    [r] = _ingest(db_file, [write_csv(tmp_path / "p.csv", rows, extra=("vendor",))])
    assert r.rows_loaded == 3 and r.extra_profile == [("vendor", 0.75, 2)]
    # the same leads sent again (an extra column is not part of a lead's content) load nothing
    # new, and the load still says what the file's extra columns hold
    rows[1]["vendor"] = "z"
    [again] = _ingest(db_file, [write_csv(tmp_path / "p_again.csv", rows, extra=("vendor",))])
    assert again.rows_loaded == 0 and again.extra_profile == [("vendor", 1.0, 3)]
    assert [ingest._percent(x) for x in (0.0, 0.004, 0.5, 0.996, 1.0)] == ["0%", "1%", "50%", "99%", "100%"]


def test_a_final_round_column_in_the_wrong_case_is_pointed_out(seeded, tmp_path, capsys):
    p = write_csv(tmp_path / "cased.csv", final_rows(2, start=900), extra=("Lead_Date",))
    code, _, err = run(capsys, "ingest", "--train", str(p))
    assert code != 0 and "'Lead_Date' should be 'lead_date'" in err


def test_a_lead_without_an_id_is_known_across_the_two_formats(db_file, tmp_path):
    qualifier = train_rows(3, start=100)
    # the same three leads exported again with the final round's columns, plus one new lead
    again = [{**q, **f} for q, f in zip(qualifier, final_rows(3, start=100))] + final_rows(1, start=150)
    [r1, r2] = _ingest(db_file, [write_csv(tmp_path / "q.csv", qualifier),
                                 write_csv(tmp_path / "f.csv", again, extra=FINAL_COLUMN_NAMES)])
    assert (r1.rows_loaded, r2.rows_loaded, r2.rows_rejected) == (3, 1, 3)
    reason = ("identical row already loaded (load 1); a lead without an id is known by its content, "
              "so a re-sent row is not loaded twice")
    assert rows_of(db_file, "select distinct reason from raw.rejected_rows") == [(reason,)]
    # a final-round file sent again (same dates) loads only a further copy; lead 150 on another
    # date is another lead. Leads 100-102 were first loaded without a date: a dated copy, on any
    # date, is taken for them (nothing tells them apart), as a qualifier file sent again would be.
    later = [{**r, "lead_date": "2024-09-01"} for r in again]
    [r3, r4] = _ingest(db_file, [write_csv(tmp_path / "f_again.csv", again + [dict(again[3])], extra=FINAL_COLUMN_NAMES),
                                 write_csv(tmp_path / "later.csv", later, extra=FINAL_COLUMN_NAMES)])
    assert (r3.rows_loaded, r3.rows_rejected) == (1, 4)  # only the second copy of lead 150 is new
    assert (r4.rows_loaded, r4.rows_rejected) == (1, 3)
    assert rows_of(db_file, "select lead_date, count(*) from raw.leads where customer_idx = 150 group by 1 order by 1") == [
        (dt.date(2024, 3, 1), 2), (dt.date(2024, 9, 1), 1)]
    # and the other way round: dated leads sent again in a qualifier-format file
    [r5] = _ingest(db_file, [write_csv(tmp_path / "q_again.csv", train_rows(1, start=150) * 4)])
    assert (r5.rows_loaded, r5.rows_rejected) == (1, 3)  # three dated copies of lead 150 were loaded
    assert rows_of(db_file, "select count(*) from raw.leads") == [(7,)]


@pytest.mark.parametrize("column, cell, reason", [
    ("lead_date", "2024-03-05", None), ("lead_date", "2024/03/05", None), ("lead_date", "2024-03-05 14:22:01", None),
    ("lead_date", "", None), ("lead_date", None, None),
    ("lead_date", "5 March 2024", "not a date: YYYY-MM-DD, YYYY/MM/DD or YYYY-MM-DD HH:MM:SS"),
    ("lead_date", "2024-03-05T14:22:01", "not a date: YYYY-MM-DD, YYYY/MM/DD or YYYY-MM-DD HH:MM:SS"),
    ("customer_history", "Yes", None), ("customer_history", "n", None), ("customer_history", " 0 ", None),
    ("customer_history", "1.0", "not a yes/no flag: yes/no, y/n, true/false or 1/0"),
    ("transfer_agreement", "agreed", "not a yes/no flag: yes/no, y/n, true/false or 1/0"),
])
def test_date_and_flag_rules_as_sql(column, cell, reason):
    con = duckdb.connect()
    try:
        con.execute(f'create table s ("{column}" varchar)')
        con.execute("insert into s values (?)", [cell])
        assert con.execute(f"select {column_rules.rule_problem(FINAL[column])} from s").fetchone()[0] == reason
    finally:
        con.close()


def test_only_the_final_columns_a_file_has_get_rules_and_text_columns_have_none():
    plain = [c for c, _ in column_rules.cell_problems(has_id=False, check_label=False)]
    with_final = [c for c, _ in column_rules.cell_problems(False, False, FINAL_COLUMNS)]
    assert with_final == [*plain, "lead_date", "customer_history", "transfer_agreement"]
    assert column_rules.cast_expr(FINAL["lead_date"], present=False) == 'null::DATE as "lead_date"'
