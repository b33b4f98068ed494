"""Rows turned away: everything written to raw.rejected_rows, with the reason and the record.

Row-level problems do not stop a load: a row is kept in `raw.rejected_rows` with the file, row
number, column, raw value, reason and its whole record, and the command warns (`--strict` in
leadscore.ingest turns any rejected row into a refused file). A row is rejected when:
- a cell breaks its column's rule (leadscore.column_rules, from input_format.LEAD_COLUMNS and
  the final-round columns the file has, input_format.FINAL_COLUMNS);
- its `id` repeats an earlier row's in the same file;
- it is a lead already loaded. A lead's identity is its `id` when it has one: a row with an id
  already in `raw.leads` is rejected ("already loaded"), so a lead is loaded, scored and
  exported once. A row without an id is known by its content: an identical row already loaded
  by an earlier file (a re-exported file) is rejected the same way; identical rows within one
  file are all kept.
Rows an earlier version let into raw.leads that break a rule of today are moved here as well
(`quarantine_loaded_rows`), so that they cannot fail the dbt tests of every later night.

The functions read the temp tables of the file being loaded: `_ingest_src` (its text cells,
leadscore.csv_input) and `_ingest_typed` (the typed rows, leadscore.ingest); `row` is the SQL
for a data row's number there.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from leadscore import db
from leadscore.column_rules import cell, cell_problems, int_expr, loaded_row_checks
from leadscore.input_format import ID_COLUMN, LEAD_COLUMNS, Column


def reject_rule_breaks(
    con: duckdb.DuckDBPyConnection, path: Path, load_id: int, has_id: bool, check_label: bool, row: str,
    final: tuple[Column, ...] = (),
) -> None:
    """One row per (data row, column) problem, with the whole raw record, so nothing is lost;
    `final`: the final-round columns the file has, whose rules apply too."""
    problems = cell_problems(has_id, check_label, final)
    union = "\nunion all\n".join(
        f"select {row} as source_row, {db.quote_literal(name)} as column_name, "
        f"{cell(name)} as raw_value, {reason} as reason, to_json(s) as raw_record "
        f"from _ingest_src as s where ({reason}) is not null"
        for name, reason in problems
    )
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, source_row, column_name, raw_value, reason, raw_record, now()::timestamp
        from ({union})
        """,
        [load_id, str(path.resolve())],
    )


def reject_repeated_ids(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, row: str) -> None:
    """Every occurrence after the first of an id in the file is rejected, naming the row that kept it."""
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, source_row, 'id', raw_id,
            'duplicate id ' || raw_id || ' (first on data row ' || first_row || ')',
            raw_record, now()::timestamp
        from (
            select
                {row} as source_row,
                {cell(ID_COLUMN)} as raw_id,
                to_json(s) as raw_record,
                min({row}) over (partition by {int_expr(ID_COLUMN)}) as first_row
            from _ingest_src as s
            where {int_expr(ID_COLUMN)} is not null
        )
        where source_row > first_row
        """,
        [load_id, str(path.resolve())],
    )


def reject_known_ids(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, row: str) -> None:
    """A lead is its id: an id already in raw.leads (an earlier file, or an earlier file of this
    run) is not loaded again, so it is never scored or exported twice."""
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, {row}, 'id', {cell(ID_COLUMN)},
            'id ' || l.id || ' already loaded (load ' || l.load_id || ', data row ' || l.source_row
                || '); a lead is loaded once',
            to_json(s), now()::timestamp
        from _ingest_src as s
        inner join raw.leads as l on l.id = {int_expr(ID_COLUMN)}
        where {row} not in (select source_row from raw.rejected_rows where load_id = ?)
        """,
        [load_id, str(path.resolve()), load_id],
    )


_CONTENT_COLUMNS = [c.name for c in LEAD_COLUMNS] + ["is_converted"]


def _content_key(alias: str) -> str:
    parts = ", ".join(f"coalesce({alias}.{db.quote_ident(c)}::varchar, chr(0))" for c in _CONTENT_COLUMNS)
    return f"md5(concat_ws(chr(31), {parts}))"


def reject_known_rows(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, first_rowid: int) -> None:
    """Rows without an id are known by their content: the k-th copy of a row in this file is
    rejected when earlier loads already hold at least k copies (a re-exported file loads only
    its new rows; identical rows within one file all stay)."""
    if not db.scalar(con, "select count(*) from raw.leads where id is null"):
        return
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, t.source_row, 'row', null,
            'identical row already loaded (load ' || k.first_load || '); a lead without an id is '
                || 'known by its content, so a re-sent row is not loaded twice',
            to_json(s), now()::timestamp
        from (
            select source_row, {_content_key('t')} as key,
                row_number() over (partition by {_content_key('t')} order by source_row) as copy
            from _ingest_typed as t
        ) as t
        inner join (
            select {_content_key('l')} as key, count(*) as copies, min(l.load_id) as first_load
            from raw.leads as l
            where l.id is null
            group by 1
        ) as k on t.key = k.key and t.copy <= k.copies
        inner join _ingest_src as s on s.rowid = t.source_row + {first_rowid} - 1
        """,
        [load_id, str(path.resolve())],
    )


def quarantine_loaded_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Move rows that an earlier version let in but that break a column rule today out of
    raw.leads into raw.rejected_rows (with the reason and the whole record), so a row accepted
    once can never fail the dbt tests of every later night. Runs inside the caller's
    transaction; returns the number of leads moved."""
    if not db.table_exists(con, "raw", "leads"):
        return 0
    checks = loaded_row_checks()
    any_bad = " or ".join(f"coalesce({cond}, false)" for _, cond, _ in checks)
    if not db.scalar(con, f"select count(*) from raw.leads as l where {any_bad}"):
        return 0  # the usual case: one scan, nothing to move
    union = "\nunion all\n".join(
        f"select l.lead_id, l.load_id, l.source_row, {db.quote_literal(name)} as column_name, "
        f"{'l.' + db.quote_ident(name)}::varchar as raw_value, "
        f"{db.quote_literal(reason + ' (loaded before this rule was enforced; moved out of raw.leads)')} as reason, "
        "to_json(l) as raw_record from raw.leads as l "
        f"where {cond}"
        for name, cond, reason in checks
    )
    con.execute(f"create or replace temp table _bad_loaded as {union}")
    moved = int(db.scalar(con, "select count(distinct lead_id) from _bad_loaded"))
    if moved:
        con.execute(
            """
            insert into raw.rejected_rows
            select b.load_id, coalesce(ld.file_path, ''), b.source_row, b.column_name, b.raw_value, b.reason,
                b.raw_record, now()::timestamp
            from _bad_loaded as b
            left join raw.loads as ld on b.load_id = ld.load_id
            """
        )
        con.execute("delete from raw.leads where lead_id in (select lead_id from _bad_loaded)")
    con.execute("drop table _bad_loaded")
    return moved

