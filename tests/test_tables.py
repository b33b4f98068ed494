"""The Python-owned tables: raw.leads and ops.score_history carry no primary key index, and an
older database's indexed tables are rebuilt without it, rows kept, once; ops.latest_scores holds
the latest history row per lead and model, filled from the history once in an older database
and kept by each run (update_latest_scores)."""

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
        con.execute(ddl.replace("decile_in_run integer not null)",
                                "decile_in_run integer not null, primary key (lead_id, model_version, run_id))"))
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


HISTORY_ROW = ("insert into ops.score_history (lead_id, model_version, run_id, scored_at, conversion_probability, "
               "predicted_converted, cutoff, rank_in_run, decile_in_run, reason_1) values (?, ?, ?, ?::timestamp, ?, "
               "true, 0.5, 1, 1, ?)")


def test_an_older_database_gets_the_latest_score_of_each_lead_and_model_once(tmp_path):
    """A database from before ops.latest_scores: created and filled from the history by the
    first ensure_schemas, the row with the latest (scored_at, run_id) per lead and model (on equal
    times the larger run_id, as main.scored_leads always took it); not filled again after."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    _older_database(con)  # a: v1/r1 scored now
    for row in [("a", "v1", "r2", "2099-01-02 00:00:00", 0.6, "later"),
                ("a", "v2", "r3", "2099-01-01 00:00:00", 0.2, "other model"),
                ("b", "v1", "r4", "2099-01-03 00:00:00", 0.3, "same time, smaller run"),
                ("b", "v1", "r5", "2099-01-03 00:00:00", 0.4, "same time, larger run"),
                ("b", "v1", "r6", "2099-01-01 00:00:00", 0.9, "earlier, largest run")]:
        con.execute(HISTORY_ROW, list(row))
    assert not con.execute("select count(*) from duckdb_tables() where table_name = 'latest_scores'").fetchone()[0]

    tables.ensure_schemas(con)

    latest = con.execute("select lead_id, model_version, run_id, conversion_probability, reason_1 "
                         "from ops.latest_scores order by all").fetchall()
    assert latest == [("a", "v1", "r2", 0.6, "later"), ("a", "v2", "r3", 0.2, "other model"),
                      ("b", "v1", "r5", 0.4, "same time, larger run")]
    history = con.execute("select * from ops.score_history where run_id in ('r2', 'r3', 'r5') order by all").fetchall()
    assert con.execute("select * from ops.latest_scores order by all").fetchall() == history  # whole rows
    con.execute("delete from ops.latest_scores where lead_id = 'b'")
    assert tables.ensure_latest_scores(con) == 0  # not empty: never filled again


def test_a_database_without_history_gets_an_empty_latest_scores(tmp_path):
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    tables.ensure_schemas(con)
    assert con.execute("select count(*) from ops.latest_scores").fetchone() == (0,)
    columns = "select column_name, data_type from duckdb_columns() where table_name = ? order by column_index"
    assert (con.execute(columns, ["latest_scores"]).fetchall() == con.execute(columns, ["score_history"]).fetchall())


def test_a_run_replaces_the_older_latest_rows_and_keeps_later_ones(tmp_path):
    """update_latest_scores with one run's rows: a (lead, model) row older than the run's is
    replaced, one later than it (a clock that went back) is kept, new pairs are added."""
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    tables.ensure_schemas(con)
    for row in [("a", "v1", "r1", "2026-01-01 00:00:00", 0.1, "old"),
                ("b", "v1", "r9", "2026-02-01 00:00:00", 0.2, "later than the run"),
                ("c", "v2", "r1", "2026-01-01 00:00:00", 0.3, "another model")]:
        con.execute(HISTORY_ROW, list(row))
    assert tables.ensure_latest_scores(con) == 3
    con.execute("create temp table run as select * from ops.score_history limit 0")
    for lead in ("a", "b", "c", "d"):
        con.execute(HISTORY_ROW.replace("ops.score_history", "run"),
                    [lead, "v1", "r5", "2026-01-15 00:00:00", 0.5, "run r5"])
    con.execute("begin")
    con.execute("insert into ops.score_history select * from run")
    tables.update_latest_scores(con, "run")
    con.execute("commit")
    latest = con.execute("select lead_id, model_version, run_id, reason_1 from ops.latest_scores order by all").fetchall()
    assert latest == [("a", "v1", "r5", "run r5"), ("b", "v1", "r9", "later than the run"),
                      ("c", "v1", "r5", "run r5"), ("c", "v2", "r1", "another model"), ("d", "v1", "r5", "run r5")]


def test_an_evaluations_table_from_before_the_f1_interval_gains_its_columns_rows_kept(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("create schema ops")
    create = next(d for d in tables.OPS_DDL if "ops.evaluations (" in d)
    con.execute(create)  # the table as it was: the interval's columns come from later statements
    assert "f1_ci95_low" not in create
    con.execute("insert into ops.evaluations values ('e1', now()::timestamp, 'v1', 0.3, 'l.csv', 'sha', 10, 10, 0, "
                "2, 0.2, 2, 0.2, 1.0, 1.0, 1.0, 1.0, 0.3, 1.0, 1.0, 0.1, 0.05, null)")
    tables.ensure_schemas(con)
    tables.ensure_schemas(con)  # and again: nothing more to add
    columns = [r[0] for r in con.execute("select column_name from duckdb_columns() where table_name = 'evaluations' "
                                         "order by column_index").fetchall()]
    assert columns[-2:] == ["f1_ci95_low", "f1_ci95_high"]
    assert con.execute("select evaluation_id, f1_ci95_low from ops.evaluations").fetchall() == [("e1", None)]
