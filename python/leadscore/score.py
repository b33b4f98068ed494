"""Batch scoring: features in, probabilities appended to `ops.score_history`, in one transaction.

Why this shape:
- The model is checked against the feature table before anything is scored: if dbt changed a
  feature's name or type since training, scores would be silently wrong, so we stop instead
  and say which columns differ.
- One call (features.score_stream) checks the model's features, counts the leads and streams
  them as Arrow record batches of ONE query (no page re-sorts the leads still waiting), so
  memory stays flat whatever the volume; the connection is not used again until the last batch
  is read. Without reasons a batch never becomes a pandas frame: Encoding.transform_arrow makes
  the same float32 matrix, and the model turns it into scores in one native call per member.
- Each lead also gets its three reasons (reasons.py: the features with the largest log-odds
  contributions of the model's LightGBM/XGBoost members, in the sentences of the seed
  feature_reasons), computed in the same pass from the same encoded batch as the scores.
  Without them (--no-reasons) the reason columns get one constant in the insert, not 3 x N
  Python strings.
- Only ids, probabilities (and reason texts) are kept between batches; rank and decile come from
  one sort at the end (rank_and_decile: exactly SQL's row_number / ntile(10) over probability
  desc, lead_id), and the insert happens in one transaction, so a killed run writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    rows = features.score_stream(con, model.encoding.features, model.version, rescore, batch_size)
    run_id = f"s{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    if not rows.total:
        return ScoreResult(run_id, model.version, 0, 0, float(model.cutoff), 0.0)

    explain = reasons.explainer(model, reasons.load_templates(con)) if with_reasons else None
    current = str(db.scalar(con, "select current_setting('memory_limit')"))
    # the connection's own limit comes back afterwards, for whatever the caller does next
    with db.settings(con, memory_limit=_memory_limit(current)):
        return _score(con, model, rows, run_id, started, explain, show_progress)


# DuckDB's cap while scoring: its buffer pool would otherwise keep up to 80% of the machine's
# memory of cached feature pages; the stream and the insert need far less (measured at 1M and 5M)
SCORE_MEMORY_LIMIT_BYTES = 768 * 2**20


def _memory_limit(current: str) -> str:
    """SCORE_MEMORY_LIMIT_BYTES, or the connection's own limit (`current`) where that is lower."""
    return db.memory_limit_at_most(current, SCORE_MEMORY_LIMIT_BYTES)


def _score(con: duckdb.DuckDBPyConnection, model, rows: features.ScoreStream, run_id: str, started: datetime,
           explain, show_progress: bool) -> ScoreResult:
    """Read and score every batch, rank, insert: score_leads under DuckDB's scoring memory cap."""
    out_ids: list[pa.Array] = []
    out_probs: list[np.ndarray] = []
    out_reasons: list[list[pa.Array]] = [[] for _ in range(reasons.REASONS)]
    done = 0
    with progress.bar("scoring", total=rows.total, enabled=show_progress) as bar:
        for batch in rows.batches:
            if explain:  # the reasons render from the lead's own values: a pandas frame
                frame = batch.to_pandas()
                X = model.encoding.transform(frame)
            else:
                X = model.encoding.transform_arrow(batch)
            probs = np.asarray(model.predict_matrix(X), dtype="float64")
            if probs.shape != (batch.num_rows,) or not np.all(np.isfinite(probs)):
                raise LeadscoreError(f"model {model.version} returned invalid probabilities")
            out_ids.append(pc.cast(batch.column("lead_id"), pa.string()))
            out_probs.append(np.clip(probs, 0.0, 1.0))
            if explain:
                for texts, column in zip(explain.explain(frame, X), out_reasons, strict=True):
                    column.append(pa.array(texts, type=pa.string()))
            done += batch.num_rows
            bar.update(done)
    X = batch = frame = None  # the last batch is not needed any more
    ids = pa.concat_arrays(out_ids)
    probs = np.concatenate(out_probs)
    del out_ids, out_probs
    # rows in lead_id order: each row group of the history then covers a narrow lead_id range, so
    # DuckDB's min/max zone maps skip most of it when a lead's scores are looked up
    by_id = pc.sort_indices(ids)
    ids, probs = ids.take(by_id), probs[by_id.to_numpy()]
    rank, decile = rank_and_decile(probs, ids)
    columns = {"lead_id": ids, "conversion_probability": pa.array(probs), "rank_in_run": pa.array(rank),
               "decile_in_run": pa.array(decile)}
    if explain:
        columns.update({f"reason_{k + 1}": pa.concat_arrays(column).take(by_id) for k, column in enumerate(out_reasons)})
        reason_sql = "reason_1, reason_2, reason_3"
    else:  # one constant in SQL, not 3 x N Python strings
        reason_sql = ", ".join(f"{db.quote_literal(NO_REASONS)}" for _ in range(reasons.REASONS))
    scores = pa.table(columns)
    del columns, out_reasons, rank, decile
    con.register("_new_scores", scores)
    try:
        with db.transaction(con):
            con.execute(
                f"""
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
                    rank_in_run,
                    decile_in_run,
                    {reason_sql}
                from _new_scores
                """,
                [model.version, run_id, started.replace(tzinfo=None), float(model.cutoff), float(model.cutoff)],
            )
            faults.pause_point("score.before_commit")
    finally:
        con.unregister("_new_scores")
    positives = int(np.count_nonzero(probs >= float(model.cutoff)))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    first, last = (None if d is None else pd.Timestamp(d).date() for d in (rows.first_lead_date, rows.last_lead_date))
    return ScoreResult(run_id, model.version, done, positives, float(model.cutoff), seconds, first, last)


def rank_and_decile(probs: np.ndarray, lead_ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """rank_in_run and decile_in_run of every lead, in one sort: what
    `row_number() / ntile(10) over (order by conversion_probability desc, lead_id)` give
    (tests/test_score.py checks them against DuckDB's windows).

    Tied probabilities are common (tree models give equal scores to equal leaves), so the
    lead_id tie-break matters: the leads are put in lead_id order first (Arrow's byte order, as
    DuckDB orders VARCHAR), then a stable sort on the probability keeps that order among ties."""
    n = len(probs)
    by_id = pc.sort_indices(lead_ids).to_numpy()
    desc = -probs[by_id]
    desc[desc == 0.0] = 0.0  # -0.0 and 0.0 are one value, as in SQL
    order = by_id[np.argsort(desc, kind="stable")]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1, dtype=np.int64)
    # ntile(10): the first n % 10 tiles hold one row more than the others
    size, big = divmod(n, 10)
    r0 = rank - 1
    cut = big * (size + 1)
    decile = np.where(r0 < cut, r0 // (size + 1), big + (r0 - cut) // max(size, 1)) + 1
    return rank, decile.astype(np.int32)


def top_leads(con: duckdb.DuckDBPyConnection, n: int = 10) -> list[tuple]:
    """(lead_id, id, conversion_probability, predicted_converted) of the `n` best-scored leads
    in main.scored_leads, best first: what the nightly summary shows."""
    return db.fetch_all(
        con,
        "select lead_id, id, conversion_probability, predicted_converted from main.scored_leads "
        "order by conversion_probability desc, lead_id limit ?",
        [n],
    )
