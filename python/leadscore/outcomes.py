"""Outcomes learned after scoring: what decides between two models trained on other rows.

A scored lead never becomes a training row (an id already loaded is refused, and training rows
carry no id), so the outcomes that do arrive for scored leads come two ways:
- `leadscore evaluate --labels PATH`: every labeled id that names a loaded lead is kept in
  `ops.outcomes` (source 'evaluate', the evaluation's id), whichever model scored it;
- a score file that carried labels: ingest keeps them in `raw.set_aside_labels`.

The one rule that joins the two (per lead the latest outcome recorded, training rows left out)
is the view `ops.known_outcomes` (tables.KNOWN_OUTCOMES_DDL), which dbt's call_list reads too. No model ever trains on these leads, so every model's score of them is
out of sample, and the current model and a new one can be judged on the same leads
(leadscore.promotion).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from leadscore import db, tables
from leadscore.errors import LeadscoreError

TABLE = "ops.outcomes"


def record(
    con: duckdb.DuckDBPyConnection,
    ids: np.ndarray,
    labels: np.ndarray,
    source: str,
    source_ref: str,
    at: datetime,
) -> int:
    """Keep the outcome of every loaded lead whose input `id` is among `ids` (several leads can
    share an id: each gets it), unless it is already the lead's latest one (the same labels file
    evaluated twice adds nothing). Runs inside the caller's transaction; returns the rows kept."""
    tables.ensure_schemas(con)
    con.register("_outcome_labels", pa.table({"id": np.asarray(ids, dtype=np.int64),
                                              "is_converted": np.asarray(labels, dtype=bool)}))
    try:
        inserted = con.execute(
            f"""
            insert into {TABLE} (lead_id, id, is_converted, source, source_ref, recorded_at)
            select l.lead_id, t.id, t.is_converted, ?, ?, ?
            from _outcome_labels as t
            inner join raw.leads as l on l.id = t.id
            where t.is_converted is distinct from (
                select arg_max(o.is_converted, o.recorded_at) from {TABLE} as o where o.lead_id = l.lead_id
            )
            """,
            [source, source_ref, at.replace(tzinfo=None)],
        ).fetchone()
        return int(inserted[0]) if inserted else 0
    finally:
        con.unregister("_outcome_labels")


def known_outcomes_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A query of (lead_id, is_converted): the latest outcome recorded per lead that is not a
    training row (the view tables.KNOWN_OUTCOMES, which every writing command creates)."""
    if not db.table_exists(con, "ops", "known_outcomes"):
        raise LeadscoreError(f"{tables.KNOWN_OUTCOMES} is missing: this database has not been opened by a "
                             "writing leadscore command since it existed; run `leadscore build` once")
    return f"select lead_id, is_converted from {tables.KNOWN_OUTCOMES}"
