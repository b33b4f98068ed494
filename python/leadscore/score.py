"""Batch scoring: features in, probabilities appended to `ops.score_history`, in one transaction.

Why this shape:
- The model is checked against the feature table before anything is scored: if dbt changed a
  feature's name or type since training, scores would be silently wrong, so we stop instead
  and say which columns differ.
- One call (features.score_rows) checks the model's features, counts the leads and hands out
  keyset-paginated batches (each page fetched whole), so memory stays flat whatever the volume
  and the code works on DuckDB 1.x and 2.x; the model turns a batch into scores in one call.
- Each lead also gets its three reasons (reasons.py: the features with the largest log-odds
  contributions of the model's LightGBM/XGBoost members, in the sentences of the seed
  feature_reasons), computed in the same pass from the same encoded batch as the scores.
- Only ids, probabilities and reason texts are kept between batches; rank, decile and the insert
  happen in SQL in one transaction at the end, so a killed run writes nothing at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore import db, faults, features, progress, reasons, tables
from leadscore.errors import LeadscoreError


# what a lead scored without its reasons carries in reason_1..3 (not null: analysts filter on them)
NO_REASONS = "not computed: scored with --no-reasons (leadscore score --all rescores with reasons)"


@dataclass
class ScoreResult:
    run_id: str
    model_version: str
    leads_scored: int
    predicted_converted: int
    cutoff: float
    seconds: float
    first_lead_date: date | None = None  # the date range of the leads scored (final-round data)
    last_lead_date: date | None = None

    def summary(self) -> str:
        if not self.leads_scored:
            return (f"nothing to score: every unlabeled lead already has a score from {self.model_version} "
                    "(--all to rescore)")
        rate = self.leads_scored / self.seconds if self.seconds else 0.0
        dates = (f", lead dates {self.first_lead_date} to {self.last_lead_date}"
                 if self.first_lead_date is not None else "")
        return (f"scored {self.leads_scored} leads{dates} with model {self.model_version} as run {self.run_id} "
                f"({self.predicted_converted} at or above cutoff {self.cutoff:.4f}; {rate:,.0f} leads/s)")


def score_leads(
    con: duckdb.DuckDBPyConnection,
    model_version: str | None = None,
    rescore: bool = False,
    batch_size: int = 200_000,
    show_progress: bool = False,
    with_reasons: bool = True,
) -> ScoreResult:
    """Score unlabeled leads with the current (or given) model and append to the history.

    `with_reasons=False` (`score --no-reasons`) skips the reasons: TreeSHAP costs about 80 times
    a prediction (600 trees of depth ~11), which a nightly's few thousand new leads absorb but a
    rescore of millions does not; the reason columns then say how to get them."""
    from leadscore.model import load_model

    started = datetime.now(timezone.utc)
    model = load_model(con, model_version)
    tables.ensure_schemas(con)
    rows = features.score_rows(con, model.encoding.features, model.version, rescore, batch_size)
    run_id = f"s{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    if not rows.total:
        return ScoreResult(run_id, model.version, 0, 0, float(model.cutoff), 0.0)

    explain = reasons.explainer(model, reasons.load_templates(con)) if with_reasons else None
    out_ids: list[pa.Array] = []
    out_probs: list[pa.Array] = []
    out_reasons: list[list[pa.Array]] = [[] for _ in range(reasons.REASONS)]
    done = 0
    first: date | None = None
    last: date | None = None
    with progress.bar("scoring", total=rows.total, enabled=show_progress) as bar:
        for frame in rows.batches:
            X = model.encoding.transform(frame)
            probs = np.asarray(model.predict_matrix(X), dtype="float64")
            if probs.shape != (len(frame),) or not np.all(np.isfinite(probs)):
                raise LeadscoreError(f"model {model.version} returned invalid probabilities")
            out_ids.append(pa.array(frame["lead_id"].to_numpy(dtype=object), type=pa.string()))
            out_probs.append(pa.array(np.clip(probs, 0.0, 1.0)))
            texts_per_reason = explain.explain(frame, X) if explain else [[NO_REASONS] * len(frame)] * reasons.REASONS
            for texts, column in zip(texts_per_reason, out_reasons, strict=True):
                column.append(pa.array(texts, type=pa.string()))
            done += len(frame)
            bar.update(done)
            dates = frame["lead_date"].dropna()
            if len(dates):
                lo, hi = pd.Timestamp(dates.min()).date(), pd.Timestamp(dates.max()).date()
                first, last = min(first or lo, lo), max(last or hi, hi)

    scores = pa.table(
        {"lead_id": pa.concat_arrays(out_ids), "conversion_probability": pa.concat_arrays(out_probs),
         **{f"reason_{k + 1}": pa.concat_arrays(column) for k, column in enumerate(out_reasons)}}
    )
    con.register("_new_scores", scores)
    try:
        with db.transaction(con):
            con.execute(
                """
                insert into ops.score_history (
                    lead_id, model_version, run_id, scored_at, conversion_probability, predicted_converted,
                    cutoff, rank_in_run, decile_in_run, reason_1, reason_2, reason_3
                )
                select
                    lead_id,
                    ? as model_version,
                    ? as run_id,
                    ?::timestamp as scored_at,
                    conversion_probability,
                    conversion_probability >= ? as predicted_converted,
                    ? as cutoff,
                    row_number() over (order by conversion_probability desc, lead_id) as rank_in_run,
                    ntile(10) over (order by conversion_probability desc, lead_id) as decile_in_run,
                    reason_1,
                    reason_2,
                    reason_3
                from _new_scores
                """,
                [model.version, run_id, started.replace(tzinfo=None), float(model.cutoff), float(model.cutoff)],
            )
            faults.pause_point("score.before_commit")
    finally:
        con.unregister("_new_scores")
    positives = int(db.scalar(con, "select count(*) filter (where predicted_converted) from ops.score_history where run_id = ?", [run_id]))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return ScoreResult(run_id, model.version, done, positives, float(model.cutoff), seconds, first, last)


def top_leads(con: duckdb.DuckDBPyConnection, n: int = 10) -> list[tuple]:
    """(lead_id, id, conversion_probability, predicted_converted) of the `n` best-scored leads
    in main.scored_leads, best first: what the nightly summary shows."""
    return db.fetch_all(
        con,
        "select lead_id, id, conversion_probability, predicted_converted from main.scored_leads "
        "order by conversion_probability desc, lead_id limit ?",
        [n],
    )
