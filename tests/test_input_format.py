"""The input columns are listed once, in leadscore.input_format.LEAD_COLUMNS: the raw.leads DDL
is built from it, and the staging YAML (the source raw.leads and the model stg_leads) must list
exactly those columns, in the same order, with the one rename staging does."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import yaml
from leadscore import tables
from leadscore.input_format import LEAD_COLUMNS

STAGING = Path(__file__).resolve().parents[1] / "models_sql" / "staging"

# the only rename staging does (a dot in a column name needs quoting everywhere)
RENAMES = {"customer_country.1": "customer_country_1"}
# columns ingest adds around the input columns (raw.leads), and what stg_leads keeps of them
RAW_BOOKKEEPING_BEFORE = ["lead_id", "load_id", "source_row", "id"]
RAW_BOOKKEEPING_AFTER = ["is_converted", "extra_columns", "loaded_at"]
STG_BOOKKEEPING = ["lead_id", "id", "load_id", "source_row", "split", "is_converted"]

INPUT_NAMES = [c.name for c in LEAD_COLUMNS]
STG_INPUT_NAMES = [RENAMES.get(n, n) for n in INPUT_NAMES]


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
    assert names == RAW_BOOKKEEPING_BEFORE + INPUT_NAMES + RAW_BOOKKEEPING_AFTER
    # and that is the table ingest creates (its DDL is built from LEAD_COLUMNS)
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
    names = [c["name"] for c in _yaml_columns("_models.yml", "models", "stg_leads")]
    assert names == STG_BOOKKEEPING + STG_INPUT_NAMES


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
    assert outputs == STG_BOOKKEEPING + STG_INPUT_NAMES
    for raw_name, renamed in RENAMES.items():
        assert f'"{raw_name}" as {renamed}' in select
