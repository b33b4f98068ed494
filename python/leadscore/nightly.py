"""The nightly job: ingest new files, dbt build, train if needed, score, publish, record the run.

Each step either completes or changes nothing (ingest and scoring are single transactions,
dbt rebuilds idempotently, a model becomes current only when fully written, the serving
snapshot is swapped by rename), so a run killed at any point is repaired by simply running
again. The lock every writing command shares (leadscore.runlock) makes a second concurrent run exit at
once with EXIT_BUSY instead of queueing behind DuckDB's file lock. A bad input file is
quarantined (raw.loads, status 'refused') and the run goes on; the CLI then exits with
EXIT_FILES_REFUSED.

After scoring, the batches the run scored are checked for drift (main.batch_drift, leadscore.drift):
a WARNING line per flagged batch, counts and lines in the summary and in ops.nightly_runs. A
drift warning never fails the run: the scores are written and published, and someone looks.

Publishing follows scoring, so the current model has scored every unlabeled lead by then; a
publish refused for want of current scores (serving.NoCurrentScores) therefore means the
database holds no lead to score yet (training files only). That is a WARNING, not a failure:
the last snapshot keeps its scores and only its nightly_runs learns of the run.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from leadscore import db, drift, faults, tables
from leadscore.errors import LeadscoreError

LOG = logging.getLogger("leadscore.nightly")


@dataclass
class NightlyResult:
    run_id: str
    files_loaded: int = 0
    files_skipped: int = 0
    files_refused: int = 0
    rows_ingested: int = 0
    rows_rejected: int = 0
    dbt_counts: dict[str, int] = field(default_factory=dict)
    trained_model: str | None = None  # the model this run trained (None: it trained none)
    trained_became_current: bool | None = None  # False: registered as a challenger
    model_version: str | None = None  # the current model, which did the scoring
    leads_scored: int = 0
    scored_from: date | None = None
    scored_to: date | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    loads: list = field(default_factory=list)
    top_leads: list[tuple] = field(default_factory=list)
    drift: drift.DriftReport | None = None  # None: not checked (nothing scored, or batch_drift unreadable)
    publish_skipped: str | None = None  # why the snapshot was not replaced (serving.NoCurrentScores)

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
            f"  model version     {self.model_version} (the current model, which scored)",
            f"  trained           {self._trained()}",
            f"  leads scored      {self.leads_scored}"
            + (f" (lead dates {self.scored_from} to {self.scored_to})" if self.scored_from else ""),
            f"  drift             {self.drift.summary() if self.drift is not None else 'not checked'}",
            *([f"  serving snapshot  not replaced: {self.publish_skipped}"] if self.publish_skipped else []),
            f"  top {TOP_LEADS} leads      lead_id           id        probability  above cutoff",
        ]
        for lead_id, id_, prob, pred in self.top_leads:
            lines.append(f"                    {lead_id}  {'' if id_ is None else id_!s:>8}  {prob:11.4f}  "
                         f"{'yes' if pred else 'no'}")
        return "\n".join(lines)

    def _trained(self) -> str:
        """What this run trained, apart from the model that scored: a retrain whose model loses
        to the current one registers it as a challenger, and the current model goes on scoring."""
        if self.trained_model is None:
            return "no model (one was current; --retrain trains a new one)"
        if self.trained_became_current:
            return f"{self.trained_model} in this run, now the current model"
        return (f"{self.trained_model} in this run, registered as a challenger: {self.model_version} stays "
                f"current (`leadscore models promote {self.trained_model}` to switch)")

    def as_dict(self) -> dict:
        """The summary's figures for a machine (the nightly's JSON log)."""
        return {
            "run_id": self.run_id,
            "files_loaded": self.files_loaded,
            "files_skipped": self.files_skipped,
            "files_refused": self.files_refused,
            "rows_ingested": self.rows_ingested,
            "rows_rejected": self.rows_rejected,
            "dbt": dict(self.dbt_counts),
            "trained_model": self.trained_model,
            "trained_became_current": self.trained_became_current,
            "model_version": self.model_version,
            "leads_scored": self.leads_scored,
            "scored_from": None if self.scored_from is None else self.scored_from.isoformat(),
            "scored_to": None if self.scored_to is None else self.scored_to.isoformat(),
            "drift": None if self.drift is None else self.drift.as_dict(),
            "publish_skipped": self.publish_skipped,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "top_leads": [
                {"lead_id": lead_id, "id": id_, "probability": float(prob), "above_cutoff": bool(pred)}
                for lead_id, id_, prob, pred in self.top_leads
            ],
        }


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


def _record_end(result: NightlyResult, status: str, error: str | None,
                con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Write the run's outcome to ops.nightly_runs (on `con`, else on a connection of its own)."""
    if con is None:
        with db.session() as own:
            _record_end(result, status, error, own)
        return
    checked = result.drift
    con.execute(
        """
        update ops.nightly_runs set ended_at = ?, status = ?, files_loaded = ?, rows_ingested = ?,
            rows_rejected = ?, trained_model = ?, model_version = ?, leads_scored = ?,
            scored_from = ?, scored_to = ?, error = ?, drift_batches_checked = ?,
            drift_batches_flagged = ?, drift_warnings = ?
        where run_id = ?
        """,
        [
            datetime.now(timezone.utc).replace(tzinfo=None), status, result.files_loaded,
            result.rows_ingested, result.rows_rejected, result.trained_model, result.model_version,
            result.leads_scored, result.scored_from, result.scored_to, error,
            None if checked is None else len(checked.batches),
            None if checked is None else len(checked.flagged),
            None if checked is None or not checked.flagged else "\n".join(b.warning() for b in checked.flagged),
            result.run_id,
        ],
    )


def _features_rebuilt_otherwise(con: duckdb.DuckDBPyConnection, current: str | None) -> str | None:
    """The dbt vars (up to three) on which this build differs from the current model's features,
    or None. A nightly run with other `--vars` builds features the current model cannot score
    (features.check_settings would refuse them): another model must score them."""
    from leadscore import features, registry

    differences = registry.settings_mismatch(con, current) if current is not None else []
    return features.first_of(differences, 3) if differences else None


def _model_for_these_features(con: duckdb.DuckDBPyConnection, current: str) -> str | None:
    """The newest registered model, other than `current`, trained on features built with this
    build's dbt vars and the same columns: a night that goes back to vars an earlier model was
    trained on (the defaults after one night with `--vars`) switches back to it instead of
    training the same model again."""
    from leadscore import features, registry

    built = features.read_settings(con)
    if built is None:
        return None
    columns = features.feature_hash(features.read_features(con))
    for row in registry.list_models(con):  # newest first
        version = row["model_version"]
        if version != current and row.get("feature_hash") == columns and registry.recorded_settings(con, version) == built:
            return version
    return None


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
    *,
    trials: int | None = None,
    folds: int = 5,
    ensemble: str = "voting",
    target_prevalence: float | str | None = None,
    score_mix: bool = True,
    dbt_vars: str | None = None,
) -> NightlyResult:
    """Run every step, each with the same step function its own command calls; raise
    LeadscoreError (after recording the failure) if any step fails.

    Progress goes to the "leadscore.nightly" logger, one record per event with the step in
    `extra` (the command chooses the format: commands.logging_to_stdout). The training options
    are train_model's and apply when the run trains; `dbt_vars` goes to `dbt build --vars`.

    The run's outcome is in the serving snapshot: a run that gets as far as publishing records
    its end ('succeeded') first, so the snapshot it publishes says so. A run that fails keeps
    the last good snapshot and replaces only its nightly_runs table (serving.publish_run_log),
    so the failure is visible there without any half-done scores."""
    from leadscore import build, ingest, registry, runlock, score, serving, train

    run_id = f"n{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    result = NightlyResult(run_id)
    started = time.perf_counter()
    step = "run"

    def log(message: str, level: int = logging.INFO) -> None:
        LOG.log(level, message, extra={"step": step, "run_id": run_id})

    with runlock.exclusive("nightly"):  # re-entrant: the CLI may already hold it
        _record_start(run_id, input_dir)
        log(f"started (input {input_dir if input_dir is not None else 'none'})")
        faults.pause_point("nightly.started")
        try:
            if input_dir is not None:
                step = "ingest"
                with _timed(result, "ingest"), db.session() as con:
                    # one transaction per file: a bad file is quarantined, the others load
                    loads = ingest.ingest_files(con, ingest.discover_inputs(input_dir), quarantine=True)
                result.loads = loads
                for r in loads:
                    if r.status == "refused":
                        log(r.summary(), logging.WARNING)
                    elif r.status != "skipped":
                        log(r.summary())
                        if r.message:
                            log(f"{r.path}: {r.message}", logging.WARNING)
                result.files_loaded = sum(r.status == "loaded" for r in loads)
                result.files_skipped = sum(r.status == "skipped" for r in loads)
                result.files_refused = sum(r.status == "refused" for r in loads)
                result.rows_ingested = sum(r.rows_loaded for r in loads)
                result.rows_rejected = sum(r.rows_rejected for r in loads)
                log(f"{result.rows_ingested} rows from {result.files_loaded} new file(s), "
                    f"{result.files_skipped} already loaded, {result.files_refused} refused, "
                    f"{result.rows_rejected} rejected")

            step = "dbt build"
            dbt_args = [*build.NIGHTLY_BUILD_ARGS, "--no-use-colors", "--quiet",
                        *(["--vars", dbt_vars] if dbt_vars else [])]
            log("running" + (f" with --vars {dbt_vars}" if dbt_vars else "")
                + " (no output until it ends: seconds to minutes, as the database grows)")
            with _timed(result, "dbt_build"):
                dbt_result = build.run_dbt(dbt_args, quiet=True)
            result.dbt_counts = dbt_result.counts
            log(dbt_result.summary().removeprefix("dbt build: "))

            with db.session() as con:
                current = registry.current_version(con)
                step = "train"
                rebuilt = _features_rebuilt_otherwise(con, current)
                fitting = _model_for_these_features(con, current) if rebuilt and not retrain else None
                if fitting is not None:
                    registry.promote(con, fitting, reason=f"nightly: the features were built with its dbt vars; "
                                     f"{current} was trained on others ({rebuilt})")
                    log(f"model {current} was trained on features built with other dbt vars ({rebuilt}); "
                        f"model {fitting} was trained on these: it is current again, nothing to train")
                    rebuilt = None
                elif retrain or current is None or rebuilt:
                    if rebuilt:
                        why = (f"model {current} was trained on features built with other dbt vars ({rebuilt}) "
                               "and cannot score these: training one on them, to be current,")
                    else:
                        why = "retraining" if retrain else "no current model, training"
                    log(f"{why} with a "
                        f"{time_budget:.0f} s budget"
                        + (f", at most {trials} trials per model" if trials else "")
                        + f", {folds} folds, {ensemble} ensemble"
                        + (f", target prevalence {target_prevalence}" if target_prevalence is not None else ""))
                    with _timed(result, "train"):
                        trained = train.train_model(
                            con, time_budget=time_budget, trials=trials, seed=seed, folds=folds,
                            ensemble=ensemble, target_prevalence=target_prevalence, score_mix=score_mix,
                            promote="always" if rebuilt else "auto",
                            promote_reason=(f"nightly: the features were built with other dbt vars than {current}'s "
                                            f"({rebuilt}), which it cannot score") if rebuilt else None,
                        )
                    result.trained_model = trained.model_version
                    result.trained_became_current = trained.became_current
                    log(trained.summary())
                else:
                    log(f"skipped: model {current} is current (--retrain trains a new one)")
                step = "score"
                log("scoring the leads not yet scored by the current model")
                with _timed(result, "score"):
                    scored = score.score_leads(con)
                result.model_version = scored.model_version
                result.leads_scored = scored.leads_scored
                result.scored_from, result.scored_to = scored.first_lead_date, scored.last_lead_date
                log(scored.summary())
                result.top_leads = score.top_leads(con, TOP_LEADS)
                if scored.leads_scored:
                    step = "drift"
                    result.drift = _check_drift(con, scored.run_id, log)
                # The end is recorded before the snapshot is taken, so the snapshot carries it.
                refused = [f"{r.path.name}: {r.message}" for r in result.loads if r.status == "refused"]
                _record_end(result, "succeeded", ("files refused: " + " | ".join(refused)) if refused else None, con)
                step = "publish"
                with _timed(result, "publish"):
                    try:
                        published = serving.publish(con)
                    except serving.NoCurrentScores:
                        # The current model has just scored every unlabeled lead, so none exists
                        # (only training files so far): not a failed night. The last snapshot
                        # keeps its scores and learns of this run. (publish's own message says
                        # to run `leadscore score`, which this run just did.)
                        published = None
                        result.publish_skipped = (
                            f"model {result.model_version} has no scores: the database holds no unlabeled "
                            "lead yet (score files bring them)")
                        log(f"skipped: {result.publish_skipped}; the serving snapshot is left as it was",
                            logging.WARNING)
                        if serving.publish_run_log(con) is not None:
                            log("the serving snapshot's nightly_runs shows this run; its scores are unchanged")
                if published is not None:
                    log(published.summary())
        except BaseException as exc:
            message = str(exc) if isinstance(exc, LeadscoreError) else f"{type(exc).__name__}: {exc}"
            log(f"failed: {' '.join(message.split())}", logging.ERROR)
            try:
                _record_end(result, "failed", message)
            except Exception:  # the database may be what failed; the original error matters more
                pass
            else:
                if isinstance(exc, Exception):  # not on Ctrl-C: the user wants out
                    step = "publish"
                    _publish_failure(log)
            raise
        step = "run"
        log(f"succeeded in {time.perf_counter() - started:.1f} s"
            + (f", {result.files_refused} file(s) refused" if result.files_refused else ""))
    return result


def _check_drift(con: duckdb.DuckDBPyConnection, scoring_run_id: str,
                 log: Callable[..., None]) -> drift.DriftReport | None:
    """The drift of the batches scoring run `scoring_run_id` scored: a WARNING line per flagged
    batch, an INFO line otherwise. Monitoring, not a step the scores depend on: if batch_drift
    cannot be read (a database built without it), one WARNING says so and the run goes on."""
    try:
        report = drift.batches_of_run(con, scoring_run_id)
    except duckdb.Error as exc:
        log(f"not checked: main.batch_drift could not be read: {' '.join(str(exc).split())[:300]}",
            logging.WARNING)
        return None
    for batch in report.flagged:
        log(batch.warning(), logging.WARNING)
    log(report.summary())
    return report


def _publish_failure(log: Callable[..., None]) -> None:
    """Put the failed run in the snapshot's nightly_runs, leaving every other table of the last
    good snapshot as it was; a snapshot that cannot be updated only costs a warning."""
    from leadscore import serving

    try:
        with db.session() as con:
            if serving.publish_run_log(con) is not None:
                log("the serving snapshot's nightly_runs shows this failure; its scores are the last good run's")
    except Exception as exc:  # the database or the disk may be what failed
        log(f"could not record the failure in the serving snapshot: {' '.join(str(exc).split())[:300]}",
            logging.WARNING)
