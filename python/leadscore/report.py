"""Training report for a model version: `data/models/<version>/report/`.

`metrics.json` holds every figure of the training run plus the decile (lift) and calibration
tables, the Brier score and the feature importance of every ensemble member; the PNG plots are
meant for a sales analyst:

* `precision_recall.png`  how many flagged leads convert vs how many converting leads we catch,
                          with the chosen operating point;
* `f1_by_cutoff.png`      F1, precision and recall for every cutoff, chosen cutoff marked;
* `calibration.png`       predicted probability vs the conversion rate actually observed, in
                          groups of equal size (quantiles) on log axes: conversion rates of a few
                          percent crowd into a corner of linear axes;
* `lift_gain.png`         conversion rate per score decile relative to average (lift), and the
                          share of all conversions found when calling the top x% (gain);
* `feature_importance.png` the 25 lead attributes the shipped model relies on most: every
                          member of the ensemble, each member's importances as shares, combined
                          with the ensemble's weights.

All figures use out-of-fold predictions on the training rows (each lead scored by models that
never saw it). With a target prevalence, probabilities are the adjusted ones and every count is
reweighted to that prevalence (expected values), matching how the cutoff was chosen. Every plot
names the model version and the validation scheme, so a PNG passed around on its own still says
which model and which kind of evidence it shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import precision_recall_curve

from leadscore.errors import LeadscoreError

if TYPE_CHECKING:
    from leadscore.features import Encoding

PLOTS = ("precision_recall.png", "f1_by_cutoff.png", "calibration.png", "lift_gain.png", "feature_importance.png")
CALIBRATION_BINS = 10

# What each library's importance measures: split gain summed over the trees for the boosters
# (XGBoost's "gain" is an average per split, "total_gain" is LightGBM's "gain"), mean impurity
# decrease for the forests. Different units, so each member's are turned into shares first.
MEASURES = {"lightgbm": "total gain", "xgboost": "total gain", "random_forest": "impurity decrease",
            "extra_trees": "impurity decrease", "logistic": "mean |log-odds contribution|"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Importance:
    """Feature importance of the shipped model, per source feature.

    `shares` sum to 1 over the features (0 for an ensemble none of whose members split at all);
    `members` keeps, per base model used, its kind, measure, weight in the combination and its own
    shares, so the combined figure can be taken apart again (metrics.json)."""

    source: str  # what the numbers are: the importance plot's axis label
    shares: dict[str, float]
    members: dict[str, dict[str, Any]]


def _shares(values: np.ndarray) -> np.ndarray:
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    v = np.clip(v, 0.0, None)
    total = v.sum()
    return v / total if total > 0 else np.zeros_like(v)


def member_importance(kind: str, estimator: Any, n_columns: int) -> np.ndarray:
    """Raw importance per matrix column of one fitted base model, in its library's own unit (a
    tree's, which never reads the group keys, 0 for them)."""
    from leadscore.estimators import reads_group_keys

    if kind == "lightgbm":
        out = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), dtype=np.float64)
    elif kind == "xgboost":
        booster = estimator.get_booster()
        # only features with a split are listed, keyed "f<i>" (numpy input) or by name
        names = booster.feature_names
        index = {n: i for i, n in enumerate(names)} if names else None
        out = np.zeros(len(names) if names else estimator.n_features_in_)
        for key, value in booster.get_score(importance_type="total_gain").items():
            out[index[key] if index is not None else int(key[1:])] = float(value)
    elif kind in ("random_forest", "extra_trees"):
        out = np.asarray(estimator.feature_importances_, dtype=np.float64)
    elif kind == "logistic":
        out = estimator.importances()
    else:
        raise LeadscoreError(f"no importance for base model kind {kind!r}")
    if len(out) < n_columns and not reads_group_keys(kind):  # a tree: the columns before the group keys
        out = np.concatenate([out, np.zeros(n_columns - len(out))])
    if len(out) != n_columns:
        raise LeadscoreError(f"a {kind} model has {len(out)} importances for {n_columns} matrix columns")
    return out


def member_weights(spec: dict[str, Any]) -> tuple[dict[str, float], str]:
    """(weight share per base model used, how the weights were read) for an ensemble spec.

    Voting: the blend's weights (its Platt step is monotone: it changes no member's part).
    Stacking: |coefficient| shares of the meta-model. An approximation, said on the plot: the
    coefficients act on the members' logits, whose spread differs from member to member."""
    from leadscore import ensemble

    used = ensemble.used_models(spec)
    if spec["kind"] == "voting":
        raw = {n: abs(float(spec["weights"][n])) for n in used}
        how = "single model" if len(used) == 1 else "weighted by the voting weights"
    else:
        raw = {n: abs(float(c)) for n, c in zip(spec["inputs"], spec["coef"], strict=True)}
        how = "weighted by |stacking coefficient| shares (approximate: they act on logits)"
    total = sum(raw.values())
    if total <= 0:  # a meta-model that ignores every input: nothing to weight by, count them equally
        return {n: 1.0 / len(raw) for n in raw}, how
    return {n: v / total for n, v in raw.items()}, how


def source_features(columns: list[str], encoding: Encoding | None = None) -> list[str]:
    """The source feature of every matrix column: a `<feature>__missing` indicator the encoding
    adds belongs to its feature; every other column is its own feature (categoricals are one
    integer-code column, features.Encoding)."""
    if encoding is None:
        return list(columns)
    indicator_of = {f"{n}__missing": n for n in encoding.indicators}
    return [indicator_of.get(c, c) for c in columns]


def _by_source(values: np.ndarray, sources: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s, v in zip(sources, values, strict=True):
        out[s] = out.get(s, 0.0) + float(v)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def importances(estimators: dict[str, Any], spec: dict[str, Any], columns: list[str],
                encoding: Encoding | None = None) -> Importance:
    """Importance of the shipped model: every base model `spec` uses, its importances turned into
    shares (the libraries' units differ), combined with the ensemble weights and summed back to
    the source features. A single model is the ensemble of one with weight 1."""
    from leadscore.estimators import KINDS

    weights, how = member_weights(spec)
    sources = source_features(columns, encoding)
    combined = np.zeros(len(columns))
    members: dict[str, dict[str, Any]] = {}
    for name, weight in weights.items():
        if name not in estimators:
            raise LeadscoreError(f"the ensemble uses {name!r} but no fitted {name} is at hand")
        kind = KINDS[name]
        share = _shares(member_importance(kind, estimators[name], len(columns)))
        combined += weight * share
        members[name] = {"kind": kind, "measure": MEASURES[kind], "weight": weight,
                         "shares": _by_source(share, sources)}
    if len(members) == 1:
        (name, m), = members.items()
        source = f"{name}'s {m['measure']}"
    else:
        measures = sorted({m["measure"] for m in members.values()})
        source = f"ensemble of {len(members)}, each member's {' or '.join(measures)} as shares, {how}"
    return Importance(source=source, shares=_by_source(combined, sources), members=members)


def brier(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, float | None]:
    """Brier score (weighted mean squared error of the probabilities), the score of always
    predicting the (weighted) base rate, and the skill over it: 1 - score / reference, above 0
    when the model beats the base rate, 1 for a perfect one."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    score = float(np.average((p - y) ** 2, weights=w))
    rate = float(np.average(y, weights=w))
    reference = rate * (1.0 - rate)
    return {"brier_score": score, "brier_reference": reference,
            "brier_skill_score": 1.0 - score / reference if reference > 0 else None}


def quantile_bins(p: np.ndarray, w: np.ndarray | None = None, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """Bin number (0..) of every row: `bins` groups of equal (weighted) size by predicted
    probability. Rows with the same probability always share a bin (a group is cut only between
    distinct values), so with heavy ties there are fewer, unequal groups; empty bins are dropped
    and the numbers stay consecutive."""
    p = np.asarray(p, dtype=np.float64)
    w = np.ones(len(p)) if w is None else np.asarray(w, dtype=np.float64)
    if not len(p):
        return np.zeros(0, dtype=np.int64)
    values, inverse = np.unique(p, return_inverse=True)
    weight = np.bincount(inverse, weights=w, minlength=len(values))
    total = weight.sum()
    # each distinct value goes to the bin holding the middle of its weight
    middle = (np.cumsum(weight) - weight / 2) / total if total > 0 else np.linspace(0, 1, len(values))
    value_bin = np.minimum((middle * bins).astype(np.int64), bins - 1)
    _, value_bin = np.unique(value_bin, return_inverse=True)
    return value_bin[inverse]


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


def calibration_table(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None,
                      bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Groups of equal (weighted) size by predicted probability (quantile_bins), lowest first:
    mean prediction vs observed rate, the (weighted) leads and the rows in each. Equal-width
    bins put most leads of a rare outcome into the first bin or two."""
    y = np.asarray(y).astype(float)
    p = np.asarray(p, dtype=float)
    wts = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    idx = quantile_bins(p, w, bins)
    rows = []
    for b in range(int(idx.max()) + 1 if len(idx) else 0):
        m = idx == b
        wb = wts[m]
        rows.append({"bin": b + 1, "min_predicted": float(p[m].min()), "max_predicted": float(p[m].max()),
                     "mean_predicted": float(np.average(p[m], weights=wb)),
                     "observed_rate": float(np.average(y[m], weights=wb)), "leads": float(wb.sum()),
                     "rows": int(m.sum())})
    return rows


def validation_text(validation: dict[str, Any] | None) -> str:
    """The validation scheme in words, e.g. 'out-of-fold, 5-fold stratified'."""
    from leadscore import validation as val

    v = validation or {}
    k = v.get("folds")
    if v.get("scheme") == val.FORWARD:
        return f"out-of-fold, forward in time, {k} expanding windows"
    if v.get("scheme") == val.RANDOM:
        return f"out-of-fold, {k}-fold stratified"
    return "out-of-fold"


def plot_subtitle(metrics: dict[str, Any], prevalence: bool = True) -> str:
    """The line every plot carries: model version and validation scheme, and (where counts are
    shown) the training rate and the target prevalence they are reweighted to."""
    line = f"{metrics.get('model_version') or 'unversioned model'} · {validation_text(metrics.get('validation'))}"
    pi, target = metrics.get("train_positive_rate"), metrics.get("target_prevalence")
    if not prevalence or pi is None:
        return line
    if target is None:
        mix = (metrics.get("validation") or {}).get("score_mix") or {}
        if mix.get("applied"):
            return f"{line}\ntraining rate {pi:.1%}; rows reweighted to the score rows' customer mix"
        return f"{line} · training rate {pi:.1%}"
    how = " (estimated)" if metrics.get("target_prevalence_mode") == "auto" else ""
    return f"{line}\ntraining rate {pi:.1%}; counts reweighted to a target prevalence of {target:.1%}{how}"


def _pr(y, p, w):
    prec, rec, thr = precision_recall_curve(np.asarray(y).astype(int), p, sample_weight=w)
    return prec, rec, thr


def _percent(v: float, _pos: Any = None) -> str:
    return f"{100 * v:g}%"


def _save(plt: Any, fig: Any, path: Path, subtitle: str) -> None:
    fig.suptitle(subtitle, fontsize=8.5, color="0.3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    folder: Path,
    *,
    y: np.ndarray,
    p: np.ndarray,
    cutoff: float,
    sample_weight: np.ndarray | None,
    metrics: dict[str, Any],
    importance: Importance,
    per_model_oof: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write metrics.json and the plots into `folder`; returns the metrics written."""
    import textwrap

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

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
    subtitle = plot_subtitle(metrics)

    deciles = decile_table(y, p, w)
    calib = calibration_table(y, p, w)
    scores = brier(y, p, w)
    by_month = (metrics.get("validation") or {}).get("f1_by_month")
    out = dict(metrics)
    out.update({
        "operating_point": {"cutoff": cutoff, "precision": op_prec, "recall": op_rec,
                            "flagged_share": float(wts[pred].sum() / wts.sum()),
                            "true_positives": tp, "false_positives": fp, "false_negatives": fn},
        "deciles": deciles, "calibration": calib, **scores,
        "feature_importance": importance.shares, "feature_importance_source": importance.source,
        "feature_importance_members": importance.members,
        "plots": list(PLOTS) + (["f1_by_month.png"] if by_month else []),
    })

    # 1. precision-recall with operating point
    prec, rec, thr = _pr(y, p, w)
    fig, ax = plt.subplots(figsize=(7, 5.8))
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
    ax.set_title("Flagged leads that convert vs converting leads caught", fontsize=10.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    _save(plt, fig, folder / "precision_recall.png", subtitle)

    # 2. F1 / precision / recall against the cutoff
    pr_, rc_ = prec[:-1], rec[:-1]
    denom = pr_ + rc_
    f1 = np.divide(2 * pr_ * rc_, denom, out=np.zeros_like(denom), where=denom > 0)
    fig, ax = plt.subplots(figsize=(7, 5.3))
    ax.plot(thr, f1, lw=2.2, color="C3", label="F1 (balance of the two)")
    ax.plot(thr, pr_, lw=1.2, color="C0", label="precision: flagged leads that convert")
    ax.plot(thr, rc_, lw=1.2, color="C2", label="recall: converters caught")
    ax.axvline(cutoff, color="black", ls="--", lw=1.2, label=f"chosen cutoff {cutoff:.3f} (F1 {metrics.get('cv_f1', 0):.3f})")
    ax.set_xlabel("Cutoff: leads with a conversion probability at or above it are flagged")
    ax.set_ylabel("Score (0 to 1)")
    ax.set_title("How the cutoff trades precision for recall", fontsize=11)
    ax.set_xlim(0, min(1.0, max(float(np.quantile(p, 0.999)) * 1.1, cutoff * 1.5)))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    _save(plt, fig, folder / "f1_by_cutoff.png", subtitle)

    # 3. calibration: quantile groups on log axes (rates of a few percent fill the plot), the
    # rows in each group written beside its point, groups that saw no conversion at the bottom
    mp = np.array([r["mean_predicted"] for r in calib])
    ob = np.array([r["observed_rate"] for r in calib])
    n_rows = np.array([r["rows"] for r in calib])
    positive = np.concatenate([mp[mp > 0], ob[ob > 0]])
    lo = max(float(positive.min()) / 1.8, 1e-4) if positive.size else 1e-3
    hi = min(1.0, float(positive.max()) * 1.6) if positive.size else 1.0
    floor = lo * 1.15  # where a group with no observed conversion is drawn
    shown = np.where(ob > 0, ob, floor)
    xs = np.clip(mp, lo, None)
    fig, ax = plt.subplots(figsize=(6.6, 7.4))
    ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="perfectly reliable")
    ax.plot(xs, shown, "-", color="C3", lw=1.5, alpha=0.6)
    sizes = 25 + 175 * n_rows / max(int(n_rows.max()), 1) if len(n_rows) else []
    hit = ob > 0
    ax.scatter(xs[hit], shown[hit], s=np.asarray(sizes)[hit] if len(n_rows) else [], color="C3", zorder=3,
               label=f"model: {len(calib)} groups of equal {'(reweighted) ' if w is not None else ''}size"
                     " by predicted probability;\npoint size and label: leads in the group")
    if (~hit).any():
        ax.scatter(xs[~hit], shown[~hit], s=np.asarray(sizes)[~hit], marker="v", facecolors="none",
                   edgecolors="C3", zorder=3, label="group in which no lead converted (drawn at the bottom)")
    for x_, y_, n_, h in zip(xs, shown, n_rows, hit, strict=True):
        ax.annotate(f"{int(n_):,}", (x_, y_), xytext=(7, -11 if h else 5), textcoords="offset points", fontsize=7,
                    color="0.25")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(_percent))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Predicted conversion probability (group average, log scale)")
    ax.set_ylabel("Share of the group that actually converted (log scale)")
    skill = scores["brier_skill_score"]
    skill_text = "" if skill is None else f", skill {skill:+.3f} over always predicting {base_rate:.1%}"
    ax.set_title(f"Can the probabilities be taken at face value?\nBrier score {scores['brier_score']:.4f}"
                 f"{skill_text}", fontsize=10.5)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    _save(plt, fig, folder / "calibration.png", subtitle)

    # 4. lift and cumulative gain by decile
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 5.2))
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
    xs_gain = [0] + [10 * i for i in d]
    a2.plot(xs_gain, [0] + [100 * r["cumulative_share_of_conversions"] for r in deciles], "o-", color="C3", lw=2,
            label="following the model")
    a2.plot([0, 100], [0, 100], color="grey", ls="--", lw=1, label="calling leads at random")
    a2.set_xlabel("Share of leads called, best-scored first (%)")
    a2.set_ylabel("Share of all conversions found (%)")
    a2.set_title("Cumulative gain", fontsize=11)
    a2.set_xlim(0, 100)
    a2.set_ylim(0, 102)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8, loc="lower right")
    _save(plt, fig, folder / "lift_gain.png", subtitle)

    # 5. feature importance of the whole ensemble; with several members each bar is split into
    # their parts (weight x share), so it shows which member leans on an attribute
    top = list(importance.shares.items())[:25]
    names = [k for k, _ in top][::-1]
    fig, ax = plt.subplots(figsize=(8.5, max(3.4, 0.3 * len(top) + 1.9)))
    if len(importance.members) > 1:
        left = np.zeros(len(names))
        members = sorted(importance.members.items(), key=lambda kv: -kv[1]["weight"])
        for i, (mname, m) in enumerate(members):
            vals = np.array([100 * m["weight"] * m["shares"].get(k, 0.0) for k in names])
            ax.barh(names, vals, left=left, color=f"C{i}", label=f"{mname} (weight {m['weight']:.2f})")
            left += vals
        ax.legend(fontsize=8, loc="lower right", title="part of each bar from", title_fontsize=8)
    else:
        ax.barh(names, [100 * v for _, v in top][::-1], color="C0")
    ax.set_xlabel("\n".join(textwrap.wrap(f"Share of the model's importance (%): {importance.source}", 70)),
                  fontsize=9)
    ax.set_title("Lead attributes the model relies on most (top 25)", fontsize=11)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    _save(plt, fig, folder / "feature_importance.png", plot_subtitle(metrics, prevalence=False))

    # 6. F1 by month (forward-in-time validation only): does the model hold up as time moves on?
    if by_month:
        fig, ax = plt.subplots(figsize=(8, 4.0))
        months = [m["month"] for m in by_month]
        ax.bar(months, [m["f1"] or 0.0 for m in by_month], color="C0", label="F1 at the cutoff")
        ax.plot(months, [m["positives"] / m["rows"] for m in by_month], color="C3", marker="o",
                label="actual positive rate")
        ax.set_ylim(0, 1)
        ax.set_title("Out-of-fold F1 by month of the lead date (forward-in-time folds)", fontsize=11)
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        _save(plt, fig, folder / "f1_by_month.png", plot_subtitle(metrics, prevalence=False))

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
