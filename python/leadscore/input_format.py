"""The competition input format, in one place.

The generator writes it, ingestion validates against it and the dbt sources document it, so
the column list and types live here once rather than being re-typed in each step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One input column and its domain rules.

    The rules are the single source of truth for what a value may be: ingestion rejects a row
    that breaks one (raw.rejected_rows, with the reason), the dbt source tests on raw.leads
    mirror them (tests/test_column_rules.py checks the mirror), so a dbt test can never fail on
    input that got past the door.
    """

    name: str
    sql_type: str  # DuckDB type the raw table stores
    description: str
    required: bool = False  # an empty cell is rejected ("required value missing")
    min_value: float | None = None  # inclusive bounds for numbers
    max_value: float | None = None
    allowed: tuple[float, ...] | None = None  # the only values a number may take
    # DATE columns: the spellings a cell may take (strptime formats; a time of day is dropped)
    date_formats: tuple[str, ...] = ()
    # BOOLEAN columns: the spellings of true and of false (compared trimmed and lower-cased),
    # pairwise (true_values[i] / false_values[i] is one way of writing yes / no)
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()

    def rule_text(self) -> str:
        """The rule in words, for documentation and rejection reasons."""
        parts = []
        if self.required:
            parts.append("required")
        if self.sql_type == "DATE" and self.date_formats:
            parts.append("a date: " + _or_list([_format_words(f) for f in self.date_formats]))
        if self.sql_type == "BOOLEAN" and self.true_values:
            pairs = [f"{t}/{f}" for t, f in zip(self.true_values, self.false_values)]
            parts.append("a yes/no flag: " + _or_list(pairs))
        if self.allowed is not None:
            parts.append("one of " + ", ".join(_number_words(v) for v in self.allowed))
        elif self.min_value is not None or self.max_value is not None:
            parts.append(f"between {_number_words(self.min_value)} and {_number_words(self.max_value)}")
        return "; ".join(parts)


def _number_words(v: float) -> str:
    """A bound as people write it: 0.25, 1, 1,000,000, 9,007,199,254,740,991 (never 1e+06)."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _format_words(fmt: str) -> str:
    """A strptime format as people read it: '%Y-%m-%d %H:%M:%S' -> 'YYYY-MM-DD HH:MM:SS'."""
    for code, words in (("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "HH"), ("%M", "MM"), ("%S", "SS")):
        fmt = fmt.replace(code, words)
    return fmt


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# Sane ranges at the door: ids fit in a BIGINT and in a float64 exactly (the rules read a cell as
# a double, so the largest id is the last whole number a double tells from its neighbours: at 2**53
# the cell 9007199254740993 would read as 9007199254740992, another lead); counts and lengths far
# above anything real (historical_existing_cnt tops out near 2,200, lead_desc_length near 1,100)
# but small enough that no float32 feature overflows downstream.
MAX_ID = 2**53 - 1
MAX_COUNT = 1_000_000

# The 28 lead columns in file order (spec/input_schema.md). Types are what the raw table holds:
# integer-valued ids and flags as BIGINT, rates as DOUBLE, everything textual as VARCHAR.
LEAD_COLUMNS: tuple[Column, ...] = (
    Column("bant_submit", "DOUBLE", "Share of Budget, Title, Needs, Timeline answered (0..1 in quarters)", allowed=(0.0, 0.25, 0.5, 0.75, 1.0)),
    Column("customer_country", "VARCHAR", "Free text ADDRESS / CITY / COUNTRY"),
    Column("business_unit", "VARCHAR", "Business unit of the requested product"),
    Column("com_reg_ver_win_rate", "DOUBLE", "Opportunity rate by vertical, business unit and region", min_value=0.0, max_value=1.0),
    Column("customer_idx", "BIGINT", "Customer company id", required=True, min_value=0, max_value=MAX_ID),
    Column("customer_type", "VARCHAR", "Customer type"),
    Column("enterprise", "VARCHAR", "Enterprise or SMB"),
    Column("historical_existing_cnt", "DOUBLE", "Earlier conversions of this customer", min_value=0.0, max_value=MAX_COUNT),
    Column("id_strategic_ver", "DOUBLE", "Strategic weight, ID business unit (1 or missing)", allowed=(0.0, 1.0)),
    Column("it_strategic_ver", "DOUBLE", "Strategic weight, IT business unit (1 or missing)", allowed=(0.0, 1.0)),
    Column("idit_strategic_ver", "DOUBLE", "1 if either strategic flag is 1", allowed=(0.0, 1.0)),
    Column("customer_job", "VARCHAR", "Job family of the contact"),
    Column("lead_desc_length", "BIGINT", "Length of the lead's free-text description", min_value=0, max_value=MAX_COUNT),
    Column("inquiry_type", "VARCHAR", "Inquiry type"),
    Column("product_category", "VARCHAR", "Requested product category"),
    Column("product_subcategory", "VARCHAR", "Requested product subcategory"),
    Column("product_modelname", "VARCHAR", "Requested product model name"),
    Column("customer_country.1", "VARCHAR", "Duplicate of customer_country"),
    Column("customer_position", "VARCHAR", "Position of the contact"),
    Column("response_corporate", "VARCHAR", "Responding LG subsidiary code"),
    Column("expected_timeline", "VARCHAR", "Requested timeline"),
    Column("ver_cus", "BIGINT", "Weight: certain verticals with end-customer type (0/1)", allowed=(0.0, 1.0)),
    Column("ver_pro", "BIGINT", "Weight: certain vertical x product category pairs (0/1)", allowed=(0.0, 1.0)),
    Column("ver_win_rate_x", "DOUBLE", "Vertical share x vertical conversion rate", min_value=0.0, max_value=1.0),
    Column("ver_win_ratio_per_bu", "DOUBLE", "Conversion ratio of the vertical per business unit", min_value=0.0, max_value=1.0),
    Column("business_area", "VARCHAR", "Customer's vertical"),
    Column("business_subarea", "VARCHAR", "Customer's sub-vertical"),
    Column("lead_owner", "BIGINT", "Sales owner id", required=True, min_value=0, max_value=MAX_ID),
)

LEAD_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in LEAD_COLUMNS)

# The final round's published extra columns (issue 12). Optional: a qualifier-format file lacks
# them (they load as null), a final-round file carries them anywhere after the 28. Typed at the
# door like the 28: a date, yes/no flags as booleans, the rest text (trimmed, empty = null). A
# date or flag cell that is not empty and not one of the spellings below is a rejected row.
_LEAD_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S")  # ISO, slashes, a CRM timestamp
_YES = ("yes", "y", "true", "1")
_NO = ("no", "n", "false", "0")
FINAL_COLUMNS: tuple[Column, ...] = (
    Column("lead_date", "DATE", "When the lead was created", date_formats=_LEAD_DATE_FORMATS),
    Column("lead_description", "VARCHAR", "The customer's own inquiry text"),
    Column("customer_history", "BOOLEAN", "Whether earlier records of the lead exist (yes/no)", true_values=_YES, false_values=_NO),
    Column("lead_from_channel", "VARCHAR", "How the lead came in (web form, event, partner, ...)"),
    Column("transfer_agreement", "BOOLEAN", "Consent to move the lead's data abroad (yes/no)", true_values=_YES, false_values=_NO),
    Column("expected_budget", "VARCHAR", "The customer's budget range as typed ('$10,000 - $50,000', 'TBD')"),
)
FINAL_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in FINAL_COLUMNS)
# Every column raw.leads types: the 28, then the final round's.
ALL_LEAD_COLUMNS: tuple[Column, ...] = LEAD_COLUMNS + FINAL_COLUMNS
ID_COLUMN = "id"
ID_RULE = Column(ID_COLUMN, "BIGINT", "The score file's lead id", min_value=0, max_value=MAX_ID)
LABEL_COLUMN = "is_converted"

# Text accepted as a label, compared trimmed of spaces and lower-cased, pairwise (TRUE_LABELS[i] /
# FALSE_LABELS[i] is one way of writing converted / not); anything else in a non-empty label cell
# is rejected with a reason. The one vocabulary of a lead file's label (leadscore.column_rules,
# in SQL) and of the outcomes file of `leadscore evaluate` (leadscore.labels_file, `label_value`).
TRUE_LABELS = ("true", "1", "1.0", "yes")
FALSE_LABELS = ("false", "0", "0.0", "no")
LABEL_WORDS = _or_list([f"{t}/{f}" for t, f in zip(TRUE_LABELS, FALSE_LABELS)])  # for messages


def label_value(text: str) -> bool | None:
    """A label cell read in Python exactly as ingest reads it in SQL (column_rules.label_expr:
    `lower(trim(cell))`, DuckDB's trim dropping spaces only): True, False, or None when it is
    not a label (an empty cell included), so a labels file takes what a lead file takes."""
    value = text.strip(" ").lower()
    if value in TRUE_LABELS:
        return True
    if value in FALSE_LABELS:
        return False
    return None
