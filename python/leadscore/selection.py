"""Whether a candidate replaces the fixed baseline: only beyond the fold-to-fold noise.

A tuned model, a resampling remedy, another family or the ensemble earns its place only when
its out-of-fold log-loss beats the baseline's on the same folds by more than `NOISE_SE`
standard errors of the paired per-fold differences: a gain that small folds could give by
chance is not a gain, and the simpler model ships.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leadscore.estimators import BASELINE
from leadscore.operating_point import fold_log_losses

# A candidate replaces the baseline only when its mean per-fold log-loss gain exceeds this many
# standard errors of the paired per-fold differences.
NOISE_SE = 2.0


def select_model(y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], baseline: np.ndarray,
                 candidates: dict[str, np.ndarray]) -> dict[str, Any]:
    """Which candidate replaces the baseline, if any: the one with the largest mean per-fold
    log-loss gain over it, provided that gain exceeds NOISE_SE standard errors of the paired
    per-fold differences. Returns the record stored in the registry."""
    base_folds = fold_log_losses(y, baseline, folds)
    k = len(folds)
    table: dict[str, dict[str, float]] = {}
    for name, oof in candidates.items():
        cand_folds = fold_log_losses(y, oof, folds)
        d = base_folds - cand_folds  # > 0: the candidate is better
        gain = float(d.mean())
        noise = float(NOISE_SE * d.std(ddof=1) / np.sqrt(k)) if k > 1 else float("inf")
        table[name] = {"oof_log_loss": float(cand_folds.mean()), "gain": gain, "noise": noise,
                       "wins": bool(gain > noise and gain > 0)}
    winners = {n: t for n, t in table.items() if t["wins"]}
    base_ll = float(base_folds.mean())
    if winners:
        chosen = max(winners, key=lambda n: (winners[n]["gain"], n))
        t = winners[chosen]
        reason = (f"{chosen} beats {BASELINE} by {t['gain']:.5f} log-loss per fold "
                  f"(noise {t['noise']:.5f} = {NOISE_SE:g} s.e. of the paired fold differences)")
    else:
        chosen = BASELINE
        best = min(table, key=lambda n: table[n]["oof_log_loss"]) if table else None
        reason = (f"no candidate beats {BASELINE} by more than the fold noise" +
                  (f" (best: {best}, gain {table[best]['gain']:.5f} vs noise {table[best]['noise']:.5f})" if best else
                   " (no candidate trained)"))
    won = table.get(chosen, {"oof_log_loss": base_ll, "gain": 0.0, "noise": 0.0})
    return {"chosen": chosen, "baseline_oof_log_loss": base_ll, "chosen_oof_log_loss": won["oof_log_loss"],
            "gain": won["gain"], "noise": won["noise"], "noise_standard_errors": NOISE_SE, "reason": reason,
            "candidates": table}
