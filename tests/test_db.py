"""db.py: connections that always close, transactions that roll back on any error, opening a
database held by a process outside leadscore (wait, then busy), and the small query helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from helpers import train_rows, write_csv
from leadscore import db
from leadscore.errors import Busy, LeadscoreError

REPO = Path(__file__).resolve().parents[1]


def _is_closed(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("select 1")
    except duckdb.ConnectionException:
        return True
    return False


def test_session_closes_the_connection_after_the_block(db_file):
    with db.session() as con:
        con.execute("create table t as select 1 as x")
    assert _is_closed(con)
    with db.session(read_only=True) as ro:  # the file is free again, and holds what was written
        assert db.scalar(ro, "select x from t") == 1
    assert _is_closed(ro)


def test_session_closes_the_connection_even_on_error(db_file):
    with pytest.raises(ZeroDivisionError):
        with db.session() as con:
            1 / 0
    assert _is_closed(con)
    other = duckdb.connect(str(db_file))  # nothing in this process holds the file any more
    other.close()


def test_transaction_commits_on_success_and_rolls_back_on_any_exception():
    con = duckdb.connect()
    con.execute("create table t (x integer)")
    with db.transaction(con):
        con.execute("insert into t values (1)")
    with pytest.raises(ValueError):
        with db.transaction(con):
            con.execute("insert into t values (2)")
            raise ValueError("half-way")
    with pytest.raises(KeyboardInterrupt):  # an interrupted command writes nothing either
        with db.transaction(con):
            con.execute("delete from t")
            raise KeyboardInterrupt
    assert db.fetch_all(con, "select x from t") == [(1,)]
    con.close()


def test_read_only_on_a_missing_database_says_ingest_first(db_file):
    with pytest.raises(LeadscoreError, match="does not exist yet: run `leadscore ingest` first"):
        db.connect(read_only=True)
    assert not db_file.exists()


def test_a_file_that_is_not_a_database_is_a_one_line_error(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a DuckDB file " * 20)
    with pytest.raises(LeadscoreError, match="cannot open database .*junk.duckdb") as exc:
        db.connect(junk, wait=0)
    assert not isinstance(exc.value, Busy)


def test_helpers_fetch_whole_results_and_quote():
    con = duckdb.connect()
    name = 'odd "name"'
    table = f"s.{db.quote_ident(name)}"
    con.execute(f"create schema s; create table {table} (v varchar)")
    value = db.quote_literal("it's")
    con.execute(f"insert into {table} values ({value})")
    assert table == 's."odd ""name"""'
    assert db.fetch_one(con, f"select v from {table}") == ("it's",)
    assert db.fetch_one(con, "select 1 where false") is None and db.scalar(con, "select 1 where false") is None
    assert db.scalar(con, f"select count(*) from {table} where v = ?", ["it's"]) == 1
    assert db.table_exists(con, "s", name) and not db.table_exists(con, "main", name)
    con.close()


def test_a_foreign_holder_of_the_database_is_waited_for(db_file, tmp_path):
    """A plain `dbt build` or a DuckDB shell holds DuckDB's own lock; a leadscore writer waits for
    it instead of failing half-way, and says busy (75) if it never lets go."""
    env = dict(os.environ, LEADSCORE_DB=str(db_file), LEADSCORE_HOME=str(REPO))
    t = write_csv(tmp_path / "t.csv", train_rows(2))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "sys.stdin.readline(); con.close()", str(db_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        gave_up = subprocess.run([sys.executable, "-m", "leadscore.cli", "ingest", "--train", str(t)],
                                 env={**env, "LEADSCORE_DB_WAIT": "1"}, capture_output=True, text=True, timeout=120)
        assert gave_up.returncode == 75 and "busy: database" in gave_up.stderr
        waiter = subprocess.Popen([sys.executable, "-m", "leadscore.cli", "ingest", "--train", str(t)],
                                  env={**env, "LEADSCORE_DB_WAIT": "120"}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert "waiting up to 120 s" in waiter.stderr.readline()
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert "loaded 2 rows" in out
    finally:
        holder.kill()
        holder.wait()
