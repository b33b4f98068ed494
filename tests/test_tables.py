"""The Python-owned tables: raw.leads and ops.score_history carry no primary key index, and an
older database's indexed tables are rebuilt without it, rows kept, once."""

from __future__ import annotations

import duckdb

from leadscore import tables


def _primary_keys(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select schema_name, table_name from duckdb_constraints() "
        "where constraint_type = 'PRIMARY KEY' and table_name in ('leads', 'score_history') order by all"
    ).fetchall()


def _older_database(con: duckdb.DuckDBPyConnection) -> None:
    """The tables as the versions before this one created them: the same columns, with keys."""
    for ddl in tables.RAW_DDL:
        con.execute(ddl.replace("lead_id varchar not null,", "lead_id varchar primary key,"))
    for ddl in tables.OPS_DDL:
        con.execute(ddl.replace("decile_in_run integer not null\n",
                                "decile_in_run integer not null,\n primary key (lead_id, model_version, run_id)\n"))
    con.execute("insert into raw.leads (lead_id, load_id, source_row, id, loaded_at) values "
                "('a', 1, 1, 10, now()::timestamp), ('b', 1, 2, null, now()::timestamp)")
    con.execute("insert into ops.score_history (lead_id, model_version, run_id, scored_at, conversion_probability, "
                "predicted_converted, cutoff, rank_in_run, decile_in_run, reason_1) values "
                "('a', 'v1', 'r1', now()::timestamp, 0.7, true, 0.5, 1, 1, 'why')")
    con.execute("create view main.lead_count as select count(*) as n from raw.leads")


def test_a_new_database_has_no_index_on_the_bulk_tables(tmp_path):
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    tables.ensure_schemas(con)
    assert _primary_keys(con) == []
    # the key columns keep their NOT NULL
    not_null = con.execute("select count(*) from duckdb_constraints() where table_name = 'leads' "
                           "and constraint_type = 'NOT NULL' and constraint_column_names = ['lead_id']").fetchone()[0]
    assert not_null == 1


def test_an_older_database_is_rebuilt_without_the_index_rows_kept(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    _older_database(con)
    assert _primary_keys(con) == [("ops", "score_history"), ("raw", "leads")]
    leads = con.execute("select * from raw.leads order by lead_id").fetchall()
    history = con.execute("select * from ops.score_history").fetchall()

    con.execute("begin")
    tables.ensure_schemas(con)
    con.execute("commit")

    assert _primary_keys(con) == []
    assert con.execute("select * from raw.leads order by lead_id").fetchall() == leads
    assert con.execute("select * from ops.score_history").fetchall() == history
    assert con.execute("select n from main.lead_count").fetchone() == (2,)  # views read the new table
    # a key the index used to refuse now goes in (dbt's unique tests report it instead)
    con.execute("insert into raw.leads (lead_id, load_id, source_row, loaded_at) values ('a', 2, 1, now()::timestamp)")
    assert tables.drop_bulk_indexes(con) == []  # once only


def test_a_failed_rebuild_leaves_the_table_as_it_was(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    _older_database(con)
    con.execute("begin")
    try:
        tables.drop_bulk_indexes(con)
        raise RuntimeError("killed before commit")
    except RuntimeError:
        con.execute("rollback")
    assert _primary_keys(con) == [("ops", "score_history"), ("raw", "leads")]
    assert con.execute("select count(*) from raw.leads").fetchone() == (2,)
