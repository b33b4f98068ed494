"""`leadscore evaluate`: how good were the scores, now that the outcomes are known?

A CSV of `id,is_converted` (outcomes learned later; read by leadscore.labels_file) is joined on
the input file's `id` to the scores a model wrote to `ops.score_history` (the latest score per
lead from that model), and the figures of leadscore.metrics (definitions there) are computed.
Each evaluation is stored as one row of `ops.evaluations`, the outcomes of the loaded leads the
file names in `ops.outcomes` (leadscore.outcomes: what a retrain is later judged on), and written as
`evaluation-<stamp>.json` plus a precision-recall PNG under
`config.data_dir() / "reports" / "evaluations"`. Never into the model's folder: that folder is
checksummed at training time and verified on every load (model.verify_checksums).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from leadscore import config, db, outcomes, tables
from leadscore.errors import LeadscoreError
from leadscore.labels_file import Labels, read_labels
from leadscore.metrics import (
    BOOTSTRAP_RESAMPLES,
    LOG_LOSS_EPS,
    EvaluationResult,
    evaluate_scores,
    f1_intervals,
    pr_curve,
)

EXAMPLES = 5


@dataclass
class Evaluation:
    evaluation_id: str
    evaluated_at: datetime
    model_version: str
    labels_path: str
    labels_sha256: str
    label_rows: int
    rows_matched: int
    rows_unmatched: int
    unknown_ids: int                      # of the unmatched: id not in raw.leads at all
    unmatched_examples: list[int]
    result: EvaluationResult
    f1_ci95: tuple[float, float]          # bootstrap interval of result.f1 (metrics.f1_intervals)
    report_json: Path | None = None
    report_png: Path | None = None
    notes: list[str] = field(default_factory=list)


def reports_dir() -> Path:
    """Evaluation reports: beside the models, never inside a (checksummed) model folder."""
    return config.data_dir() / "reports" / "evaluations"


def _model_cutoff(con: duckdb.DuckDBPyConnection, model_version: str | None) -> tuple[str, float]:
    from leadscore import registry

    version, row = registry.require_row(con, model_version)
    return version, float(row["cutoff"])


def match_scores(con: duckdb.DuckDBPyConnection, labels: Labels, model_version: str) -> dict[str, Any]:
    """Join the labels to the latest score of `model_version` per lead, on raw.leads.id. When one
    id belongs to several scored leads (the same id in two loaded files), the latest score wins."""
    if not (db.table_exists(con, "ops", "score_history") and db.table_exists(con, "raw", "leads")):
        raise LeadscoreError("the database holds no scores yet: run `leadscore score` first")
    import pyarrow as pa

    con.register("_evaluate_labels", pa.table({
        "id": labels.ids, "is_converted": labels.labels, "line": labels.lines,
    }))
    try:
        rows = db.fetch_all(
            con,
            """
            with scored as (
                select l.id, h.conversion_probability, count(*) over (partition by l.id) as leads_with_id
                from ops.score_history as h
                inner join raw.leads as l on h.lead_id = l.lead_id
                where h.model_version = ? and l.id is not null
                qualify row_number() over (
                    partition by l.id order by h.scored_at desc, h.run_id desc, h.lead_id desc
                ) = 1
            )
            select
                t.id,
                t.is_converted,
                s.conversion_probability,
                coalesce(s.leads_with_id, 0),
                exists (select 1 from raw.leads as k where k.id = t.id) as known
            from _evaluate_labels as t
            left join scored as s on t.id = s.id
            order by t.line
            """,
            [model_version],
        )
    finally:
        con.unregister("_evaluate_labels")
    matched = [r for r in rows if r[2] is not None]
    unmatched = [r for r in rows if r[2] is None]
    return {
        "y": np.asarray([r[1] for r in matched], dtype=np.int64),
        "p": np.asarray([r[2] for r in matched], dtype=np.float64),
        "unmatched": len(unmatched),
        "unknown": sum(1 for r in unmatched if not r[4]),
        "examples": [int(r[0]) for r in unmatched[:EXAMPLES]],
        "ambiguous": sum(1 for r in matched if r[3] > 1),
    }


def evaluate_labels(
    con: duckdb.DuckDBPyConnection,
    labels_path: Path,
    model_version: str | None = None,
    now: datetime | None = None,
    write_report: bool = True,
) -> Evaluation:
    """Read the labels, join them to the model's scores, compute the figures, write the report
    files and append one row to ops.evaluations (the row last, in one transaction; the report
    files are removed again if it fails)."""
    labels = read_labels(labels_path)
    version, cutoff = _model_cutoff(con, model_version)
    m = match_scores(con, labels, version)
    if len(m["y"]) == 0:
        raise LeadscoreError(
            f"{labels.path}: none of its {len(labels.ids)} ids has a score from model {version} "
            f"({m['unknown']} not in the database; e.g. {', '.join(map(str, m['examples']))}): "
            "evaluate the scored leads' ids, or score them first with `leadscore score`"
        )
    result = evaluate_scores(m["y"], m["p"], cutoff)
    now = now or datetime.now(UTC)
    stamp = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    ev = Evaluation(
        evaluation_id=f"e{stamp}",
        evaluated_at=now,
        model_version=version,
        labels_path=str(labels.path.resolve()),
        labels_sha256=labels.sha256,
        label_rows=len(labels.ids),
        rows_matched=result.rows,
        rows_unmatched=m["unmatched"],
        unknown_ids=m["unknown"],
        unmatched_examples=m["examples"],
        result=result,
        f1_ci95=tuple(f1_intervals(m["y"], m["p"] >= cutoff)["f1_ci95"]),
    )
    if m["unmatched"]:
        ev.notes.append(
            f"{m['unmatched']} labeled id(s) have no score from model {version} "
            f"({m['unknown']} not in the database, {m['unmatched'] - m['unknown']} not scored by this model; "
            f"e.g. {', '.join(map(str, m['examples']))})"
        )
    if m["ambiguous"]:
        ev.notes.append(f"{m['ambiguous']} id(s) belong to more than one scored lead: the latest score was used")
    if result.auc is None:
        ev.notes.append("every matched lead has the same outcome: AUC is undefined"
                        + ("" if result.positives else " and so is average precision"))

    if write_report:
        folder = reports_dir()
        folder.mkdir(parents=True, exist_ok=True)
        ev.report_json = folder / f"evaluation-{stamp}.json"
        ev.report_png = folder / f"evaluation-{stamp}.png"
    try:
        if write_report:
            write_precision_recall_png(ev.report_png, m["y"], m["p"], ev)
            ev.report_json.write_text(json.dumps(evaluation_json(ev), indent=2, sort_keys=True))
        store_evaluation(con, ev, labels)
    except BaseException:
        for path in (ev.report_json, ev.report_png):
            if path is not None:
                path.unlink(missing_ok=True)
        raise
    return ev


def evaluation_json(ev: Evaluation) -> dict[str, Any]:
    out = {k: v for k, v in asdict(ev).items() if k not in ("result", "report_json", "report_png")}
    out["evaluated_at"] = ev.evaluated_at.isoformat()
    out["metrics"] = asdict(ev.result)
    out["report_png"] = None if ev.report_png is None else ev.report_png.name
    out["definitions"] = (
        "flagged = probability >= cutoff; F1 = 2TP/(2TP+FP+FN); f1_ci95 = 2.5%/97.5% quantiles of F1 over "
        f"{BOOTSTRAP_RESAMPLES} seeded bootstrap resamples of the matched leads; best_f1 over cutoffs at observed scores; "
        "AUC with ties as 1/2; average precision = sum (R_k - R_k-1) P_k; "
        f"log-loss natural log, probabilities clipped to [{LOG_LOSS_EPS}, 1-{LOG_LOSS_EPS}]; Brier = mean (p - y)^2"
    )
    return out


def row_values(ev: Evaluation) -> dict[str, Any]:
    r = ev.result
    return {
        "evaluation_id": ev.evaluation_id,
        "evaluated_at": ev.evaluated_at.replace(tzinfo=None),
        "model_version": ev.model_version,
        "cutoff": r.cutoff,
        "labels_path": ev.labels_path,
        "labels_sha256": ev.labels_sha256,
        "label_rows": ev.label_rows,
        "rows_matched": ev.rows_matched,
        "rows_unmatched": ev.rows_unmatched,
        "positives": r.positives,
        "actual_positive_rate": r.actual_positive_rate,
        "flagged": r.flagged,
        "flagged_share": r.flagged_share,
        "precision_at_cutoff": r.precision,
        "recall_at_cutoff": r.recall,
        "f1_at_cutoff": r.f1,
        "f1_ci95_low": ev.f1_ci95[0],
        "f1_ci95_high": ev.f1_ci95[1],
        "best_f1": r.best_f1,
        "best_cutoff": r.best_cutoff,
        "auc": r.auc,
        "average_precision": r.average_precision,
        "log_loss": r.log_loss,
        "brier": r.brier,
        "report_path": None if ev.report_json is None else str(ev.report_json),
    }


def store_evaluation(con: duckdb.DuckDBPyConnection, ev: Evaluation, labels: Labels | None = None) -> None:
    """The ops.evaluations row and, in the same transaction, the labels' outcomes of every loaded
    lead they name (leadscore.outcomes), whichever model scored it: the evidence a later retrain
    is judged on against the current model (leadscore.promotion)."""
    values = row_values(ev)
    cols = list(values)
    with db.transaction(con):
        tables.ensure_schemas(con)
        con.execute(
            f"insert into ops.evaluations ({', '.join(db.quote_ident(c) for c in cols)}) "
            f"values ({', '.join('?' for _ in cols)})",
            [values[c] for c in cols],
        )
        if labels is not None:
            outcomes.record(con, labels.ids, labels.labels, "evaluate", ev.evaluation_id, ev.evaluated_at)


def latest_evaluation(con: duckdb.DuckDBPyConnection, model_version: str | None = None) -> dict[str, Any] | None:
    """The newest ops.evaluations row (of `model_version` when given) as a dict, or None."""
    if not db.table_exists(con, "ops", "evaluations"):
        return None
    sql = "select * from ops.evaluations"
    params: list[Any] = []
    if model_version is not None:
        sql += " where model_version = ?"
        params.append(model_version)
    cur = con.execute(sql + " order by evaluated_at desc, evaluation_id desc limit 1", params)
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    return dict(zip(cols, rows[0], strict=True)) if rows else None


def write_precision_recall_png(path: Path, y: np.ndarray, p: np.ndarray, ev: Evaluation) -> None:
    """Precision-recall curve of the evaluated leads with the model's cutoff and the best one."""
    from leadscore.report import _plt

    plt = _plt()
    r = ev.result
    fig, ax = plt.subplots(figsize=(7, 5.5))
    if r.positives:
        precision, recall, _ = pr_curve(y, p)
        ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre", lw=2.2, color="C3",
                label=f"model {ev.model_version} (average precision {r.average_precision:.3f})")
        best = evaluate_scores(y, p, r.best_cutoff)
        ax.scatter([best.recall], [best.precision], s=70, marker="D", color="C2", zorder=5,
                   label=f"best cutoff {r.best_cutoff:.3f}: F1 {r.best_f1:.3f}")
    ax.axhline(r.actual_positive_rate, color="grey", ls="--", lw=1,
               label=f"calling every lead ({r.actual_positive_rate:.1%} converted)")
    ax.scatter([r.recall], [r.precision], s=90, color="black", zorder=6,
               label=f"model cutoff {r.cutoff:.3f}: F1 {r.f1:.3f}, {r.flagged_share:.1%} flagged")
    ax.set_xlabel("Recall: share of converted leads the model flagged")
    ax.set_ylabel("Precision: share of flagged leads that converted")
    ax.set_title(f"Scores against the outcomes learned later\n{Path(ev.labels_path).name}, "
                 f"{r.rows} leads, {ev.evaluated_at:%Y-%m-%d %H:%M} UTC", fontsize=10.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_lines(ev: Evaluation) -> list[str]:
    """What the CLI prints."""
    r = ev.result

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    ratio = "" if r.flagged_ratio is None else f" ({r.flagged_ratio:.2f}x the actual rate)"
    lines = [
        f"evaluation {ev.evaluation_id}: model {ev.model_version} on {ev.labels_path}",
        f"  rows              {ev.rows_matched} matched, {ev.rows_unmatched} unmatched of {ev.label_rows} labeled",
        f"  actual rate       {r.actual_positive_rate:.2%} ({r.positives} converted)",
        f"  flagged           {r.flagged_share:.2%} at cutoff {r.cutoff:.4f}{ratio}",
        f"  F1 at cutoff      {r.f1:.4f} (precision {r.precision:.4f}, recall {r.recall:.4f})",
        f"  F1, 95% interval  {ev.f1_ci95[0]:.4f} to {ev.f1_ci95[1]:.4f} (bootstrap of these {ev.rows_matched} leads: "
        "how far F1 moves from the sample alone)",
        f"  best F1           {r.best_f1:.4f} at cutoff {r.best_cutoff:.4f}",
        f"  AUC               {fmt(r.auc)}",
        f"  average precision {fmt(r.average_precision)}",
        f"  log-loss          {r.log_loss:.4f}",
        f"  Brier score       {r.brier:.4f}",
    ]
    if ev.report_json is not None:
        lines.append(f"  report            {ev.report_json} (+ {ev.report_png.name})")
    return lines
