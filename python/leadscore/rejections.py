"""Rows turned away: everything written to raw.rejected_rows, with the reason and the record.

Row-level problems do not stop a load: a row is kept in `raw.rejected_rows` with the file, row
number, column, raw value, reason and its whole record, and the command warns (`--strict` in
leadscore.ingest turns any rejected row into a refused file). A row is rejected when:
- a cell breaks its column's rule (leadscore.column_rules, from input_format.LEAD_COLUMNS and
  the final-round columns the file has, input_format.FINAL_COLUMNS);
- its `id` repeats in the same file: the first copy that passes the other rules keeps it;
- it is a lead already loaded. A lead's identity is its `id` when it has one: a row with an id
  already in `raw.leads` is rejected ("already loaded"), so a lead is loaded, scored and
  exported once. A row without an id (the file has no id column, or the row's id cell is
  blank) is known by its content: an identical row already loaded by an earlier file (a
  re-exported file) is rejected the same way; identical rows within one file are all kept.
  Content is the 28 lead columns and the label, and the lead's date where both rows have one
  (`reject_known_rows`): a qualifier-format row sent again in a final-round file is the same
  lead, two leads that differ only in their dates are not.
Rows an earlier version let into raw.leads that break a rule of today are moved here as well
(`quarantine_loaded_rows`), so that they cannot fail the dbt tests of every later night.

The functions read the file being loaded: its text cells (`cells`, leadscore.csv_input.Cells,
whose `row` is the SQL for a data row's number and `record` for its whole record) and the temp
view `_ingest_typed` (the typed rows, leadscore.ingest).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from leadscore import db
from leadscore.column_rules import cell, cell_checks, int_expr, loaded_row_checks, rule_passes
from leadscore.csv_input import Cells
from leadscore.input_format import ID_COLUMN, ID_RULE, LEAD_COLUMNS, Column


def reject_rule_breaks(
    con: duckdb.DuckDBPyConnection, path: Path, load_id: int, has_id: bool, check_label: bool, cells: Cells,
    final: tuple[Column, ...] = (),
) -> None:
    """One row per (data row, column) problem, with the whole raw record, so nothing is lost;
    `final`: the final-round columns the file has, whose rules apply too.

    One scan of the cells for all the rules (a scan per rule cost more than reading the file):
    a cheap test per cell (column_rules.rule_passes) lets the usual row through; only the few
    rows it stops get their exact reasons (column_rules.rule_problem) worked out, the cells with
    one unnested, and their record as JSON."""
    checks = cell_checks(has_id, check_label, final)
    all_pass = "\n                    and ".join(passes for _, _, passes in checks)
    items = ", ".join(
        f"{{'column_name': {db.quote_literal(name)}, 'raw_value': {cell(name)}, 'reason': {reason}}}"
        for name, reason, _ in checks
    )
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, source_row, p['column_name'], p['raw_value'], p['reason'], raw_record, now()::timestamp
        from (
            select source_row, raw_record, unnest(problems) as p
            from (
                select {cells.row} as source_row, {cells.record} as raw_record,
                    list_filter([{items}], lambda x: x['reason'] is not null) as problems
                from {cells.table} as s
                where not (
                    {all_pass}
                )
            )
        )
        """,
        [load_id, str(path.resolve())],
    )


def reject_repeated_ids(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, cells: Cells) -> None:
    """An id that repeats in the file is kept by its first copy that passed the other rules
    (reject_rule_breaks runs first: its rows for this load are the copies that did not); every
    copy after that one is rejected, naming the row that kept it. Keeping the first copy
    outright lost the lead when that copy was rejected for another cell (an unreadable
    customer_idx) and a later copy was fine. Copies before the kept one are rejected already,
    with their own reasons; when no copy passed, every copy after the first is rejected as a
    duplicate too, as it always was. Only ids that pass the id rule count: one out of range or
    not whole already has that reason, and read as a number it could equal another (two ids
    above 2^53 - 1 can share a double).

    The ids that repeat are found by a grouping (no window over the whole file), and only their
    rows are joined back, to the rows already rejected and for the record."""
    con.execute(
        f"""
        insert into raw.rejected_rows
        with repeated as (
            select {int_expr(ID_COLUMN)} as id, min({cells.row}) as first_row
            from {cells.table} as s
            where {int_expr(ID_COLUMN)} is not null and {rule_passes(ID_RULE)}
            group by 1
            having count(*) > 1
        ),
        kept as (
            select d.id, d.first_row,
                coalesce(min({cells.row}) filter (where r.source_row is null), d.first_row) as kept_row
            from {cells.table} as s
            inner join repeated as d on d.id = {int_expr(ID_COLUMN)}
            left join (select distinct source_row from raw.rejected_rows where load_id = ?) as r
                on r.source_row = {cells.row}
            group by 1, 2
        )
        select ?, ?, {cells.row}, 'id', {cell(ID_COLUMN)},
            'duplicate id ' || {cell(ID_COLUMN)} || case when k.kept_row = k.first_row
                then ' (first on data row ' || k.kept_row || ')'
                else ' (kept on data row ' || k.kept_row || ', its first copy that passed the other rules)' end,
            {cells.record}, now()::timestamp
        from {cells.table} as s
        inner join kept as k on k.id = {int_expr(ID_COLUMN)}
        where {cells.row} > k.kept_row
        """,
        [load_id, load_id, str(path.resolve())],
    )


def reject_known_ids(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, cells: Cells) -> None:
    """A lead is its id: an id already in raw.leads (an earlier file, or an earlier file of this
    run) is not loaded again, so it is never scored or exported twice. Rows already rejected
    for this load are left out by an anti-join."""
    con.execute(
        f"""
        insert into raw.rejected_rows
        select ?, ?, {cells.row}, 'id', {cell(ID_COLUMN)},
            'id ' || l.id || ' already loaded (load ' || l.load_id || ', data row ' || l.source_row
                || '); a lead is loaded once',
            {cells.record}, now()::timestamp
        from {cells.table} as s
        inner join raw.leads as l on l.id = {int_expr(ID_COLUMN)}
        anti join (select source_row from raw.rejected_rows where load_id = ?) as r on r.source_row = {cells.row}
        """,
        [load_id, str(path.resolve()), load_id],
    )


# What a row without an id is compared on. Not the final round's columns: a lead first loaded
# from a qualifier-format file (they are null there) and sent again in a final-round file (they
# are filled) would no longer be the same lead and would load twice. lead_date alone is compared
# where both rows have one (reject_known_rows): a lead's creation date does not change when it is
# re-exported, and it tells apart two leads that match on everything else (a customer's repeated
# inquiry); the other five are descriptive and may be edited between exports.
_CONTENT_COLUMNS = [c.name for c in LEAD_COLUMNS] + ["is_converted"]
_DATE_COLUMN = "lead_date"


def _content_key(alias: str, columns: list[str] = _CONTENT_COLUMNS) -> str:
    parts = ", ".join(f"coalesce({alias}.{db.quote_ident(c)}::varchar, chr(0))" for c in columns)
    return f"md5(concat_ws(chr(31), {parts}))"


def relabelled_rows(con: duckdb.DuckDBPyConnection, load_id: int) -> int:
    """How many id-less rows of this load repeat an earlier load's lead in every lead column (and
    the date, where both have one) but not in is_converted: a re-exported training file whose
    outcomes moved on. Without an id such a row cannot be told from a new lead with the same
    columns, so it loads as one, and training then holds both outcomes; the load says so
    (leadscore.ingest's notes) rather than doing it silently."""
    columns = [c.name for c in LEAD_COLUMNS]
    d = db.quote_ident(_DATE_COLUMN)
    return int(db.scalar(
        con,
        f"""
        with mine as (
            select {_content_key('l', columns)} as key, l.{d} as d, l.is_converted as y
            from raw.leads as l where l.load_id = ? and l.id is null
        ),
        earlier as (
            select distinct {_content_key('l', columns)} as key, l.{d} as d, l.is_converted as y
            from raw.leads as l where l.load_id < ? and l.id is null
        )
        select count(*) from mine as m
        where exists (
            select 1 from earlier as e
            where e.key = m.key and (e.d = m.d or e.d is null or m.d is null)
                and e.y is distinct from m.y
        ) and not exists (
            select 1 from earlier as e
            where e.key = m.key and (e.d = m.d or e.d is null or m.d is null)
                and e.y is not distinct from m.y
        )
        """,
        [load_id, load_id],
    ))


def reject_known_rows(con: duckdb.DuckDBPyConnection, path: Path, load_id: int, cells: Cells) -> None:
    """Rows without an id are known by their content (`_CONTENT_COLUMNS`): the k-th copy of a row
    in this file is rejected when earlier loads already hold at least k copies (a re-exported
    file loads only its new rows; identical rows within one file all stay). A row without an id
    is one in a file without an id column or one whose id cell is blank (`_ingest_typed.id` null
    either way): a blank id escaped both the id and the content match, and loaded again from
    every later file.

    lead_date counts where both sides have one. Copies are matched in two passes: first on the
    content and the same date (both without one included), then what is left crosses formats:
    a dated row of this file against undated earlier copies (a qualifier-format file sent again
    as a final-round file), an undated row against dated earlier copies (the other way round).
    Two dated copies with different dates never match: they are two leads."""
    if not db.scalar(con, "select count(*) from raw.leads where id is null"):
        return
    if not db.scalar(con, "select count(*) from _ingest_typed where id is null"):
        return  # the usual score file: every row has its id
    d = db.quote_ident(_DATE_COLUMN)
    con.execute(
        f"""
        insert into raw.rejected_rows
        with t as (
            select source_row, {_content_key('t')} as key, t.{d} as d from _ingest_typed as t
            where t.id is null
        ),
        earlier as (
            select {_content_key('l')} as key, l.{d} as d, count(*) as copies, min(l.load_id) as first_load
            from raw.leads as l
            where l.id is null
            group by 1, 2
        ),
        -- pass 1: the same content and the same date (or neither has one)
        numbered as (
            select t.*, row_number() over (partition by key, d order by source_row) as copy from t
        ),
        same_date as (
            select n.source_row, e.first_load
            from numbered as n
            inner join earlier as e on n.key = e.key and n.d is not distinct from e.d and n.copy <= e.copies
        ),
        -- what pass 1 left of the earlier copies, by whether they have a date
        file_copies as (select key, d, count(*) as n from t group by 1, 2),
        left_over as (
            select e.key, e.d is null as undated, sum(greatest(e.copies - coalesce(f.n, 0), 0)) as copies,
                min(e.first_load) filter (where e.copies > coalesce(f.n, 0)) as first_load
            from earlier as e
            left join file_copies as f on e.key = f.key and e.d is not distinct from f.d
            group by 1, 2
        ),
        -- pass 2: across formats, a dated row against undated earlier copies and the other way round
        unmatched as (
            select t.source_row, t.key, t.d is null as undated,
                row_number() over (partition by t.key, t.d is null order by t.source_row) as copy
            from t
            where t.source_row not in (select source_row from same_date)
        ),
        cross_format as (
            select u.source_row, o.first_load
            from unmatched as u
            inner join left_over as o on u.key = o.key and u.undated <> o.undated and u.copy <= o.copies
        ),
        known as (select * from same_date union all select * from cross_format)
        select ?, ?, k.source_row, 'row', null,
            'identical row already loaded (load ' || k.first_load || '); a lead without an id is '
                || 'known by its content, so a re-sent row is not loaded twice',
            {cells.record}, now()::timestamp
        from known as k
        inner join {cells.table} as s on {cells.row} = k.source_row
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

