"""column_rules.py: the column rules of input_format as SQL, enforced at the door (a row that
breaks one is kept in raw.rejected_rows with its reason) and mirrored by the dbt source tests on
raw.leads, so a row that got in can never fail a dbt test later."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from helpers import rows_of, run, train_rows, write_csv
from leadscore import column_rules, db
from leadscore.input_format import FINAL_COLUMNS, ID_RULE, LEAD_COLUMNS

REPO = Path(__file__).resolve().parents[1]
COLUMNS = {c.name: c for c in LEAD_COLUMNS}

BAD_VALUES = [
    ("lead_owner", "", "required value missing"),
    ("customer_idx", " ", "required value missing"),
    ("bant_submit", "2", "not one of 0, 0.25, 0.5, 0.75, 1"),
    ("bant_submit", "0.3", "not one of 0, 0.25, 0.5, 0.75, 1"),
    ("com_reg_ver_win_rate", "1.5", "out of range: must be between 0 and 1"),
    ("ver_win_rate_x", "-0.1", "out of range: must be between 0 and 1"),
    ("ver_win_ratio_per_bu", "7", "out of range: must be between 0 and 1"),
    ("ver_cus", "2", "not one of 0, 1"),
    ("ver_pro", "-1", "not one of 0, 1"),
    ("idit_strategic_ver", "5", "not one of 0, 1"),
    ("historical_existing_cnt", "-3", "out of range: must be between 0 and 1,000,000"),
    ("lead_desc_length", "-1", "out of range: must be between 0 and 1,000,000"),
]


# -- at the door (leadscore ingest) ------------------------------------------------------------

def test_every_rule_rejects_its_bad_value_at_ingest_with_a_reason(db_file, tmp_path, capsys):
    rows = train_rows(len(BAD_VALUES) + 2, start=500)
    for i, (column, value, _) in enumerate(BAD_VALUES):
        rows[i][column] = value
    p = write_csv(tmp_path / "domain.csv", rows)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 2 rows" in out
    assert f"{len(BAD_VALUES)} row(s) rejected" in err
    got = rows_of(db_file, "select source_row, column_name, coalesce(trim(raw_value), ''), reason "
                  "from raw.rejected_rows order by source_row")
    assert got == [(i + 1, c, v.strip(), r) for i, (c, v, r) in enumerate(BAD_VALUES)]
    # what got in satisfies every rule the dbt source tests check
    assert rows_of(db_file, "select count(*) from raw.leads where lead_owner is null or customer_idx is null "
                   "or bant_submit not in (0, .25, .5, .75, 1) or com_reg_ver_win_rate not between 0 and 1") == [(0,)]


def test_huge_numbers_are_rejected_at_the_door(db_file, tmp_path, capsys):
    rows = train_rows(3, start=800)
    rows[0]["historical_existing_cnt"] = "1e300"
    rows[1]["lead_desc_length"] = "1e18"
    p = write_csv(tmp_path / "huge.csv", rows)
    code, out, err = run(capsys, "ingest", "--train", str(p))
    assert code == 0 and "loaded 1 rows" in out
    assert rows_of(db_file, "select column_name, reason from raw.rejected_rows order by source_row") == [
        ("historical_existing_cnt", "out of range: must be between 0 and 1,000,000"),
        ("lead_desc_length", "out of range: must be between 0 and 1,000,000"),
    ]


# -- the mirror in dbt -----------------------------------------------------------------------------

def test_dbt_source_tests_mirror_the_rules_in_one_place():
    """input_format.LEAD_COLUMNS is where a rule lives; the dbt tests on raw.leads say the same."""
    sources = yaml.safe_load((REPO / "models_sql" / "staging" / "_sources.yml").read_text())
    leads = next(t for t in sources["sources"][0]["tables"] if t["name"] == "leads")
    tests = {c["name"]: c.get("data_tests", []) for c in leads["columns"]}
    for col in LEAD_COLUMNS:
        declared = tests.get(col.name, [])
        names = {t if isinstance(t, str) else next(iter(t)) for t in declared}
        assert ("not_null" in names) == col.required, col.name
        if col.allowed is not None:
            acc = next(t["accepted_values"] for t in declared if isinstance(t, dict) and "accepted_values" in t)
            assert sorted(acc["arguments"]["values"]) == sorted(col.allowed), col.name
            assert acc.get("config", {}).get("severity", "error") == "error", col.name
        elif col.min_value is not None:
            rng = next(t["between"] for t in declared if isinstance(t, dict) and "between" in t)
            assert (rng["arguments"]["min_value"], rng["arguments"]["max_value"]) == (col.min_value, col.max_value)
        else:
            assert names <= {"not_null"}, col.name


# -- the SQL itself, on a one-column table of text cells (no file, no CLI) ---------------------------

def _reasons(column, cells: list[str | None]) -> list[str | None]:
    """The reason SQL of `column` evaluated on each text cell."""
    con = duckdb.connect()
    try:
        con.execute(f"create table s ({db.quote_ident(column.name)} varchar, n integer)")
        con.executemany("insert into s values (?, ?)", [[c, i] for i, c in enumerate(cells)])
        return [r[0] for r in con.execute(f"select {column_rules.rule_problem(column)} from s order by n").fetchall()]
    finally:
        con.close()


def test_a_whole_number_column_names_each_kind_of_bad_cell():
    got = _reasons(COLUMNS["lead_owner"], ["7", " 12.0 ", "", None, "seven", "inf", "7.5", "1e19", "-1", "2e16"])
    assert got == [None, None, "required value missing", "required value missing", "not a number",
                   "not a finite number", "not a whole number", "integer out of range",
                   "out of range: must be between 0 and 9,007,199,254,740,991", "out of range: must be between 0 and 9,007,199,254,740,991"]


def test_an_id_a_double_cannot_hold_exactly_is_out_of_range_not_another_id():
    """9007199254740993 reads as the double 9007199254740992: taken in, it would be stored as a
    different customer (or, as a lead id, clash with that one). Only ids a double holds exactly pass."""
    assert _reasons(COLUMNS["customer_idx"], ["9007199254740991", "9007199254740992", "9007199254740993"]) == [
        None, "out of range: must be between 0 and 9,007,199,254,740,991", "out of range: must be between 0 and 9,007,199,254,740,991"]
    assert _reasons(ID_RULE, ["9007199254740993"]) == ["out of range: must be between 0 and 9,007,199,254,740,991"]


def test_optional_columns_accept_an_empty_cell_and_check_the_rest():
    assert _reasons(COLUMNS["bant_submit"], ["", "0.25", "1", "0.3", "nan"]) == [
        None, None, None, "not one of 0, 0.25, 0.5, 0.75, 1", "not a finite number"]
    assert _reasons(ID_RULE, ["1001", "", "1.5", "-3"]) == [
        None, None, "not a whole number", "out of range: must be between 0 and 9,007,199,254,740,991"]


@pytest.mark.parametrize("cell, expected", [
    ("True", True), (" yes ", True), ("1", True), ("1.0", True),
    ("FALSE", False), ("no", False), ("0", False), ("0.0", False),
    ("", None), (None, None), ("maybe", None),
])
def test_label_spellings_map_to_a_boolean(cell, expected):
    con = duckdb.connect()
    try:
        con.execute("create table s (is_converted varchar)")
        con.execute("insert into s values (?)", [cell])
        assert con.execute(f"select {column_rules.label_expr()} from s").fetchone()[0] is expected
    finally:
        con.close()


def test_cell_problems_cover_the_id_and_label_only_when_asked():
    plain = [c for c, _ in column_rules.cell_problems(has_id=False, check_label=False)]
    both = [c for c, _ in column_rules.cell_problems(has_id=True, check_label=True)]
    assert "id" not in plain and "is_converted" not in plain
    assert both == [*plain, "id", "is_converted"]
    assert {c.name for c in LEAD_COLUMNS if c.required or c.sql_type in ("BIGINT", "DOUBLE")} == set(plain)


# A cell that rule_passes lets through must have no reason: the rejection check only works out
# reasons for the cells it stops (leadscore.rejections.reject_rule_breaks).
_TRICKY_CELLS = [
    None, "", " ", "0", "1", " 1 ", "1.0", "0.25", "0.3", "-0", "-1", "7", "7.5", " 12.0 ", "1e3", "1e19",
    "-1e19", "2e16", "9007199254740992", "9007199254740993", "1000000", "1000000.5", "1_000", "+3", ".5",
    "5.", "nan", "NaN", "inf", "-inf", "Infinity", "abc", "0x10", "1,5", "\t2", "2\n", "yes", "True", "2024-01-31",
]


@pytest.mark.parametrize("column", [*LEAD_COLUMNS, *FINAL_COLUMNS, ID_RULE], ids=lambda c: c.name)
def test_rule_passes_lets_through_only_cells_without_a_reason(column):
    con = duckdb.connect()
    try:
        con.execute(f"create table s ({db.quote_ident(column.name)} varchar, n integer)")
        con.executemany("insert into s values (?, ?)", [[c, i] for i, c in enumerate(_TRICKY_CELLS)])
        reason = column_rules.rule_problem(column) or "null"
        rows = con.execute(
            f"select n, {column_rules.rule_passes(column)}, {reason} from s as s order by n"
        ).fetchall()
    finally:
        con.close()
    for n, passes, why in rows:
        assert passes is True or passes is False, (column.name, _TRICKY_CELLS[n])
        if passes:
            assert why is None, (column.name, _TRICKY_CELLS[n], why)
    # and it is a real filter: the plain good cells pass
    if column.sql_type in ("BIGINT", "DOUBLE"):
        assert any(p for _, p, _ in rows)


def test_cell_checks_pair_each_reason_with_its_pass_test():
    checks = column_rules.cell_checks(has_id=True, check_label=True, final=FINAL_COLUMNS)
    assert [(n, r) for n, r, _ in checks] == column_rules.cell_problems(True, True, FINAL_COLUMNS)
