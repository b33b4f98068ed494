"""`leadscore train`: the baseline first, then the candidates that must beat it, then register.

What one call does (`train_model`):

1. Reads the `split = 'train'` rows of `main.fct_lead_features` and freezes the categorical
   encoding (features.Encoding: the SQL already bucketed rare values; this only maps levels).
2. **Baseline.** A LightGBM of fixed textbook parameters (estimators.BASELINE_PARAMS) is
   cross-validated on stratified K folds. It is always trained and is the model that ships
   unless something beats it.
3. **Candidates, budget where it pays.** The linear member (linear.py), LightGBM, XGBoost,
   ExtraTrees and RandomForest are tuned with Optuna (tuning.py) in turn, each in a slot of the
   time left. A family whose first trial is more than `DROP_MARGIN` behind the leader on
   out-of-fold log-loss, and that does not improve a blend with the leader beyond the fold
   noise either, is dropped at once and its time goes to the families after it; whatever time
   is left then goes to a second rung over the surviving families, best first (successive
   halving across families). Then a soft-voting ensemble of everything trained (ensemble.py).
4. **Selection.** Each candidate's per-fold log-loss is paired with the baseline's on the same
   folds; it replaces the baseline only when its mean gain exceeds `NOISE_SE` standard errors
   of those paired differences (the fold-to-fold noise). The registry's `selection` records what
   won, the gain and the noise.
5. **Operating point** (operating_point.py). The cutoff maximises out-of-fold F1 of the chosen
   model. With `target_prevalence` P the probabilities are prior-shifted and the cutoff
   maximises the expected F1 at P; with `"auto"` P is estimated from the score rows as the
   maximum-likelihood mix of the two classes' out-of-fold score distributions (binned, with a
   bootstrap standard error and a chi-square check that only the class balance moved).

Operating point / `target_prevalence` (which to use when):

* `None` (default): the scoring population converts like the training rows (~8%). Use this for
  the nightly job, where new leads come from the same funnel.
* a float `P`: the scoring population is known to convert at rate P (the competition's test file
  was rebalanced to ~1:2, P ~ 0.33).
* `"auto"`: P is estimated from the unlabeled leads (split = 'score'); use it when the scoring
  batch is believed to differ in its positive rate but the rate is unknown. The estimate, its
  standard error, the label-shift check and the BBSE and EM estimates beside it are stored in
  model.json and the registry; a failed check is printed as a WARNING.

Time budget: `time_budget` seconds is the budget of the WHOLE call. The baseline is always
trained, but its cross-validation stops after the fold that leaves just enough time for its
final fit (`FINAL_FIT_FOLDS`): the cutoff is then read off the finished folds' rows only, and the
registry's validation record says how many folds were validated. At least one fold and the final
fit always run, so a budget below that is overrun by that much. The promotion rule's look at
leads with known outcomes comes after the budget too (predicting them with the new model: 6.4 s
for the ensemble at 100,000 such leads, a nightly's few thousand well under a second).

Reproducibility: same rows + same seed + same thread count (LEADSCORE_THREADS) -> identical
model and scores, provided the trial count is fixed by `trials` and the budget does not bind.
Studies are keyed by a fingerprint of the training rows (tuning.study_name), so training on
data set X and then Y in one models folder gives the model that training on Y alone gives.
Warm start from the current model's parameters happens only when most of its training rows are
among today's (a nightly retrain on grown data), never across data sets.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from leadscore import db, ensemble, promotion, registry, report, score_mix, validation
from leadscore.selection import select_model
from leadscore.validation import f1_by_month
from leadscore import features as feat
from leadscore.errors import LeadscoreError
from leadscore.evidence import for_training as customer_evidence
from leadscore.progress import Bar
from leadscore.progress import bar as progress_bar
from leadscore.estimators import (
    BASELINE,
    BASELINE_PARAMS,
    KINDS,
    MODEL_FILES,
    MODEL_NAMES,
    on_its_columns,
    predict_base,
    save_base_model,
    threads,
)
from leadscore.operating_point import (
    PrevalenceEstimate,
    bagged_f1_cutoff,
    estimate_prevalence,
    f1_at,
    f1_optimal_cutoff,
    fold_log_losses,
    prevalence_weights,
    shift_prior,
)
from leadscore.tuning import (
    Clock,
    Data,
    ModelResult,
    cross_validate,
    current_model_meta,
    data_fingerprint,
    fit_final,
    lead_sketch,
    open_storage,
    study_name,
    tune_model,
    warm_start_params,
)

ENSEMBLE_KINDS = ensemble.ENSEMBLE_KINDS
# A family whose first trial is this much (relative log-loss) behind the leader is dropped.
DROP_MARGIN = 0.03
# The baseline's final fit on all training rows, in fold times: a fold fits on (K-1)/K of the
# rows and also predicts, so about K/(K-1) plus a margin for a busy machine.
FINAL_FIT_FOLDS = 1.5


@dataclass
class TrainResult:
    """What `leadscore train` prints. Metrics are out-of-fold (OOF) on the training rows."""

    model_version: str
    cv_f1: float
    cv_auc: float
    cv_average_precision: float
    cutoff: float
    ensemble: str
    weights: dict[str, float]
    per_model: dict[str, dict[str, Any]]
    selection: dict[str, Any]
    train_rows: int
    train_positive_rate: float
    target_prevalence: float | None
    target_prevalence_mode: str
    prevalence_estimate: dict[str, Any] | None
    seconds: float
    time_budget: float
    artifact_dir: Path
    report_dir: Path
    validation: dict[str, Any] | None = None
    score_mix: dict[str, Any] | None = None
    became_current: bool = True
    promotion_reason: str = ""

    def summary(self) -> str:
        sel = self.selection
        lines = [
            f"model {self.model_version} ({sel['chosen']}, {self.train_rows} training rows, "
            f"positive rate {self.train_positive_rate:.3%})",
            ("  now the current model: " if self.became_current else
             "  registered as a CHALLENGER, the current model stays (`leadscore models promote` to switch): ")
            + self.promotion_reason,
            f"  out-of-fold F1 {self.cv_f1:.4f}  AUC {self.cv_auc:.4f}  PR-AUC {self.cv_average_precision:.4f}  "
            f"cutoff {self.cutoff:.4f}",
            f"  selection: {sel['reason']}",
        ]
        v = self.validation or {}
        if v.get("scheme") == "forward":
            rk = v.get("random_kfold_baseline") or {}
            lines.append(f"  validation: forward in time, {v['folds_validated']} expanding-window folds over the "
                         f"lead dates' time blocks ({v['validated_rows']} rows validated"
                         + (", each scored on its history as of its block's start"
                            if v.get("scored_as_of_block_start") else "") + ")"
                         + (f"; the baseline on random K-fold: F1 {rk['cv_f1']:.4f}" if "cv_f1" in rk else ""))
        if self.score_mix is not None and (self.score_mix["applied"] or self.target_prevalence is None):
            lines.append("  " + score_mix.ScoreMix.from_dict(self.score_mix).describe()
                         + ("; F1 is the expected F1 on that mix" if self.score_mix["applied"] else ""))
        if self.target_prevalence is not None:
            lines.append(f"  probabilities adjusted to a target prevalence of {self.target_prevalence:.3%} "
                         f"({self.target_prevalence_mode}); F1 is the expected F1 at that prevalence")
        if self.prevalence_estimate:
            pe = self.prevalence_estimate
            beside = "".join(f"; {name} {pe[key]:.4f}" for name, key in (("BBSE", "bbse_estimate"), ("EM", "em_estimate"))
                             if pe.get(key) is not None)
            lines.append(f"  prevalence estimate {pe['estimate']:.4f} +/- {pe['stderr']:.4f} "
                         f"(95% {pe['ci_low']:.4f}..{pe['ci_high']:.4f}, {pe['method']}{beside})")
            if pe.get("fit_p_value") is not None:
                lines.append(f"  label-shift check: chi-square {pe['fit_chi2']:.1f} on {pe['fit_df']} degrees of freedom, "
                             f"p = {pe['fit_p_value']:.2g}" + ("" if pe.get("label_shift_holds", True) else
                                                                " (WARNING: more than the class balance changed)"))
        for name, m in self.per_model.items():
            w = self.weights.get(name)
            extra = f"imbalance {m['imbalance']:<12} trials {m['trials_this_run']} (study {m['trials_total']})" \
                if name != BASELINE else "fixed parameters"
            lines.append(f"  {name:<18} OOF log-loss {m['oof_log_loss']:.5f}  F1 {m['oof_f1']:.4f}  "
                         f"AUC {m['oof_auc']:.4f}  {extra}" + (f"  weight {w:.3f}" if w else ""))
        for name, note in sel.get("dropped", {}).items():
            lines.append(f"  {name:<18} {note}")
        lines.append(f"  trained in {self.seconds:.1f}s of a {self.time_budget:.0f}s budget; "
                     f"artifacts {self.artifact_dir}; report {self.report_dir}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["artifact_dir"] = str(self.artifact_dir)
        d["report_dir"] = str(self.report_dir)
        return d

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------------- entry point


def _open(con_or_db_path) -> tuple[duckdb.DuckDBPyConnection, bool]:
    if isinstance(con_or_db_path, duckdb.DuckDBPyConnection):
        return con_or_db_path, False
    path = Path(con_or_db_path) if con_or_db_path is not None else None
    return db.connect(path), True


def train_model(
    con_or_db_path: duckdb.DuckDBPyConnection | str | Path | None = None,
    time_budget: float = 300,
    trials: int | None = None,
    seed: int = 0,
    folds: int = 5,
    ensemble: str = "voting",
    target_prevalence: float | str | None = None,
    resume: bool = True,
    progress: bool = True,
    *,
    score_mix: bool = True,
    models: tuple[str, ...] = MODEL_NAMES,
    baseline_only: bool = False,
    promote: str = "auto",
    promote_reason: str | None = None,
) -> TrainResult:
    """Train the baseline and the candidates, select, register a new current model version.

    `con_or_db_path`: an open DuckDB connection (kept open), or a database path / None for
    `config.db_path()` (opened for reading and again for registering, so the database is not
    locked for the whole run). `baseline_only` trains just the fixed baseline (fast and
    deterministic: the quality benchmark's ablation rows use it). `score_mix`: without a target
    prevalence, read the operating point off the out-of-fold rows reweighted to the score rows'
    customer mix when it moved beyond chance (score_mix.py). Raises LeadscoreError."""
    clock = Clock(time_budget)
    if time_budget <= 0:
        raise LeadscoreError(f"time budget must be positive, got {time_budget}")
    if ensemble not in ENSEMBLE_KINDS:
        raise LeadscoreError(f"unknown ensemble {ensemble!r}: expected one of {', '.join(ENSEMBLE_KINDS)}")
    if folds < 2:
        raise LeadscoreError(f"need at least 2 folds, got {folds}")
    if isinstance(target_prevalence, str) and target_prevalence != "auto":
        raise LeadscoreError(f"target prevalence must be a rate in (0, 1) or 'auto', got {target_prevalence!r}")
    if isinstance(target_prevalence, int | float) and not 0 < float(target_prevalence) < 1:
        raise LeadscoreError(f"target prevalence must be a rate in (0, 1), got {target_prevalence}")
    if promote not in ("auto", "always", "never"):
        raise LeadscoreError(f"promote must be auto, always or never, got {promote!r}")
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise LeadscoreError(f"unknown model(s) {unknown}: choose from {', '.join(MODEL_NAMES)}")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with progress_bar("train", total=time_budget, unit="s budget", enabled=progress, elapsed=clock.elapsed) as bar:
        return _train(con_or_db_path, clock, bar, trials, seed, folds, ensemble, target_prevalence, resume,
                      () if baseline_only else tuple(models), promote, promote_reason, score_mix)


def training_data(train_df: pd.DataFrame, flist: list[feat.Feature], folds: int, seed: int,
                  history: pd.DataFrame | None = None) -> tuple[Data, validation.Validation, feat.Encoding]:
    """The training rows as every model fits them: the encoding frozen on them, the folds, which
    matrix columns each kind reads, and, under forward-in-time folds, the rows as their folds
    score them (`history`: feat.load_validation_history). One place, so a diagnostic that
    cross-validates the members (bench/residuals.py) sees exactly what training sees."""
    y = train_df[feat.LABEL].to_numpy(dtype=bool).astype(np.int8)
    dates = train_df.get("lead_date")
    dated = dates is not None and len(dates) and dates.notna().mean() >= validation.MIN_DATED_SHARE
    if dated and history is None:
        raise LeadscoreError(f"the training rows carry lead_date but the database has no "
                             f"{feat.VALIDATION_HISTORY_TABLE}, which forward-in-time validation reads: "
                             "run `leadscore build` (dbt build) first")
    view = feat.validation_view(train_df, history)
    if dated and view is not None:
        blockless = int((dates.notna() & view.blocks.isna()).sum())
        if blockless:  # a table built before these rows: they would be fitted on in every fold
            raise LeadscoreError(f"{blockless} dated training rows have no time block in "
                                 f"{feat.VALIDATION_HISTORY_TABLE}, which was built before them: run "
                                 "`leadscore build` (dbt build) so it is built with fct_lead_features")
    encoding = feat.Encoding.fit(train_df, flist)
    val = validation.choose(None if view is None else view.blocks, y, folds, seed, train_df.get("rate_fold"))
    for note in val.notes:
        _warn(note)
    groups, leave_out = encoding.mixed_effects_columns()
    X = encoding.transform(train_df)
    patch_idx: tuple[int, ...] = ()
    patch = None
    if val.scheme == validation.FORWARD and view is not None and view.replaced:
        X_val = encoding.transform(view.rows)
        differ = ~((X_val == X) | (np.isnan(X_val) & np.isnan(X))).all(axis=0)
        patch_idx = tuple(int(i) for i in np.flatnonzero(differ))
        patch = np.ascontiguousarray(X_val[:, list(patch_idx)]) if patch_idx else None
    data = Data(X=X, y=y, pi=float(y.mean()), folds=val.folds,
                cat_idx=encoding.categorical_indices, code_idx=encoding.category_code_indices, seed=seed,
                n_threads=threads(len(y)), tree_width=encoding.tree_width, group_idx=groups,
                exclude_idx=leave_out, val_patch_idx=patch_idx, val_patch=patch)
    return data, val, encoding


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _train(con_or_db_path, clock: Clock, bar: Bar, trials, seed, folds, ensemble_kind, target_prevalence,
           resume, families, promote, promote_reason=None, use_score_mix: bool = True) -> TrainResult:
    con, owned = _open(con_or_db_path)
    try:
        bar.update(text="reading training rows")
        flist = feat.read_features(con)
        fhash = feat.feature_hash(flist)
        settings = feat.read_settings(con)
        train_df = feat.load_split(con, "train", flist)
        history = feat.load_validation_history(con)
        score_df = feat.load_split(con, "score", flist) if target_prevalence == "auto" else None
        # the score rows' customers, for the operating point's mix (score_mix.py): that column only
        key = [f for f in flist if f.name == feat.CUSTOMER_KEY]
        score_keys = feat.load_split(con, "score", key)[feat.CUSTOMER_KEY].to_numpy() \
            if key and target_prevalence is None and use_score_mix else None
        dbt_id = registry.dbt_invocation_id(con)
        previous = current_model_meta(con)
    finally:
        if owned:
            con.close()

    if train_df[feat.LABEL].isna().any():
        raise LeadscoreError(f"{int(train_df[feat.LABEL].isna().sum())} training rows have no is_converted label")
    y = train_df[feat.LABEL].to_numpy(dtype=bool).astype(np.int8)
    n_pos = int(y.sum())
    if n_pos < folds or len(y) - n_pos < folds:
        raise LeadscoreError(f"need at least {folds} positive and negative training rows, have {n_pos} / {len(y) - n_pos}")
    if target_prevalence == "auto" and (score_df is None or score_df.empty):
        raise LeadscoreError("target prevalence 'auto' needs unlabeled rows (split = 'score') to estimate from")
    data, val, encoding = training_data(train_df, flist, folds, seed, history)
    X, pi = data.X, data.pi
    columns = encoding.column_names
    data_fp = data_fingerprint(train_df["lead_id"].to_numpy(), y, X)
    warm = warm_start_params(previous, fhash, train_df["lead_id"])

    # 1. the baseline: always trained, never tuned
    bar.update(text=f"{BASELINE}: cross-validating")
    budget_end = clock.start + clock.budget

    def baseline_deadline(fold_s: float, folds_left: int) -> bool:  # room for one more fold and the final fit
        return time.monotonic() + fold_s * (1 + FINAL_FIT_FOLDS) > budget_end

    b_oof, b_losses, b_fold_s, b_eff = cross_validate(BASELINE, BASELINE_PARAMS, data, fold_deadline=baseline_deadline,
                                                      keep_partial=True)
    if len(b_losses) < len(val.folds):
        _warn(f"time budget: the baseline was validated on {len(b_losses)} of {len(val.folds)} folds "
              f"({b_fold_s:.0f} s a fold); the cutoff comes from those folds' rows, no candidate is tuned")
        val = val.first(len(b_losses))
        data = replace(data, folds=val.folds)
        families = ()  # no time left, and a study must never record trials on truncated folds
    bar.update(text=f"{BASELINE}: final fit")
    b_est, b_eff, b_fit_s = fit_final(BASELINE, BASELINE_PARAMS, data)
    results: dict[str, ModelResult] = {BASELINE: ModelResult(
        name=BASELINE, params=dict(BASELINE_PARAMS), effective_prior=b_eff, oof=b_oof, fold_losses=b_losses,
        fold_seconds=b_fold_s, fit_seconds=b_fit_s, estimator=b_est)}

    reserve = min(max(0.05 * clock.budget, 2.5), 15.0)
    # with forward-in-time folds, the baseline on random K-fold too: what a random split flatters
    random_kfold = _random_kfold_baseline(val, data, clock, reserve, b_fold_s)

    # 2. the candidates, each family in a slot of the time left; laggards dropped early
    notes: dict[str, str] = {}
    dropped: dict[str, str] = {}
    storage = open_storage(_warn) if families else None
    for i, name in enumerate(families):
        leader = min(results.values(), key=lambda r: r.oof_log_loss)
        slot_end = time.monotonic() + max(0.0, (clock.left() - reserve) / (len(families) - i))
        sname = study_name(name, fhash, data_fp, seed, folds, val.key)
        r, note = tune_model(name, data, storage, sname, slot_end, clock.start + clock.budget - reserve, trials,
                             resume, bar, (BASELINE, b_fold_s), warm.get(name),
                             (leader.name, leader.oof_log_loss, DROP_MARGIN * leader.oof_log_loss, leader.oof))
        notes[name] = note
        if r is None:
            dropped[name] = note
        else:
            results[name] = r
    # second rung: the time that dropped or quick families left goes to the survivors, best first
    survivors = sorted((r for n, r in results.items() if n != BASELINE), key=lambda r: r.oof_log_loss)
    for i, prev in enumerate(survivors):
        if clock.left() - reserve < 2 * prev.fold_seconds * folds:
            break
        slot_end = time.monotonic() + max(0.0, (clock.left() - reserve) / (len(survivors) - i))
        sname = study_name(prev.name, fhash, data_fp, seed, folds, val.key)
        r, note = tune_model(prev.name, data, storage, sname, slot_end, slot_end, trials, True, bar,
                             (BASELINE, b_fold_s), known=prev)
        if r is not None:
            results[prev.name] = r
            notes[prev.name] += f"; second rung: {note}"

    # From here on only the validated rows count: forward-in-time folds leave the time blocks
    # before the last K without an out-of-fold score (validation.py); with random folds this is
    # every row.
    y_all, y = y, val.view(y)
    vfolds = val.view_folds()
    b_oof = val.view(b_oof)
    for r in results.values():
        r.oof = val.view(r.oof)

    # 3. the ensemble of everything trained, then the selection against the baseline
    bar.update(text="combining and selecting")
    oofs = {n: r.oof for n, r in results.items()}
    candidates = {n: o for n, o in oofs.items() if n != BASELINE}
    spec_ens = None
    if len(results) >= 2:
        evidence, oof_evidence = customer_evidence(encoding, data.X, val.folds, val.validated)
        spec_ens, ens_oof = ensemble.build_ensemble(ensemble_kind, oofs, y, vfolds, evidence, oof_evidence)
        candidates["ensemble"] = ens_oof
    selection = select_model(y, vfolds, b_oof, candidates)
    selection["dropped"] = dropped
    selection["notes"] = notes
    chosen = selection["chosen"]
    spec = spec_ens if chosen == "ensemble" else ensemble.single(chosen)
    oof = candidates.get(chosen, b_oof) if chosen != BASELINE else b_oof

    # 4. operating point
    mode = "none"
    target: float | None = None
    prevalence: PrevalenceEstimate | None = None

    def predict_chosen(df: pd.DataFrame) -> np.ndarray:
        """The chosen model's P(converted) on the training rate for feature rows `df`, as the
        saved model will score them (ensemble.predict): for the prevalence estimate on score
        rows and for the promotion rule's leads with known outcomes."""
        return ensemble.predict(
            spec,
            {n: on_its_columns(r.kind, partial(predict_base, r.kind, r.estimator, n_threads=data.n_threads),
                               encoding.tree_width) for n, r in results.items()},
            {n: r.effective_prior for n, r in results.items()},
            pi,
            encoding.transform(df),
        )

    if target_prevalence == "auto":
        mode = "auto"
        p_score = predict_chosen(score_df)
        cut_pi = f1_optimal_cutoff(y, oof)[0]
        prevalence = estimate_prevalence(y, oof, cut_pi, p_score, pi, seed=seed)
        target = prevalence.estimate
        if (warning := prevalence.warning()) is not None:
            _warn(f"WARNING: {warning}")
    elif target_prevalence is not None:
        mode, target = "given", float(target_prevalence)

    sw = prevalence_weights(y, pi, target)
    # without a prior shift, the out-of-fold rows reweighted to the score rows' customer mix
    if target is not None:
        mix = score_mix.ScoreMix(False, "a target prevalence is set (a label shift, not a change of mix)")
    elif not use_score_mix:
        mix = score_mix.ScoreMix(False, "switched off (--no-score-mix)")
    else:
        train_keys = val.view(train_df[feat.CUSTOMER_KEY].to_numpy()) if score_keys is not None else None
        mix = score_mix.compare(train_keys, score_keys, y)
        if mix.applied:
            sw = mix.weights(train_keys)

    def operating_scale(p: np.ndarray) -> np.ndarray:
        return p if target is None else shift_prior(p, pi, target)

    scored = operating_scale(oof)
    cutoff, cv_f1, cv_prec, cv_rec = bagged_f1_cutoff(y, scored, sw, seed=seed)
    cv_auc = float(roc_auc_score(y, oof))
    cv_ap = float(average_precision_score(y, scored, sample_weight=sw))

    validation_record = {
        "scheme": val.scheme, "key": val.key, "folds": folds, "folds_validated": len(val.folds),
        "validated_rows": int(len(y)),
        "cv_f1": cv_f1, "cv_log_loss": float(fold_log_losses(y, oof, vfolds).mean()),
        "random_kfold_baseline": random_kfold, "score_mix": mix.to_dict(),
    }
    if val.scheme == validation.FORWARD:
        # validated leads scored on their labeled history as of their block's start: which columns
        validation_record["scored_as_of_block_start"] = [columns[i] for i in data.val_patch_idx]
        dates = pd.to_datetime(val.view(train_df["lead_date"].to_numpy()))
        validation_record["f1_by_month"] = f1_by_month(y, scored, cutoff, dates)
    selection["validation"] = {k: v for k, v in validation_record.items() if k != "f1_by_month"}

    # each model's own cutoff and figures on the operating scale and weights
    per_model = {n: r.metrics(y, operating_scale(r.oof), sw) for n, r in results.items()}
    weights = {n: float(w) for n, w in spec.get("weights", {}).items()} if spec["kind"] == "voting" else \
        dict(zip(spec["inputs"], spec["coef"], strict=True))

    version = registry.new_version()
    importance = report.importances({n: r.estimator for n, r in results.items()}, spec, columns, encoding)
    importance_source = importance.source
    meta = {
        "format": registry.FORMAT_VERSION,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "feature_hash": fhash,
        # the dbt vars the features were built with: scoring refuses features built with others
        "feature_settings": settings,
        "data_fingerprint": data_fp,
        "lead_sketch": lead_sketch(train_df["lead_id"]),
        "encoding": encoding.to_json(),
        "matrix_columns": columns,
        "models": [{"name": n, "kind": KINDS[n], "file": MODEL_FILES[n], "effective_prior": r.effective_prior,
                    "params": r.params, **{k: per_model[n][k] for k in
                                           ("oof_cutoff", "oof_f1", "oof_log_loss", "oof_average_precision")}}
                   for n, r in results.items()],
        "ensemble": spec,
        "selection": selection,
        "train_rows": int(len(y_all)),
        "train_positive_rate": pi,
        "validation": validation_record,
        "target_prevalence": target,
        "target_prevalence_mode": mode,
        "prevalence_estimate": prevalence.to_dict() if prevalence else None,
        "cutoff": cutoff,
        "seed": seed,
        "folds": folds,
        "threads": data.n_threads,
    }
    metrics = {
        "model_version": version, "cv_f1": cv_f1, "cv_precision": cv_prec, "cv_recall": cv_rec, "cv_auc": cv_auc,
        "cv_average_precision": cv_ap, "cv_log_loss": float(fold_log_losses(y, oof, vfolds).mean()),
        "cutoff": cutoff,
        "ensemble": ensemble_kind, "weights": weights, "selection": selection, "per_model": per_model,
        "train_rows": int(len(y_all)), "train_positives": n_pos, "train_positive_rate": pi,
        "validation": validation_record,
        "target_prevalence": target, "target_prevalence_mode": mode,
        "prevalence_estimate": meta["prevalence_estimate"],
        "cv_f1_at_train_prevalence": f1_at(y, oof, shift_prior(np.array([cutoff]), target, pi)[0])
        if target is not None else f1_at(y, oof, cutoff),
        "baseline_f1_all_positive": 2 * (target or pi) / (1 + (target or pi)),
        "feature_importance_source": importance_source, "seed": seed, "folds": folds,
        "time_budget": clock.budget, "dbt_invocation_id": dbt_id, "data_fingerprint": data_fp,
    }

    def write_files(folder: Path) -> None:
        for n, r in results.items():
            save_base_model(r.kind, r.estimator, folder / MODEL_FILES[n])
        (folder / registry.MODEL_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        bar.update(text="writing report")
        metrics["train_seconds"] = round(clock.elapsed(), 3)
        report.write_report(folder / "report", y=y, p=scored, cutoff=cutoff, sample_weight=sw, metrics=metrics,
                            importance=importance, per_model_oof=oofs)

    bar.update(text="registering model")
    row = {
        "trained_at": datetime.now(UTC).replace(tzinfo=None),
        "cv_f1": cv_f1, "cv_auc": cv_auc, "cv_average_precision": cv_ap, "cutoff": cutoff,
        "feature_hash": fhash, "feature_list": registry.feature_list_of(flist), "train_rows": int(len(y_all)),
        "train_positive_rate": pi, "target_prevalence": target, "target_prevalence_mode": mode,
        "ensemble": ensemble_kind if chosen == "ensemble" else "single",
        "weights": {"source": selection["reason"], **({"weights": weights} if spec["kind"] == "voting" else spec)},
        "params": {n: r.params for n, r in results.items()}, "per_model_metrics": per_model,
        "selection": {k: v for k, v in selection.items() if k != "notes"}, "data_fingerprint": data_fp,
        "dbt_invocation_id": dbt_id, "seed": seed, "folds": folds, "time_budget": clock.budget,
    }

    def final_row() -> dict[str, Any]:  # evaluated after the files are written
        return {**row, "train_seconds": round(clock.elapsed(), 3)}

    con, owned = _open(con_or_db_path)
    try:
        if promote == "auto":
            verdict = promotion.judge(con, data_fp, float(selection["chosen_oof_log_loss"]), predict_chosen, flist,
                                      validation_key=val.key)
        else:
            # the reason ops.model_events keeps: the caller's (the nightly's), else the option's
            verdict = promotion.Verdict(promote == "always", promote_reason or f"--promote {promote}")
        folder = registry.publish_model(con, version, write_files, final_row, verdict)
    finally:
        if owned:
            con.close()
    return TrainResult(
        model_version=version, cv_f1=cv_f1, cv_auc=cv_auc, cv_average_precision=cv_ap, cutoff=cutoff,
        ensemble=ensemble_kind, weights=weights, per_model=per_model,
        selection={k: v for k, v in selection.items() if k != "notes"}, train_rows=int(len(y_all)),
        train_positive_rate=pi, target_prevalence=target, target_prevalence_mode=mode,
        prevalence_estimate=meta["prevalence_estimate"], seconds=clock.elapsed(), time_budget=clock.budget,
        artifact_dir=folder, report_dir=folder / "report", validation=validation_record,
        score_mix=mix.to_dict(), became_current=verdict.promote, promotion_reason=verdict.reason,
    )


def _random_kfold_baseline(val: validation.Validation, data: Data, clock: Clock, reserve: float,
                           fold_seconds: float) -> dict[str, Any] | None:
    """With forward-in-time folds, the baseline's random K-fold figures beside them, when the
    budget allows: the gap between the two is how much a random split flatters the model."""
    if val.scheme != validation.FORWARD:
        return None
    if len(val.folds) < 2:  # the budget stopped the baseline after its first fold
        return {"skipped": "the time budget ended the baseline's validation after one fold"}
    rand = validation.random_kfold(data.y, len(val.folds), data.seed)
    # a random fold fits on (k-1)/k of the rows, a forward fold on fewer: scale its time up
    k = len(rand.folds)
    per_fold = fold_seconds * (len(data.y) * (k - 1) / k) / max(1.0, float(np.mean([len(tr) for tr, _ in val.folds])))
    if clock.left() - reserve < 1.2 * per_fold * k:
        return {"skipped": "not enough of the time budget left"}
    # every random fold scores its rows as the feature table has them, later leads' labels and all:
    # what a random split flatters
    oof, losses, _, _ = cross_validate(BASELINE, BASELINE_PARAMS,
                                       replace(data, folds=rand.folds, val_patch_idx=(), val_patch=None))
    _, f1, _, _ = f1_optimal_cutoff(data.y, oof)
    return {"model": BASELINE, "cv_f1": float(f1), "cv_log_loss": float(np.mean(losses)),
            "cv_auc": float(roc_auc_score(data.y, oof))}
