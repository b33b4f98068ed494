"""Whether a newly trained model may replace the current one (champion / challenger).

A retrain is not better because it is newer: a 45 s retrain can be worse than the model it
replaces. A new model becomes current only when it is at least as good as the current one on
the same evidence, in this order:

1. same training rows (equal data fingerprints): the out-of-fold log-loss of the chosen model,
   the score every candidate is selected on;
2. outcomes learned later (leadscore.outcomes: `leadscore evaluate` labels files and labels a
   score file carried): leads the current model scored whose outcome is now known. Neither
   model trained on them (a scored lead never becomes a training row), so both scores are out
   of sample: the current model's latest score (on its training rate) against the new model's
   score of the same leads' feature rows today, by log-loss on exactly those leads (at least
   `MIN_SHARED_OUTCOMES`, with a positive and a negative among them);
3. neither: no evidence against the new model, so it becomes current, and the reason says so.

Otherwise it is registered as a challenger: `leadscore models compare` / `promote` decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from leadscore import db, outcomes, registry
from leadscore import features as feat
from leadscore.metrics import evaluate_scores, f1_intervals
from leadscore.operating_point import log_loss, shift_prior
from leadscore.tables import LATEST_SCORES

MIN_SHARED_OUTCOMES = 50
OUTCOMES_BASIS = "outcomes learned later"


@dataclass
class Verdict:
    promote: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    con: duckdb.DuckDBPyConnection,
    data_fingerprint: str,
    oof_log_loss: float,
    predict_new: Callable[[pd.DataFrame], np.ndarray] | None = None,
    features: Sequence[feat.Feature] = (),
    validation_key: str | None = None,
) -> Verdict:
    """The verdict on a new model with chosen out-of-fold log-loss `oof_log_loss`.
    `predict_new` maps feature rows (features.load_leads, the model's `features`) to its
    probabilities on its training rate; without it the outcomes learned later are not read.
    Out-of-fold log-losses are compared only on the same training rows validated the same way
    (`validation_key`, validation.Validation.key): forward folds cut along other time blocks, or
    validated leads scored on other history, measure something else."""
    current = registry.current_version(con)
    if current is None:
        return Verdict(True, "the first model")
    row = registry.model_row(con, current) or {}
    selection = row.get("selection")
    selection = json.loads(selection) if isinstance(selection, str) else (selection or {})
    cur_ll = selection.get("chosen_oof_log_loss")
    # a record from before the key names its scheme only: random folds compare as before, forward
    # folds from before validated leads were scored as of their block's start do not
    cur_validation = selection.get("validation") or {}
    cur_key = cur_validation.get("key") or cur_validation.get("scheme")
    same_validation = cur_key is None or validation_key is None or cur_key == validation_key
    if row.get("data_fingerprint") == data_fingerprint and cur_ll is not None and same_validation:
        ev = {"basis": "same training rows", "current": current, "current_oof_log_loss": float(cur_ll),
              "new_oof_log_loss": float(oof_log_loss)}
        if oof_log_loss <= cur_ll:
            return Verdict(True, f"out-of-fold log-loss {oof_log_loss:.5f} <= current {current}'s {cur_ll:.5f} "
                                 "on the same training rows", ev)
        return Verdict(False, f"out-of-fold log-loss {oof_log_loss:.5f} > current {current}'s {cur_ll:.5f} "
                              "on the same training rows", ev)

    shared = scored_outcomes(con, current) if predict_new is not None else pd.DataFrame()
    if len(shared) >= MIN_SHARED_OUTCOMES:
        rows = feat.load_leads(con, shared["lead_id"].tolist(), features)
        shared = shared.merge(rows[["lead_id"]].assign(_row=np.arange(len(rows))), on="lead_id")
    if len(shared) >= MIN_SHARED_OUTCOMES and 0 < shared["is_converted"].sum() < len(shared):
        yy = shared["is_converted"].to_numpy(dtype=float)
        p_cur = shared["p"].to_numpy(dtype=float)
        if row.get("target_prevalence") is not None:  # its scores were shifted to a target rate
            p_cur = shift_prior(p_cur, float(row["target_prevalence"]), float(row["train_positive_rate"]))
        p_new = np.asarray(predict_new(rows), dtype=float)[shared["_row"].to_numpy()]
        cur, new = log_loss(yy, p_cur), log_loss(yy, p_new)
        n = len(yy)
        ev = {"basis": OUTCOMES_BASIS, "current": current, "leads": n, "positives": int(yy.sum()),
              "current_log_loss": cur, "new_log_loss": new}
        where = f"on {n} leads it scored whose outcome is now known"
        if new <= cur:
            return Verdict(True, f"log-loss {new:.5f} <= current {current}'s {cur:.5f} {where}", ev)
        return Verdict(False, f"log-loss {new:.5f} > current {current}'s {cur:.5f} {where}", ev)
    return Verdict(True, f"no shared evidence with current {current} (other training rows or validation, fewer than "
                         f"{MIN_SHARED_OUTCOMES} of its scored leads with a known outcome of each kind): "
                         "the newer model becomes current", {"basis": "none", "current": current})


def scored_outcomes(con: duckdb.DuckDBPyConnection, version: str) -> pd.DataFrame:
    """Leads `version` scored whose outcome is now known: lead_id, is_converted and its latest
    score p, ordered by lead_id."""
    if not db.table_exists(con, "ops", "latest_scores"):
        return pd.DataFrame({"lead_id": [], "is_converted": [], "p": []})
    rows = db.fetch_all(
        con,
        f"select o.lead_id, o.is_converted, s.conversion_probability from ({outcomes.known_outcomes_sql(con)}) as o "
        f"inner join {LATEST_SCORES} as s on s.lead_id = o.lead_id and s.model_version = ? order by o.lead_id",
        [version],
    )
    return pd.DataFrame(rows, columns=["lead_id", "is_converted", "p"])


# ------------------------------------------------------------------------ `leadscore models`


def _selection(row: dict[str, Any]) -> dict[str, Any]:
    sel = row.get("selection")
    return json.loads(sel) if isinstance(sel, str) else (sel or {})


def list_lines(con: duckdb.DuckDBPyConnection) -> list[str]:
    models = registry.list_models(con)
    if not models:
        return ["no model is registered yet: run `leadscore train`"]
    lines = ["   version                       trained (UTC)        chosen              OOF F1   OOF log-loss  rows"]
    for m in models:
        sel = _selection(m)
        ll = sel.get("chosen_oof_log_loss")
        lines.append(f"{'*' if m['is_current'] else ' '}  {m['model_version']:<29} {m['trained_at']:%Y-%m-%d %H:%M:%S}  "
                     f"{sel.get('chosen', m.get('ensemble', '')):<18} {m['cv_f1'] or 0:7.4f}  "
                     f"{'' if ll is None else f'{ll:12.5f}'}  {m['train_rows']}")
    lines.append("* current (champion); the others are earlier models or challengers")
    return lines


def show_lines(con: duckdb.DuckDBPyConnection, version: str | None) -> list[str]:
    version, row = registry.require_row(con, version)
    sel = _selection(row)
    lines = [
        f"model {version}" + (" (current)" if row["is_current"] else ""),
        f"  trained {row['trained_at']:%Y-%m-%d %H:%M:%S} UTC on {row['train_rows']} rows "
        f"(positive rate {row['train_positive_rate']:.3%}), data fingerprint {str(row.get('data_fingerprint'))[:12]}",
        f"  out-of-fold F1 {row['cv_f1']:.4f}  AUC {row['cv_auc']:.4f}  cutoff {row['cutoff']:.4f}",
        f"  chosen {sel.get('chosen')}: {sel.get('reason', '')}",
        f"  files {registry.artifact_folder(row, con)}",
    ]
    for e in registry.events(con, version):
        lines.append(f"  {e['event_at']:%Y-%m-%d %H:%M:%S}  {e['model_version']} {e['action']}"
                     + (f" (current was {e['previous_current']})" if e["previous_current"] else "")
                     + f": {e['reason']}")
    return lines


def compare_lines(con: duckdb.DuckDBPyConnection, a: str, b: str) -> list[str]:
    """Two models on the same evidence: the same training rows, outcomes learned since both
    scored the same leads, and `leadscore evaluate` runs on the same labels file."""
    (_, ra), (_, rb) = registry.require_row(con, a), registry.require_row(con, b)
    lines = [f"{'':34}{a:>30}  {b:>30}"]
    for label, key in (("out-of-fold F1", "cv_f1"), ("out-of-fold AUC", "cv_auc"), ("cutoff", "cutoff"),
                       ("training rows", "train_rows")):
        lines.append(f"{label:<34}{ra[key]:>30.4f}  {rb[key]:>30.4f}" if isinstance(ra[key], float)
                     else f"{label:<34}{ra[key]:>30}  {rb[key]:>30}")
    la, lb = _selection(ra).get("chosen_oof_log_loss"), _selection(rb).get("chosen_oof_log_loss")
    same_rows = ra.get("data_fingerprint") == rb.get("data_fingerprint")
    if la is not None and lb is not None:
        lines.append(f"{'out-of-fold log-loss':<34}{la:>30.5f}  {lb:>30.5f}"
                     + ("   (same training rows: comparable)" if same_rows else "   (other training rows)"))
    known_a, known_b = scored_outcomes(con, a), scored_outcomes(con, b)
    shared = known_a.merge(known_b[["lead_id", "p"]], on="lead_id", suffixes=("_a", "_b"))
    if len(shared):
        y = shared["is_converted"].to_numpy(dtype=float)
        pa, pb = shared["p_a"].to_numpy(dtype=float), shared["p_b"].to_numpy(dtype=float)
        lines.append(f"{f'log-loss on {len(y)} leads both scored':<34}{log_loss(y, pa):>30.5f}  {log_loss(y, pb):>30.5f}"
                     "   (outcomes learned later)")
        # each model flags at its own cutoff; the two F1 share the leads, so their difference is
        # read against the paired bootstrap, not against two separate intervals
        flag_a, flag_b = pa >= float(ra["cutoff"]), pb >= float(rb["cutoff"])
        f1_a, f1_b = (evaluate_scores(y, q, float(r["cutoff"])).f1 for q, r in ((pa, ra), (pb, rb)))
        low, high = f1_intervals(y, flag_a, flag_b)["diff_ci95"]
        lines.append(f"{'F1 at own cutoff on those leads':<34}{f1_a:>30.4f}  {f1_b:>30.4f}")
        verdict = ("the first is better" if low > 0 else "the second is better" if high < 0
                   else "within the sample's noise")
        lines.append(f"{'F1, first minus second, 95%':<34}{f'{low:+.4f} to {high:+.4f}':>30}  {verdict:>30}")
    # a challenger is not scored by the nightly run: say what would put the two side by side
    # (scoring writes the model's own history; scored_leads stays the current model's)
    for scored, other, only in ((a, b, len(known_a) - len(shared)), (b, a, len(known_b) - len(shared))):
        if only > 0:
            lines.append(f"{only} leads with a known outcome were scored by {scored} but not by {other}: "
                         f"`leadscore score --model {other}` scores them, then compare again")
    if db.table_exists(con, "ops", "evaluations"):
        ev = db.fetch_all(
            con,
            """
            select e.labels_sha256, e.model_version, arg_max(e.f1_at_cutoff, e.evaluated_at), arg_max(e.log_loss, e.evaluated_at)
            from ops.evaluations as e where e.model_version in (?, ?) group by all
            """,
            [a, b],
        )
        by_file: dict[str, dict[str, tuple]] = {}
        for sha, v, f1, ll in ev:
            by_file.setdefault(sha, {})[v] = (f1, ll)
        for sha, m in by_file.items():
            if a in m and b in m:
                lines.append(f"{f'evaluate {sha[:8]}: F1 / log-loss':<34}{m[a][0]:>21.4f} / {m[a][1]:.4f}  "
                             f"{m[b][0]:>21.4f} / {m[b][1]:.4f}")
    return lines
