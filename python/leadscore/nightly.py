"""The nightly job: ingest new files, dbt build, train if needed, score, publish, record the run.

Each step either completes or changes nothing (ingest and scoring are single transactions,
dbt rebuilds idempotently, a model becomes current only when fully written, the serving
snapshot is swapped by rename), so a run killed at any point is repaired by simply running
again. The lock every writing command shares (leadscore.runlock) makes a second concurrent run exit at
once with EXIT_BUSY instead of queueing behind DuckDB's file lock. A bad input file is
quarantined (raw.loads, status 'refused') and the run goes on; the CLI then exits with
EXIT_FILES_REFUSED.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from leadscore import db, faults, tables
from leadscore.errors import LeadscoreError


@dataclass
class NightlyResult:
    run_id: str
    files_loaded: int = 0
    files_skipped: int = 0
    files_refused: int = 0
    rows_ingested: int = 0
    rows_rejected: int = 0
    dbt_counts: dict[str, int] = field(default_factory=dict)
    trained_model: str | None = None
    model_version: str | None = None
    leads_scored: int = 0
    scored_from: date | None = None
    scored_to: date | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    loads: list = field(default_factory=list)
    top_leads: list[tuple] = field(default_factory=list)

    def summary(self) -> str:
        """The contract's summary: rows ingested, dbt results, model, leads scored, top 10 leads."""
        counts = self.dbt_counts
        tests = counts.get("test pass", 0) + counts.get("unit_test pass", 0)
        refused = self.files_refused
        lines = [
            f"nightly run {self.run_id} succeeded"
            + (f", with {refused} file(s) refused (exit code 3)" if refused else ""),
            f"  rows ingested     {self.rows_ingested} ({self.rows_rejected} rejected, "
            f"{self.files_skipped} file(s) already loaded, {refused} refused)",
            f"  dbt               {counts.get('model success', 0)} models built, {tests} tests passed, "
            f"{counts.get('seed success', 0)} seeds",
            f"  model version     {self.model_version}" + (" (trained in this run)" if self.trained_model else ""),
            f"  leads scored      {self.leads_scored}"
            + (f" (lead dates {self.scored_from} to {self.scored_to})" if self.scored_from else ""),
            f"  top {TOP_LEADS} leads      lead_id           id        probability  above cutoff",
        ]
        for lead_id, id_, prob, pred in self.top_leads:
            lines.append(f"                    {lead_id}  {'' if id_ is None else id_!s:>8}  {prob:11.4f}  "
                         f"{'yes' if pred else 'no'}")
        return "\n".join(lines)


TOP_LEADS = 10


def _record_start(run_id: str, input_dir: Path | None) -> None:
    with db.session() as con, db.transaction(con):
        tables.ensure_schemas(con)
        # We hold the lock, so any run still marked running was killed: say so.
        con.execute(
            "update ops.nightly_runs set status = 'abandoned', "
            "error = coalesce(error, 'process ended without recording an outcome') "
            "where status = 'running'"
        )
        con.execute(
            "insert into ops.nightly_runs (run_id, started_at, status, input_dir) values (?, ?, 'running', ?)",
            [run_id, datetime.now(timezone.utc).replace(tzinfo=None), str(input_dir) if input_dir else None],
        )


def _record_end(result: NightlyResult, status: str, error: str | None) -> None:
    with db.session() as con:
        con.execute(
            """
            update ops.nightly_runs set ended_at = ?, status = ?, files_loaded = ?, rows_ingested = ?,
                rows_rejected = ?, trained_model = ?, model_version = ?, leads_scored = ?,
                scored_from = ?, scored_to = ?, error = ?
            where run_id = ?
            """,
            [
                datetime.now(timezone.utc).replace(tzinfo=None), status, result.files_loaded,
                result.rows_ingested, result.rows_rejected, result.trained_model, result.model_version,
                result.leads_scored, result.scored_from, result.scored_to, error, result.run_id,
            ],
        )


@contextmanager
def _timed(result: NightlyResult, step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    result.seconds[step] = time.perf_counter() - t0


def run_nightly(
    input_dir: Path | None = None,
    retrain: bool = False,
    time_budget: float = 120.0,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> NightlyResult:
    """Run every step, each with the same step function its own command calls; raise
    LeadscoreError (after recording the failure) if any step fails."""
    from leadscore import build, ingest, registry, runlock, score, serving, train

    run_id = f"n{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    result = NightlyResult(run_id)
    with runlock.exclusive("nightly"):  # re-entrant: the CLI may already hold it
        _record_start(run_id, input_dir)
        faults.pause_point("nightly.started")
        try:
            if input_dir is not None:
                with _timed(result, "ingest"), db.session() as con:
                    # one transaction per file: a bad file is quarantined, the others load
                    loads = ingest.ingest_files(con, ingest.discover_inputs(input_dir), quarantine=True)
                result.loads = loads
                for r in loads:
                    if r.status != "skipped":
                        say(f"ingest: {r.summary()}")
                result.files_loaded = sum(r.status == "loaded" for r in loads)
                result.files_skipped = sum(r.status == "skipped" for r in loads)
                result.files_refused = sum(r.status == "refused" for r in loads)
                result.rows_ingested = sum(r.rows_loaded for r in loads)
                result.rows_rejected = sum(r.rows_rejected for r in loads)
                say(f"ingest: {result.rows_ingested} rows from {result.files_loaded} new file(s), "
                    f"{result.files_skipped} already loaded, {result.files_refused} refused, "
                    f"{result.rows_rejected} rejected")

            with _timed(result, "dbt_build"):
                dbt_result = build.run_dbt(["build", "--no-use-colors", "--quiet"], quiet=True)
            result.dbt_counts = dbt_result.counts
            say(dbt_result.summary())

            with db.session() as con:
                if retrain or registry.current_version(con) is None:
                    say(f"train: {'retraining' if retrain else 'no current model, training'} "
                        f"with a {time_budget:.0f} s budget")
                    with _timed(result, "train"):
                        trained = train.train_model(con, time_budget=time_budget, seed=seed)
                    result.trained_model = trained.model_version
                    say(trained.summary())
                with _timed(result, "score"):
                    scored = score.score_leads(con)
                result.model_version = scored.model_version
                result.leads_scored = scored.leads_scored
                result.scored_from, result.scored_to = scored.first_lead_date, scored.last_lead_date
                say(scored.summary())
                with _timed(result, "publish"):
                    published = serving.publish(con)
                say(published.summary())
                result.top_leads = score.top_leads(con, TOP_LEADS)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, LeadscoreError) else f"{type(exc).__name__}: {exc}"
            try:
                _record_end(result, "failed", message)
            except Exception:  # the database may be what failed; the original error matters more
                pass
            raise
        refused = [f"{r.path.name}: {r.message}" for r in result.loads if r.status == "refused"]
        _record_end(result, "succeeded", ("files refused: " + " | ".join(refused)) if refused else None)
    return result
