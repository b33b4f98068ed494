"""The per-cell column rules of leadscore.input_format, as DuckDB SQL.

Every rule lives once, in `input_format.LEAD_COLUMNS` and `FINAL_COLUMNS` (plus `ID_RULE` and
the label spellings); this module turns it into SQL over a lead file's text cells (`s."column"` in
its cells table, leadscore.csv_input.Cells): the reason a cell breaks its rule (an
unparseable number, date, flag or label, a value outside its domain, a required value missing;
null when it is fine), the cast of a cell to the type raw.leads stores, and the same rules over
rows already typed in raw.leads (for rows an earlier version let in). A final-round column the
file lacks has no cell: it is cast to a typed null and has no rule to break. Only strings are
built here; leadscore.rejections runs them and leadscore.ingest casts with them.
"""

from __future__ import annotations

from leadscore import db
from leadscore.input_format import (
    FALSE_LABELS,
    ID_COLUMN,
    ID_RULE,
    LABEL_COLUMN,
    LABEL_WORDS,
    LEAD_COLUMNS,
    TRUE_LABELS,
    Column,
)


def cell(name: str) -> str:
    """A text cell of the lead file being loaded."""
    return f"s.{db.quote_ident(name)}"


def int_expr(name: str) -> str:
    """The cell as a BIGINT, read through a double so that '12.0' is 12; null when not a number."""
    return f"try_cast(try_cast(trim({cell(name)}) as double) as bigint)"


def date_expr(column: Column) -> str:
    """The cell as a DATE, read with the column's date spellings (a time of day is dropped);
    null when empty or not a date."""
    formats = "[" + ", ".join(db.quote_literal(f) for f in column.date_formats) + "]"
    return f"try_strptime(nullif(trim({cell(column.name)}), ''), {formats})::date"


def flag_expr(column: Column) -> str:
    """The cell as a BOOLEAN from the column's yes/no spellings (any case, trimmed); null when
    empty or not a flag."""
    v = f"lower(trim({cell(column.name)}))"
    trues = ", ".join(db.quote_literal(x) for x in column.true_values)
    falses = ", ".join(db.quote_literal(x) for x in column.false_values)
    return f"case when {v} in ({trues}) then true when {v} in ({falses}) then false else null end"


def cast_expr(column: Column, present: bool = True) -> str:
    """The cell cast to the type raw.leads stores (a blank text becomes null), named as its
    column; a typed null when the file has no such column (`present=False`)."""
    name, sql_type = column.name, column.sql_type
    if not present:
        expr = f"null::{sql_type}"
    elif sql_type == "BIGINT":
        expr = int_expr(name)
    elif sql_type == "DOUBLE":
        expr = f"try_cast(trim({cell(name)}) as double)"
    elif sql_type == "DATE":
        expr = date_expr(column)
    elif sql_type == "BOOLEAN":
        expr = flag_expr(column)
    else:
        expr = f"nullif(trim({cell(name)}), '')"
    return f"{expr} as {db.quote_ident(name)}"


def label_expr() -> str:
    """The label cell as a boolean (null when empty or not a label)."""
    trues = ", ".join(db.quote_literal(v) for v in TRUE_LABELS)
    falses = ", ".join(db.quote_literal(v) for v in FALSE_LABELS)
    v = f"lower(trim({cell(LABEL_COLUMN)}))"
    return f"case when {v} in ({trues}) then true when {v} in ({falses}) then false else null end"


def _num(v: float) -> str:
    return repr(float(v))


def rule_problem(column: Column) -> str | None:
    """SQL for the reason a cell breaks its column's rules (input_format.LEAD_COLUMNS,
    FINAL_COLUMNS), or null; None when the column has no rule (optional text)."""
    raw = f"trim({cell(column.name)})"
    empty = f"nullif({raw}, '') is null"
    missing = "'required value missing'" if column.required else "null"
    parsed = {"DATE": date_expr, "BOOLEAN": flag_expr}.get(column.sql_type)
    if parsed is not None:  # a date or a flag: null after parsing a non-empty cell is the problem
        reason = db.quote_literal("not " + column.rule_text().removeprefix("required; "))
        return f"case when {empty} then {missing} when {parsed(column)} is null then {reason} else null end"
    if column.sql_type not in ("BIGINT", "DOUBLE"):
        return f"case when {empty} then {missing} else null end" if column.required else None
    d = f"try_cast({raw} as double)"
    checks = [
        f"when {empty} then {missing}",
        f"when {d} is null then 'not a number'",
        f"when not isfinite({d}) then 'not a finite number'",
    ]
    if column.sql_type == "BIGINT":
        checks.append(f"when {d} <> round({d}) then 'not a whole number'")
        checks.append(f"when abs({d}) > 9.0e18 then 'integer out of range'")
    if column.allowed is not None:
        values = ", ".join(_num(v) for v in column.allowed)
        checks.append(f"when {d} not in ({values}) then {db.quote_literal('not ' + column.rule_text())}")
    if column.min_value is not None:
        checks.append(
            f"when {d} < {_num(column.min_value)} or {d} > {_num(column.max_value)} "
            f"then {db.quote_literal('out of range: must be ' + column.rule_text().removeprefix('required; '))}"
        )
    return f"case {' '.join(checks)} else null end"


def rule_passes(column: Column) -> str:
    """SQL true only for a cell that surely passes its column's rules (`rule_problem` is null):
    a cheap filter, so that the exact reason is worked out only for the few cells it does not
    pass. A number is read once (the exact reason reads it up to five times, which made the rule
    check cost as much as reading the file); a cell it does not pass may still be fine.

    The cast here skips `trim`: DuckDB's cast to a number ignores the spaces around it, so a cell
    it reads is one that `rule_problem`'s trimmed cast reads as the same number."""
    ranged = column.allowed is not None or column.min_value is not None
    if column.sql_type not in ("BIGINT", "DOUBLE") or not ranged:
        reason = rule_problem(column)
        return "true" if reason is None else f"(({reason}) is null)"
    d = f"try_cast({cell(column.name)} as double)"
    checks = []
    if column.allowed is not None:  # every allowed value is finite and whole where it must be
        checks.append(f"{d} in ({', '.join(_num(v) for v in column.allowed)})")
    if column.min_value is not None:  # finite within the range
        checks.append(f"{d} between {_num(column.min_value)} and {_num(column.max_value)}")
    if column.sql_type == "BIGINT" and column.allowed is None:
        checks.append(f"{d} = round({d})")
        if column.max_value > 9.0e18 or column.min_value < -9.0e18:
            checks.append(f"abs({d}) <= 9.0e18")
    ok = f"coalesce({' and '.join(checks)}, false)"
    if not column.required:  # an empty optional cell passes
        ok = f"({ok} or nullif(trim({cell(column.name)}), '') is null)"
    return ok


def cell_problems(has_id: bool, check_label: bool, final: tuple[Column, ...] = ()) -> list[tuple[str, str]]:
    """(column, SQL for the reason its cell is rejected, or null) for every column with a rule:
    the 28, the final-round columns the file has (`final`), the `id` column when the file has
    one, the label when it is read (training files)."""
    problems: list[tuple[str, str]] = []
    for c in (*LEAD_COLUMNS, *final):
        reason = rule_problem(c)
        if reason:
            problems.append((c.name, reason))
    if has_id:
        problems.append((ID_COLUMN, rule_problem(ID_RULE)))
    if check_label:
        allowed = ", ".join(db.quote_literal(v) for v in (*TRUE_LABELS, *FALSE_LABELS))
        raw = f"lower(trim({cell(LABEL_COLUMN)}))"
        problems.append(
            (
                LABEL_COLUMN,
                f"case when nullif({raw}, '') is null then null when {raw} in ({allowed}) then null "
                f"else {db.quote_literal(f'not a label (expected {LABEL_WORDS}, any case)')} end",
            )
        )
    return problems


def cell_checks(
    has_id: bool, check_label: bool, final: tuple[Column, ...] = ()
) -> list[tuple[str, str, str]]:
    """`cell_problems` with, for each column, SQL true only when its cell surely passes
    (`rule_passes`): (column, reason SQL, passes SQL)."""
    columns = {c.name: c for c in (*LEAD_COLUMNS, *final)}
    columns[ID_COLUMN] = ID_RULE
    return [
        (name, reason, rule_passes(columns[name]) if name in columns else f"(({reason}) is null)")
        for name, reason in cell_problems(has_id, check_label, final)
    ]


def loaded_row_checks() -> list[tuple[str, str, str]]:
    """(column, SQL condition true when a typed value in `raw.leads as l` breaks the rule, reason)
    for every rule on a typed value: required, allowed values, range."""
    checks = []
    for c in LEAD_COLUMNS:
        v = f"l.{db.quote_ident(c.name)}"
        if c.required:
            checks.append((c.name, f"{v} is null", "required value missing"))
        if c.allowed is not None:
            values = ", ".join(_num(x) for x in c.allowed)
            checks.append((c.name, f"{v} not in ({values})", "not " + c.rule_text()))
        elif c.min_value is not None:
            checks.append((
                c.name, f"({v} < {_num(c.min_value)} or {v} > {_num(c.max_value)})",
                "out of range: must be " + c.rule_text().removeprefix("required; "),
            ))
    return checks
