"""DuckDB connections and transactions.

Everything that writes goes through `transaction`, so a failure anywhere leaves the database
exactly as it was. Results are always fetched whole: DuckDB 2.x refuses new work on a
connection while a result is only partly fetched, and fetching whole is also what 1.x likes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from leadscore import config
from leadscore.errors import Busy, LeadscoreError


def connect(path: Path | None = None, read_only: bool = False, wait: float | None = None,
            create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the leadscore database, creating its folder when writing. With `create=False` (the
    commands that need data already loaded: train, score, publish, ...) a database that does not
    exist is an error, as for a reader, not a new empty file left behind by a failed command.

    leadscore's own writers never collide (they share leadscore.runlock), but a process outside
    it (a plain `dbt build`, a DuckDB shell) can hold DuckDB's file lock: then wait up to `wait`
    seconds (LEADSCORE_DB_WAIT, default 120) for it to let go, saying so once on stderr, and
    report busy (EXIT_BUSY) after.
    """
    path = path or config.db_path()
    if (read_only or not create) and not path.exists():
        raise LeadscoreError(f"database {path} does not exist yet: run `leadscore ingest` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    if wait is None:
        wait = wait_seconds()
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            text = " ".join(str(exc).split())
            if "lock" not in text.lower():
                raise LeadscoreError(f"cannot open database {path}: {text}") from exc
            if time.monotonic() >= deadline:
                raise Busy(f"busy: database {path} is held by another process ({text}); try again when it ends") from exc
            if not told:
                print(f"leadscore: waiting up to {wait:.0f} s for {path}: another process holds it "
                      "(a dbt or DuckDB session outside leadscore?)", file=sys.stderr, flush=True)
                told = True
            time.sleep(0.5)


def wait_seconds() -> float:
    """How long a command waits for a process outside leadscore to let go of the database."""
    return float(os.environ.get("LEADSCORE_DB_WAIT", "120"))


@contextmanager
def session(path: Path | None = None, read_only: bool = False, wait: float | None = None,
            create: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with db.session() as con:` opens the database (as `connect`) and always closes it, so no
    command holds DuckDB's file lock a moment longer than its step needs."""
    con = connect(path, read_only=read_only, wait=wait, create=create)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (KeyboardInterrupt included)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def settings(con: duckdb.DuckDBPyConnection, **values: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """`with db.settings(con, memory_limit="2GiB"):` sets DuckDB settings for a block and puts the
    previous values back after it (an error included), so that what one step needs (a memory
    cap for a big load) does not outlive the step on a connection the caller keeps using."""
    previous = {name: scalar(con, "select current_setting(?)", [name]) for name in values}
    for name, value in values.items():
        con.execute(f"set {name} = {quote_literal(value)}")
    try:
        yield con
    finally:
        for name, value in previous.items():
            con.execute(f"set {name} = {quote_literal(str(value))}")


_SIZE_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
               "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def memory_limit_at_most(current: str, cap_bytes: int) -> str:
    """The memory_limit a step caps itself to: `cap_bytes`, or the connection's own limit
    (`current`, as DuckDB shows it: '18.8 GiB') where that is lower already; an unreadable
    `current` gets the cap."""
    number, _, unit = current.partition(" ")
    try:
        current_bytes = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        current_bytes = float("inf")
    return current if current_bytes <= cap_bytes else f"{cap_bytes // 2**20}MiB"


def fetch_all(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple | None:
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = fetch_one(con, sql, params)
    return None if row is None else row[0]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return bool(
        scalar(
            con,
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        )
    )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
