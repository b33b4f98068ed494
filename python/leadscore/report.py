"""Training report for a model version: `data/models/<version>/report/`.

`metrics.json` holds every figure of the training run plus the decile (lift) and calibration
tables; the PNG plots are meant for a sales analyst:

* `precision_recall.png`  how many flagged leads convert vs how many converting leads we catch,
                          with the chosen operating point;
* `f1_by_cutoff.png`      F1, precision and recall for every cutoff, chosen cutoff marked;
* `calibration.png`       predicted probability vs the conversion rate actually observed;
* `lift_gain.png`         conversion rate per score decile relative to average (lift), and the
                          share of all conversions found when calling the top x% (gain);
* `feature_importance.png` the 25 lead attributes the model relies on most.

All figures use out-of-fold predictions on the training rows (each lead scored by models that
never saw it). With a target prevalence, probabilities are the adjusted ones and every count is
reweighted to that prevalence (expected values), matching how the cutoff was chosen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def importances(estimators: dict[str, Any], spec: dict[str, Any], columns: list[str]) -> tuple[str, dict[str, float]]:
    """Gain importances of the LightGBM the shipped model reads most (the baseline otherwise),
    with the name of their source for the plot's axis."""
    from leadscore import ensemble
    from leadscore.estimators import BASELINE, KINDS

    used = ensemble.used_models(spec)
    weights = spec.get("weights", {})
    lgbm = sorted((n for n in used if KINDS[n] == "lightgbm"), key=lambda n: -float(weights.get(n, 1.0)))
    name = lgbm[0] if lgbm else BASELINE
    gain = estimators[name].booster_.feature_importance(importance_type="gain")
    return f"{name} total gain", {c: float(g) for c, g in zip(columns, gain, strict=True)}


def decile_table(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> list[dict[str, float]]:
    """Leads sorted by score, cut into 10 groups of equal (weighted) size, best first."""
    y = np.asarray(y).astype(float)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    order = np.argsort(-np.asarray(p), kind="stable")
    ys, ws, ps = y[order], w[order], np.asarray(p)[order]
    share = np.cumsum(ws) / ws.sum()
    decile = np.minimum((np.ceil(share * 10 - 1e-9)).astype(int), 10)
    decile = np.clip(decile, 1, 10)
    overall = float((ys * ws).sum() / ws.sum())
    total_pos = float((ys * ws).sum())
    rows, cum = [], 0.0
    for d in range(1, 11):
        m = decile == d
        wd = float(ws[m].sum())
        pos = float((ys[m] * ws[m]).sum())
        cum += pos
        rate = pos / wd if wd else 0.0
        rows.append({
            "decile": d, "leads": wd, "min_score": float(ps[m].min()) if m.any() else float("nan"),
            "conversion_rate": rate, "lift": rate / overall if overall else 0.0,
            "cumulative_share_of_conversions": cum / total_pos if total_pos else 0.0,
        })
    return rows


def calibration_table(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None, bins: int = 10) -> list[dict[str, float]]:
    """Quantile bins of the predicted probability: mean prediction vs observed rate."""
    y = np.asarray(y).astype(float)
    p = np.asarray(p, dtype=float)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in range(max(len(edges) - 1, 1)):
        m = idx == b
        if not m.any():
            continue
        wb = w[m]
        rows.append({"mean_predicted": float(np.average(p[m], weights=wb)),
                     "observed_rate": float(np.average(y[m], weights=wb)), "leads": float(wb.sum())})
    return rows


def _pr(y, p, w):
    prec, rec, thr = precision_recall_curve(np.asarray(y).astype(int), p, sample_weight=w)
    return prec, rec, thr


def write_report(
    folder: Path,
    *,
    y: np.ndarray,
    p: np.ndarray,
    cutoff: float,
    sample_weight: np.ndarray | None,
    metrics: dict[str, Any],
    importances: dict[str, float],
    importance_source: str,
    per_model_oof: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write metrics.json and the plots into `folder`; returns the metrics written."""
    folder.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    w = sample_weight
    wts = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    base_rate = float((y * wts).sum() / wts.sum())
    pred = p >= cutoff
    tp, fp = float(wts[pred & (y == 1)].sum()), float(wts[pred & (y == 0)].sum())
    fn = float(wts[~pred & (y == 1)].sum())
    op_prec = tp / (tp + fp) if tp + fp else 0.0
    op_rec = tp / (tp + fn) if tp + fn else 0.0
    weighted_note = f"\n(expected for a population converting at {base_rate:.0%})" if w is not None else ""

    deciles = decile_table(y, p, w)
    calib = calibration_table(y, p, w)
    out = dict(metrics)
    out.update({
        "operating_point": {"cutoff": cutoff, "precision": op_prec, "recall": op_rec,
                            "flagged_share": float(wts[pred].sum() / wts.sum()),
                            "true_positives": tp, "false_positives": fp, "false_negatives": fn},
        "deciles": deciles, "calibration": calib,
        "feature_importance": dict(sorted(importances.items(), key=lambda kv: -kv[1])),
        "plots": ["precision_recall.png", "f1_by_cutoff.png", "calibration.png", "lift_gain.png",
                  "feature_importance.png"],
    })

    # 1. precision-recall with operating point
    prec, rec, thr = _pr(y, p, w)
    fig, ax = plt.subplots(figsize=(7, 5.5))
    if per_model_oof:
        for name, q in per_model_oof.items():
            pr_m, rc_m, _ = _pr(y, q, w)
            ax.plot(rc_m, pr_m, lw=1, alpha=0.45, label=f"{name} alone")
    ax.plot(rec, prec, lw=2.2, color="C3", label="ensemble (the model used)")
    ax.axhline(base_rate, color="grey", ls="--", lw=1, label=f"calling every lead ({base_rate:.1%} convert)")
    ax.scatter([op_rec], [op_prec], s=90, color="black", zorder=5,
               label=f"chosen cutoff {cutoff:.3f}: {op_prec:.0%} of flagged convert, {op_rec:.0%} of converters caught")
    ax.set_xlabel("Recall: share of converting leads the model flags")
    ax.set_ylabel("Precision: share of flagged leads that convert")
    ax.set_title("Flagged leads that convert vs converting leads caught" + weighted_note, fontsize=10.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(folder / "precision_recall.png", dpi=110)
    plt.close(fig)

    # 2. F1 / precision / recall against the cutoff
    pr_, rc_ = prec[:-1], rec[:-1]
    denom = pr_ + rc_
    f1 = np.divide(2 * pr_ * rc_, denom, out=np.zeros_like(denom), where=denom > 0)
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(thr, f1, lw=2.2, color="C3", label="F1 (balance of the two)")
    ax.plot(thr, pr_, lw=1.2, color="C0", label="precision: flagged leads that convert")
    ax.plot(thr, rc_, lw=1.2, color="C2", label="recall: converters caught")
    ax.axvline(cutoff, color="black", ls="--", lw=1.2, label=f"chosen cutoff {cutoff:.3f} (F1 {metrics.get('cv_f1', 0):.3f})")
    ax.set_xlabel("Cutoff: leads with a conversion probability at or above it are flagged")
    ax.set_ylabel("Score (0 to 1)")
    ax.set_title("How the cutoff trades precision for recall" + weighted_note, fontsize=11)
    ax.set_xlim(0, min(1.0, max(float(np.quantile(p, 0.999)) * 1.1, cutoff * 1.5)))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(folder / "f1_by_cutoff.png", dpi=110)
    plt.close(fig)

    # 3. calibration
    fig, ax = plt.subplots(figsize=(6, 6))
    mx = max(max(r["mean_predicted"] for r in calib), max(r["observed_rate"] for r in calib), 0.05) * 1.08
    ax.plot([0, mx], [0, mx], color="grey", ls="--", lw=1, label="perfectly reliable")
    ax.plot([r["mean_predicted"] for r in calib], [r["observed_rate"] for r in calib], "o-", color="C3", lw=2,
            label="model (10 groups of leads, by predicted probability)")
    ax.set_xlabel("Predicted conversion probability (group average)")
    ax.set_ylabel("Share of the group that actually converted")
    ax.set_title("Can the probabilities be taken at face value?" + weighted_note, fontsize=11)
    ax.set_xlim(0, mx)
    ax.set_ylim(0, mx)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=110)
    plt.close(fig)

    # 4. lift and cumulative gain by decile
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.8))
    d = [r["decile"] for r in deciles]
    a1.bar(d, [r["lift"] for r in deciles], color="C0")
    a1.axhline(1.0, color="grey", ls="--", lw=1, label="average lead")
    for r in deciles:
        a1.text(r["decile"], r["lift"], f"{r['conversion_rate']:.0%}", ha="center", va="bottom", fontsize=8)
    a1.set_xticks(d, [f"top {10 * i}%" if i == 1 else f"{10 * (i - 1)}-{10 * i}%" for i in d], rotation=45, fontsize=8)
    a1.set_xlabel("Leads ranked by predicted probability (10% groups)")
    a1.set_ylabel("Lift: conversion rate / average rate")
    a1.set_title("Lift by decile (label: conversion rate)", fontsize=11)
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3, axis="y")
    xs = [0] + [10 * i for i in d]
    a2.plot(xs, [0] + [100 * r["cumulative_share_of_conversions"] for r in deciles], "o-", color="C3", lw=2,
            label="following the model")
    a2.plot([0, 100], [0, 100], color="grey", ls="--", lw=1, label="calling leads at random")
    a2.set_xlabel("Share of leads called, best-scored first (%)")
    a2.set_ylabel("Share of all conversions found (%)")
    a2.set_title("Cumulative gain", fontsize=11)
    a2.set_xlim(0, 100)
    a2.set_ylim(0, 102)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "lift_gain.png", dpi=110)
    plt.close(fig)

    # 5. feature importance
    top = sorted(importances.items(), key=lambda kv: -kv[1])[:25]
    total = sum(v for _, v in importances.items()) or 1.0
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.3 * len(top) + 1.2)))
    names = [k for k, _ in top][::-1]
    vals = [100 * v / total for _, v in top][::-1]
    ax.barh(names, vals, color="C0")
    ax.set_xlabel(f"Share of the model's total importance (%), {importance_source}")
    ax.set_title("Lead attributes the model relies on most (top 25)", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(folder / "feature_importance.png", dpi=110)
    plt.close(fig)

    # 6. F1 by month (forward-in-time validation only): does the model hold up as time moves on?
    by_month = (metrics.get("validation") or {}).get("f1_by_month")
    if by_month:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        months = [m["month"] for m in by_month]
        ax.bar(months, [m["f1"] or 0.0 for m in by_month], color="C0", label="F1 at the cutoff")
        ax.plot(months, [m["positives"] / m["rows"] for m in by_month], color="C3", marker="o",
                label="actual positive rate")
        ax.set_ylim(0, 1)
        ax.set_title("Out-of-fold F1 by month of the lead date (forward-in-time folds)", fontsize=11)
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(folder / "f1_by_month.png", dpi=110)
        plt.close(fig)

    (folder / "metrics.json").write_text(json.dumps(out, indent=2, sort_keys=True, default=_json_default))
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
