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
- The next batch is read and encoded on a second thread while the current one is predicted
  (read_ahead): DuckDB's fetch and the encoding overlap the compiled model, which runs without
  the GIL, instead of taking turns with it.
- Nothing of the whole population is kept in Python: each batch's lead ids and probabilities
  (and reason texts) are appended to a temp table as soon as they are computed, and rank and
  decile come from SQL's own windows over it at the end (row_number / ntile(10) over probability
  desc, lead_id), under DuckDB's memory cap, which spills to disk. So scoring memory is the same
  for 1M leads as for 5M.
- The run's rows are appended to ops.score_history and ops.latest_scores (the latest score of
  each lead and model, which main.scored_leads reads instead of the whole history) in one
  transaction, so a killed run writes nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore import db, faults, features, progress, reasons, tables
from leadscore.errors import LeadscoreError

T = TypeVar("T")
U = TypeVar("U")


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
    # leads ingested into raw.leads that fct_lead_features does not hold yet (no `leadscore build`
    # since they came): scoring reads the features, so it cannot see them
    not_built: int = 0

    def summary(self) -> str:
        unbuilt = (f"{self.not_built} ingested lead(s) are not in fct_lead_features yet: run `leadscore build`, "
                   "then score again" if self.not_built else "")
        if not self.leads_scored:
            return unbuilt.replace(": run", ", so nothing was scored: run", 1) if unbuilt else (
                f"nothing to score: every unlabeled lead already has a score from {self.model_version} "
                "(--all to rescore)")
        rate = self.leads_scored / self.seconds if self.seconds else 0.0
        dates = (f", lead dates {self.first_lead_date} to {self.last_lead_date}"
                 if self.first_lead_date is not None else "")
        return (f"scored {self.leads_scored} leads{dates} with model {self.model_version} as run {self.run_id} "
                f"({self.predicted_converted} at or above cutoff {self.cutoff:.4f}; {rate:,.0f} leads/s)"
                + (f"; {unbuilt}" if unbuilt else ""))


def score_leads(
    con: duckdb.DuckDBPyConnection,
    model_version: str | None = None,
    rescore: bool = False,
    batch_size: int | None = None,
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
    rows = features.score_stream(con, model.encoding.features, model.version, rescore, batch_size or BATCH_SIZE,
                                 model_settings=model.feature_settings)
    run_id = f"s{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    if not rows.total:
        return ScoreResult(run_id, model.version, 0, 0, float(model.cutoff), 0.0, not_built=not_built(con))

    explain = reasons.explainer(model, reasons.load_templates(con)) if with_reasons else None
    current = str(db.scalar(con, "select current_setting('memory_limit')"))
    # the connection's own limit comes back afterwards, for whatever the caller does next
    with db.settings(con, memory_limit=_memory_limit(current)):
        result = _score(con, model, rows, run_id, started, explain, show_progress)
    result.not_built = not_built(con)
    return result


def not_built(con: duckdb.DuckDBPyConnection) -> int:
    """How many ingested leads fct_lead_features lacks. The mart has one row per lead of raw.leads
    (its tests say so), so the difference of the two counts is the leads ingested since the last
    build: two counts DuckDB answers from its row groups, not a join over millions of ids."""
    if not db.table_exists(con, "raw", "leads"):
        return 0
    ingested = int(db.scalar(con, "select count(*) from raw.leads"))
    built = int(db.scalar(con, f"select count(*) from {features.FEATURE_TABLE}"))
    return max(ingested - built, 0)


# Leads per batch. Up to three batches are alive at once (read_ahead reads and encodes the next
# while the current one is predicted): at 100,000 leads a 940,701-lead rescore ran in 0.89x the wall
# time of one batch of 200,000 at a time, with a peak RSS of 941 instead of 1,134 MiB.
BATCH_SIZE = 100_000


# DuckDB's cap while scoring: its buffer pool would otherwise keep up to 80% of the machine's
# memory of cached feature pages. The stream, the staged scores (lead id, probability) and the
# final window need far less, and spill to the database's temp directory past the cap. At 256 MiB
# scoring's peak RSS was 993 MiB at 1M leads and 1,148 MiB at 5M on 2 cores, the rest being the
# model and one batch in Python; 1M and 5M leads on 16 DuckDB threads ran under it too (5M: 1,173 MiB).
SCORE_MEMORY_LIMIT_BYTES = 256 * 2**20


def _memory_limit(current: str) -> str:
    """SCORE_MEMORY_LIMIT_BYTES, or the connection's own limit (`current`) where that is lower."""
    return db.memory_limit_at_most(current, SCORE_MEMORY_LIMIT_BYTES)


def _score(con: duckdb.DuckDBPyConnection, model, rows: features.ScoreStream, run_id: str, started: datetime,
           explain, show_progress: bool) -> ScoreResult:
    """Score every batch into a staging table, rank in SQL, append: score_leads under DuckDB's
    scoring memory cap. Nothing of a batch outlives it in Python: its scores (and reason texts)
    go to a temp table of a second connection (`con` streams the features until the last
    batch), whose pages DuckDB spills to its temp directory past the memory limit, so memory
    does not grow with the number of leads."""
    writer = con.cursor()  # its own connection to the same database, with its own temp tables
    try:
        reason_columns = "".join(f", reason_{k + 1} varchar" for k in range(reasons.REASONS)) if explain else ""
        writer.execute(f"create temp table {STAGED} (lead_id varchar not null, "
                       f"conversion_probability double not null{reason_columns})")
        done = 0

        def encode(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pd.DataFrame | None, np.ndarray]:
            if explain:  # the reasons render from the lead's own values: a pandas frame
                frame = batch.to_pandas()
                return batch, frame, model.encoding.transform(frame)
            return batch, None, model.encoding.transform_arrow(batch)

        with (progress.bar("scoring", total=rows.total, enabled=show_progress) as bar,
              contextlib.closing(read_ahead(rows.batches, encode)) as encoded):
            for batch, frame, X in encoded:
                probs = np.asarray(model.predict_matrix(X), dtype="float64")
                if probs.shape != (batch.num_rows,) or not np.all(np.isfinite(probs)):
                    raise LeadscoreError(f"model {model.version} returned invalid probabilities")
                staged = {"lead_id": pc.cast(batch.column("lead_id"), pa.string()),
                          "conversion_probability": pa.array(np.clip(probs, 0.0, 1.0))}
                if explain:
                    for k, texts in enumerate(explain.explain(frame, X)):
                        staged[f"reason_{k + 1}"] = pa.array(texts, type=pa.string())
                _append(writer, STAGED, pa.table(staged))
                done += batch.num_rows
                bar.update(done)
        X = batch = frame = staged = None  # the last batch is not needed any more
        reason_columns = "".join(f", reason_{k + 1}" for k in range(reasons.REASONS)) if explain else ""
        # rank_in_run / decile_in_run: SQL's own windows, ties broken by lead_id. Rows in lead_id
        # order, so each row group of the history covers a narrow lead_id range and DuckDB's
        # min/max zone maps skip most of it when a lead's scores are looked up
        writer.execute(
            f"""
            create temp table {RANKED} as
            select
                lead_id,
                conversion_probability,
                row_number() over by_probability as rank_in_run,
                cast(ntile(10) over by_probability as integer) as decile_in_run{reason_columns}
            from {STAGED}
            window by_probability as (order by conversion_probability desc, lead_id)
            order by lead_id
            """
        )
        writer.execute(f"drop table {STAGED}")
        # the run's history rows: what is the same in every row is a constant of the view, so
        # the temp tables hold only what differs (they spill to disk past the memory cap)
        cutoff = float(model.cutoff)
        cutoff_sql = f"cast({db.quote_literal(repr(cutoff))} as double)"  # the same double, as text
        constant_reasons = "".join(f", {db.quote_literal(NO_REASONS)} as reason_{k + 1}" for k in range(reasons.REASONS))
        writer.execute(
            f"""
            create temp view {RUN_ROWS} as
            select
                lead_id,
                {db.quote_literal(model.version)} as model_version,
                {db.quote_literal(run_id)} as run_id,
                timestamp {db.quote_literal(started.replace(tzinfo=None).isoformat(sep=" "))} as scored_at,
                conversion_probability,
                conversion_probability >= {cutoff_sql} as predicted_converted,
                {cutoff_sql} as cutoff,
                rank_in_run,
                decile_in_run{reason_columns if explain else constant_reasons}
            from {RANKED}
            """
        )
        positives = int(db.scalar(writer, f"select count(*) from {RUN_ROWS} where predicted_converted"))
        with db.transaction(writer):
            writer.execute(f"insert into ops.score_history by name select * from {RUN_ROWS}")
            tables.update_latest_scores(writer, RUN_ROWS)
            faults.pause_point("score.before_commit")
    finally:
        writer.close()  # its temp tables go with it
        if hasattr(rows.batches, "close"):
            rows.batches.close()  # after an error: the feature query's scan ends now, not when collected
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    first, last = (None if d is None else pd.Timestamp(d).date() for d in (rows.first_lead_date, rows.last_lead_date))
    return ScoreResult(run_id, model.version, done, positives, cutoff, seconds, first, last)


def read_ahead(batches: Iterator[T], prepare: Callable[[T], U]) -> Iterator[U]:
    """`prepare(batch)` for each batch, the next one read and prepared on a second thread while
    the caller works on the current one. Reading (DuckDB's fetch) and encoding run beside
    prediction (numba, without the GIL) and the staging writes, instead of taking turns with
    them. Memory holds up to three batches: the caller's, the one being read and, while the
    caller's loop moves on, its previous one until rebound. An error on either side ends both:
    leaving the pool waits for the read in flight, so the caller may close `batches` as soon as
    this ends (closed by the caller, or by an error)."""
    def step() -> tuple[bool, U | None]:
        batch = next(batches, _END)
        return (False, None) if batch is _END else (True, prepare(batch))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadscore-read") as pool:
        pending = pool.submit(step)
        while True:
            more, item = pending.result()
            if not more:
                return
            pending = pool.submit(step)
            yield item  # type: ignore[misc]


_END = object()


# the writer connection's temp tables: each batch's scores as they come, then ranked; and the
# view of the run's history rows over them
STAGED = "_scored_leads"
RANKED = "_ranked_scores"
RUN_ROWS = "_run_scores"


def _append(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    con.register("_batch_scores", rows)
    try:
        con.execute(f"insert into {table} by name select * from _batch_scores")
    finally:
        con.unregister("_batch_scores")


def top_leads(con: duckdb.DuckDBPyConnection, n: int = 10) -> list[tuple]:
    """(lead_id, id, conversion_probability, predicted_converted) of the `n` best-scored leads
    in main.scored_leads, best first: what the nightly summary shows."""
    return db.fetch_all(
        con,
        "select lead_id, id, conversion_probability, predicted_converted from main.scored_leads "
        "order by conversion_probability desc, lead_id limit ?",
        [n],
    )
