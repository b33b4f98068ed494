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

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
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
    seconds: dict[str, float] = field(default_factory=dict)
    loads: list = field(default_factory=list)
    train_result: object | None = None


def lock_path() -> Path:
    from leadscore import runlock

    return runlock.lock_path()


@contextmanager
def exclusive_run_lock() -> Iterator[None]:
    """The lock every writing command shares (leadscore.runlock); re-entrant, so the CLI may
    already hold it."""
    from leadscore import runlock

    with runlock.exclusive("nightly"):
        yield


def _record_start(run_id: str, input_dir: Path | None) -> None:
    con = db.connect()
    try:
        with db.transaction(con):
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
    finally:
        con.close()


def _record_end(result: NightlyResult, status: str, error: str | None) -> None:
    con = db.connect()
    try:
        con.execute(
            """
            update ops.nightly_runs set ended_at = ?, status = ?, files_loaded = ?, rows_ingested = ?,
                rows_rejected = ?, trained_model = ?, model_version = ?, leads_scored = ?, error = ?
            where run_id = ?
            """,
            [
                datetime.now(timezone.utc).replace(tzinfo=None), status, result.files_loaded,
                result.rows_ingested, result.rows_rejected, result.trained_model, result.model_version,
                result.leads_scored, error, result.run_id,
            ],
        )
    finally:
        con.close()


def run_nightly(
    input_dir: Path | None = None,
    retrain: bool = False,
    time_budget: float = 120.0,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> NightlyResult:
    """Run every step; raise LeadscoreError (after recording the failure) if any step fails."""
    from leadscore import build, ingest, registry, score, serving, train

    run_id = f"n{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    result = NightlyResult(run_id)
    with exclusive_run_lock():
        _record_start(run_id, input_dir)
        faults.pause_point("nightly.started")
        try:
            if input_dir is not None:
                t0 = time.perf_counter()
                files = ingest.discover_inputs(input_dir)
                con = db.connect()
                try:
                    # one transaction per file: a bad file is quarantined, the others load
                    loads = ingest.ingest_files(con, files, quarantine=True)
                finally:
                    con.close()
                result.loads = loads
                for r in loads:
                    if r.status == "loaded":
                        say(f"ingest: {r.path.name}: {r.rows_loaded} rows as a {r.role} file ({r.role_reason})"
                            + (f"; {r.message}" if r.message else ""))
                    elif r.status == "refused":
                        say(f"ingest: {r.path.name}: REFUSED: {r.message}")
                result.files_loaded = sum(r.status == "loaded" for r in loads)
                result.files_skipped = sum(r.status == "skipped" for r in loads)
                result.files_refused = sum(r.status == "refused" for r in loads)
                result.rows_ingested = sum(r.rows_loaded for r in loads)
                result.rows_rejected = sum(r.rows_rejected for r in loads)
                result.seconds["ingest"] = time.perf_counter() - t0
                say(f"ingest: {result.rows_ingested} rows from {result.files_loaded} new file(s), "
                    f"{result.files_skipped} already loaded, {result.files_refused} refused, "
                    f"{result.rows_rejected} rejected")

            t0 = time.perf_counter()
            dbt_result = build.run_dbt(["build", "--no-use-colors", "--quiet"], quiet=True)
            result.dbt_counts = dbt_result.counts
            result.seconds["dbt_build"] = time.perf_counter() - t0
            say(f"dbt build: {build.format_counts(dbt_result.counts)} in {result.seconds['dbt_build']:.1f} s")

            con = db.connect()
            try:
                if retrain or registry.current_version(con) is None:
                    t0 = time.perf_counter()
                    say(f"train: no current model, training with a {time_budget:.0f} s budget"
                        if not retrain else f"train: retraining with a {time_budget:.0f} s budget")
                    trained = train.train_model(con, time_budget=time_budget, seed=seed)
                    result.train_result = trained
                    result.trained_model = trained.model_version
                    result.seconds["train"] = time.perf_counter() - t0
                    say(f"train: model {trained.model_version}, out-of-fold F1 {trained.cv_f1:.3f}, "
                        f"AUC {trained.cv_auc:.3f}, cutoff {trained.cutoff:.3f}")
                t0 = time.perf_counter()
                scored = score.score_leads(con)
                result.model_version = scored.model_version
                result.leads_scored = scored.leads_scored
                result.seconds["score"] = time.perf_counter() - t0
                say(f"score: {scored.leads_scored} leads scored with {scored.model_version} "
                    f"({scored.predicted_converted} above the cutoff {scored.cutoff:.3f})")
                t0 = time.perf_counter()
                published = serving.publish(con)
                result.seconds["publish"] = time.perf_counter() - t0
                say(f"publish: {published.path} ({json.dumps(published.tables)})")
            finally:
                con.close()
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
