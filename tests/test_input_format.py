"""The input columns are listed once, in leadscore.input_format.ALL_LEAD_COLUMNS (the 28
LEAD_COLUMNS, then the final round's FINAL_COLUMNS): the raw.leads DDL is built from them, and the
staging YAML (the source raw.leads and the model stg_leads) must list exactly those columns, in
the table's order, with the one rename staging does."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import yaml
from leadscore import tables
from leadscore.input_format import ALL_LEAD_COLUMNS, FINAL_COLUMNS, LEAD_COLUMNS

STAGING = Path(__file__).resolve().parents[1] / "models_sql" / "staging"

# the only rename staging does (a dot in a column name needs quoting everywhere)
RENAMES = {"customer_country.1": "customer_country_1"}
# columns ingest adds around the input columns (raw.leads), and what stg_leads keeps of them
RAW_BOOKKEEPING_BEFORE = ["lead_id", "load_id", "source_row", "id"]
RAW_BOOKKEEPING_AFTER = ["is_converted", "extra_columns", "loaded_at"]
STG_BOOKKEEPING = ["lead_id", "id", "load_id", "source_row", "split", "is_converted"]
STG_BOOKKEEPING_AFTER = ["extra_columns"]  # the file's other columns (JSON), last

INPUT_NAMES = [c.name for c in ALL_LEAD_COLUMNS]
# raw.leads: the 28 in file order, the bookkeeping columns, then the final round's six, which
# tables.py adds in place to a table created before them
RAW_NAMES = (
    RAW_BOOKKEEPING_BEFORE
    + [c.name for c in LEAD_COLUMNS]
    + RAW_BOOKKEEPING_AFTER
    + [c.name for c in FINAL_COLUMNS]
)
STG_INPUT_NAMES = [RENAMES.get(n, n) for n in INPUT_NAMES]
STG_NAMES = STG_BOOKKEEPING + STG_INPUT_NAMES + STG_BOOKKEEPING_AFTER


def _yaml_columns(file: str, kind: str, name: str) -> list[dict]:
    doc = yaml.safe_load((STAGING / file).read_text())
    if kind == "sources":
        entries = [t for s in doc["sources"] for t in s["tables"]]
    else:
        entries = doc["models"]
    return next(e for e in entries if e["name"] == name)["columns"]


def test_raw_leads_source_lists_exactly_the_input_columns():
    columns = _yaml_columns("_sources.yml", "sources", "leads")
    names = [c["name"] for c in columns]
    assert names == RAW_NAMES
    assert sorted(set(names) - set(RAW_BOOKKEEPING_BEFORE + RAW_BOOKKEEPING_AFTER)) == sorted(INPUT_NAMES)
    # and that is the table ingest creates (its DDL is built from LEAD_COLUMNS and FINAL_COLUMNS)
    con = duckdb.connect()
    try:
        tables.ensure_schemas(con)
        actual = [r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'leads' order by ordinal_position"
        ).fetchall()]
    finally:
        con.close()
    assert names == actual
    # a name that is not a plain identifier is declared quoted
    for c in columns:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", c["name"]):
            assert c.get("quote") is True, c["name"]
    assert all(c.get("description") for c in columns)


def test_stg_leads_lists_exactly_the_input_columns_renamed():
    columns = _yaml_columns("_models.yml", "models", "stg_leads")
    assert [c["name"] for c in columns] == STG_NAMES
    assert all(c.get("description") for c in columns)


def test_stg_leads_sql_selects_the_columns_in_yaml_order():
    """stg_leads.sql renames only: its final select names every column once, in this order."""
    sql = (STAGING / "stg_leads.sql").read_text()
    select = sql[sql.index("final as ("):]
    select = select[select.index("select") + len("select"):select.index("from source")]
    outputs = []
    for item in select.split(","):
        item = " ".join(item.split())
        alias = re.search(r"\bas (\w+)$", item)
        outputs.append(alias.group(1) if alias else item.strip('"'))
    assert outputs == STG_NAMES
    for raw_name, renamed in RENAMES.items():
        # quoted by the adapter: double quotes on DuckDB, backticks on Spark (issue 14)
        assert f"{{{{ adapter.quote('{raw_name}') }}}} as {renamed}" in select
