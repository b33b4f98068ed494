"""Batch scoring: features in, probabilities appended to `ops.score_history`, in one transaction.

Why this shape:
- The model is checked against the feature table before anything is scored: if dbt changed a
  feature's name or type since training, scores would be silently wrong, so we stop instead
  and say which columns differ.
- Leads are read in keyset-paginated batches (features.iter_score_batches, each page fetched
  whole), so memory stays flat whatever the volume and the code works on DuckDB 1.x and 2.x.
- Only ids and probabilities are kept between batches; rank, decile and the insert happen in
  SQL in one transaction at the end, so a killed run writes nothing at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa

from leadscore import db, faults, features, tables
from leadscore.errors import LeadscoreError

FEATURE_TABLE = "main.fct_lead_features"


@dataclass
class ScoreResult:
    run_id: str
    model_version: str
    leads_scored: int
    predicted_converted: int
    cutoff: float
    seconds: float


def table_features(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(name, type) of every feature column of fct_lead_features, in table order."""
    return [(f.name, f.sql_type) for f in features.read_features(con)]


def check_features(model_features: list[tuple[str, str]], table: list[tuple[str, str]]) -> None:
    """Raise naming every difference between what the model learned on and what the table has."""
    have = dict(table)
    problems = []
    for name, typ in model_features:
        if name not in have:
            problems.append(f"{name} is missing")
        elif have[name] != typ:
            problems.append(f"{name} is {have[name]}, model expects {typ}")
    if problems:
        raise LeadscoreError(
            "fct_lead_features no longer matches the model's features ("
            + "; ".join(problems[:5])
            + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            + "): retrain with `leadscore train` or rebuild the features the model was trained on"
        )


def count_to_score(con: duckdb.DuckDBPyConnection, model_version: str, rescore: bool) -> int:
    """Unlabeled leads, minus those this model already scored unless rescoring."""
    sql = f"select count(*) from {FEATURE_TABLE} as f where f.split = 'score'"
    params: list = []
    if not rescore:
        sql += (
            " and not exists (select 1 from ops.score_history as h "
            "where h.lead_id = f.lead_id and h.model_version = ?)"
        )
        params.append(model_version)
    return int(db.scalar(con, sql, params))


def score_leads(
    con: duckdb.DuckDBPyConnection,
    model_version: str | None = None,
    rescore: bool = False,
    batch_size: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score unlabeled leads with the current (or given) model and append to the history."""
    from leadscore.model import load_model

    started = datetime.now(timezone.utc)
    model = load_model(con, model_version)
    check_features(list(model.features), table_features(con))
    tables.ensure_schemas(con)
    total = count_to_score(con, model.version, rescore)
    run_id = f"s{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    if not total:
        return ScoreResult(run_id, model.version, 0, 0, float(model.cutoff), 0.0)

    names = [name for name, _ in model.features]
    out_ids: list[pa.Array] = []
    out_probs: list[pa.Array] = []
    done = 0
    batches = features.iter_score_batches(
        con, batch_size, model.version, rescore, features=model.encoding.features,
        history_table="ops.score_history",
    )
    for frame in batches:
        probs = np.asarray(model.predict_proba(frame[names]), dtype="float64")
        if probs.shape != (len(frame),) or not np.all(np.isfinite(probs)):
            raise LeadscoreError(f"model {model.version} returned invalid probabilities")
        out_ids.append(pa.array(frame["lead_id"].to_numpy(dtype=object), type=pa.string()))
        out_probs.append(pa.array(np.clip(probs, 0.0, 1.0)))
        done += len(frame)
        if progress:
            progress(done, total)

    scores = pa.table(
        {"lead_id": pa.concat_arrays(out_ids), "conversion_probability": pa.concat_arrays(out_probs)}
    )
    con.register("_new_scores", scores)
    try:
        with db.transaction(con):
            con.execute(
                """
                insert into ops.score_history
                select
                    lead_id,
                    ? as model_version,
                    ? as run_id,
                    ?::timestamp as scored_at,
                    conversion_probability,
                    conversion_probability >= ? as predicted_converted,
                    ? as cutoff,
                    row_number() over (order by conversion_probability desc, lead_id) as rank_in_run,
                    ntile(10) over (order by conversion_probability desc, lead_id) as decile_in_run
                from _new_scores
                """,
                [model.version, run_id, started.replace(tzinfo=None), float(model.cutoff), float(model.cutoff)],
            )
            faults.pause_point("score.before_commit")
    finally:
        con.unregister("_new_scores")
    positives = int(db.scalar(con, "select count(*) filter (where predicted_converted) from ops.score_history where run_id = ?", [run_id]))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return ScoreResult(run_id, model.version, done, positives, float(model.cutoff), seconds)
