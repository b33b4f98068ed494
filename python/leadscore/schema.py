"""The competition input format, in one place.

The generator writes it, ingestion validates against it and the dbt sources document it, so
the column list and types live here once rather than being re-typed in each step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB type the raw table stores
    description: str


# The 28 lead columns in file order (spec/input_schema.md). Types are what the raw table holds:
# integer-valued ids and flags as BIGINT, rates as DOUBLE, everything textual as VARCHAR.
LEAD_COLUMNS: tuple[Column, ...] = (
    Column("bant_submit", "DOUBLE", "Share of Budget, Title, Needs, Timeline answered (0..1 in quarters)"),
    Column("customer_country", "VARCHAR", "Free text ADDRESS / CITY / COUNTRY"),
    Column("business_unit", "VARCHAR", "Business unit of the requested product"),
    Column("com_reg_ver_win_rate", "DOUBLE", "Opportunity rate by vertical, business unit and region"),
    Column("customer_idx", "BIGINT", "Customer company id"),
    Column("customer_type", "VARCHAR", "Customer type"),
    Column("enterprise", "VARCHAR", "Enterprise or SMB"),
    Column("historical_existing_cnt", "DOUBLE", "Earlier conversions of this customer"),
    Column("id_strategic_ver", "DOUBLE", "Strategic weight, ID business unit (1 or missing)"),
    Column("it_strategic_ver", "DOUBLE", "Strategic weight, IT business unit (1 or missing)"),
    Column("idit_strategic_ver", "DOUBLE", "1 if either strategic flag is 1"),
    Column("customer_job", "VARCHAR", "Job family of the contact"),
    Column("lead_desc_length", "BIGINT", "Length of the lead's free-text description"),
    Column("inquiry_type", "VARCHAR", "Inquiry type"),
    Column("product_category", "VARCHAR", "Requested product category"),
    Column("product_subcategory", "VARCHAR", "Requested product subcategory"),
    Column("product_modelname", "VARCHAR", "Requested product model name"),
    Column("customer_country.1", "VARCHAR", "Duplicate of customer_country"),
    Column("customer_position", "VARCHAR", "Position of the contact"),
    Column("response_corporate", "VARCHAR", "Responding LG subsidiary code"),
    Column("expected_timeline", "VARCHAR", "Requested timeline"),
    Column("ver_cus", "BIGINT", "Weight: certain verticals with end-customer type (0/1)"),
    Column("ver_pro", "BIGINT", "Weight: certain vertical x product category pairs (0/1)"),
    Column("ver_win_rate_x", "DOUBLE", "Vertical share x vertical conversion rate"),
    Column("ver_win_ratio_per_bu", "DOUBLE", "Conversion ratio of the vertical per business unit"),
    Column("business_area", "VARCHAR", "Customer's vertical"),
    Column("business_subarea", "VARCHAR", "Customer's sub-vertical"),
    Column("lead_owner", "BIGINT", "Sales owner id"),
)

LEAD_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in LEAD_COLUMNS)
ID_COLUMN = "id"
LABEL_COLUMN = "is_converted"

# Text accepted as a label; anything else in a non-empty label cell is rejected with a reason.
TRUE_LABELS = ("true", "1", "1.0", "yes")
FALSE_LABELS = ("false", "0", "0.0", "no")
