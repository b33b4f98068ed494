"""How training rows are split to validate: random stratified K-fold, or forward in time.

Why forward: a nightly job scores tomorrow's leads with a model fitted on yesterday's. When the
leads carry a `lead_date` (the final round's files do), a random split lets the model learn from
leads that came after the ones it is judged on, so the cutoff and the model choice are read off
a friendlier world than the one it will score. Expanding-window folds judge every validated lead
only by a model fitted on earlier leads: the rows are cut by date into K + 1 consecutive blocks
(a day is never split), fold k trains on blocks 0..k-1 and validates block k. The first block is
training-only, so it has no out-of-fold score: `validated` says which rows do, and everything
read off out-of-fold scores (selection, ensemble weights, cutoff) uses `view`.

Without dates (the qualifier files): K random folds, every row validated. Each is a union of
whole rate folds when the feature table has them (`rate_fold`, the fold a training row's
out-of-fold target rates leave out; int_lead_target_rates). Why: the leads of one customer in one
rate fold share their rate to the last digit, so a tree can single that group out. A validation
fold that split such a group would let its model learn the validated leads from their fold mates'
labels, which no score row can offer (its rate, from every training row, matches none): the
out-of-fold scores, and all that is read off them, would be optimistic. Without rate folds (a
table that has none): stratified K-fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import LeadscoreError

RANDOM = "random_kfold"
FORWARD = "forward"
# Forward folds only when (nearly) every training row has a date: a few undated rows would
# otherwise all land in one block.
MIN_DATED_SHARE = 0.99


@dataclass(frozen=True)
class Validation:
    scheme: str  # RANDOM | FORWARD
    folds: list[tuple[np.ndarray, np.ndarray]]  # (fit rows, validation rows), indices into the training rows
    validated: np.ndarray  # sorted indices of the rows that get an out-of-fold score

    def view(self, values: np.ndarray) -> np.ndarray:
        """The validated rows of an array over all training rows."""
        return values[self.validated]

    def first(self, k: int) -> Validation:
        """Only the first k folds: what is validated when the time budget ends the baseline's
        cross-validation early (train.py). Each random fold is a stratified sample of the rows,
        and each forward fold is a later block, so the rows of the finished folds are still a
        fair sample to read a cutoff off; there are just fewer of them."""
        folds = self.folds[:k]
        return Validation(self.scheme, folds, np.sort(np.concatenate([va for _, va in folds])))

    def view_folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The folds as positions in `view(...)` arrays: each fold's validation rows, and as its
        fit rows the other validated rows (what a meta-model fitted on out-of-fold scores, e.g.
        stacking, may learn from)."""
        position = np.full(int(self.validated.max()) + 1 if len(self.validated) else 0, -1, dtype=np.int64)
        position[self.validated] = np.arange(len(self.validated))
        out = []
        for _, va in self.folds:
            val = position[va]
            rest = np.ones(len(self.validated), dtype=bool)
            rest[val] = False
            out.append((np.flatnonzero(rest), val))
        return out


def random_kfold(y: np.ndarray, k: int, seed: int, rate_folds: np.ndarray | None = None) -> Validation:
    """K random folds: stratified, or, given each row's rate fold, the rate folds dealt at random
    (by `seed`) to K validation folds, each kept whole."""
    if rate_folds is None:
        folds = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        return Validation(RANDOM, folds, np.arange(len(y)))
    rate_folds = np.asarray(rate_folds)
    groups = np.unique(rate_folds)
    if len(groups) < k:
        raise LeadscoreError(
            f"{k} validation folds need at least {k} rate folds, the feature table has {len(groups)}: "
            "a validation fold must hold whole rate folds (dbt var target_rate_folds, or train --folds)")
    dealt = np.random.default_rng(seed).permutation(groups)
    folds = []
    for i in range(k):
        held = np.isin(rate_folds, dealt[i::k])
        val, fit = np.flatnonzero(held), np.flatnonzero(~held)
        if y[val].min() == y[val].max() or y[fit].min() == y[fit].max():
            raise LeadscoreError(f"validation fold {i + 1} of {k} has only one class: too few training rows")
        folds.append((fit, val))
    return Validation(RANDOM, folds, np.arange(len(y)))


def forward(dates: pd.Series, y: np.ndarray, k: int) -> Validation:
    """K expanding-window folds over K + 1 date blocks of about equal row counts."""
    day = pd.to_datetime(dates).dt.normalize().to_numpy()
    order = np.argsort(day, kind="stable")
    n = len(order)
    # block boundaries at row quantiles, moved forward to the next change of day
    bounds = [0]
    for b in range(1, k + 1):
        i = max(int(round(b * n / (k + 1))), bounds[-1] + 1)
        while i < n and day[order[i]] == day[order[i - 1]]:
            i += 1
        bounds.append(min(i, n))
    bounds.append(n)
    blocks = [order[bounds[b]:bounds[b + 1]] for b in range(k + 1)]
    if any(len(blk) == 0 for blk in blocks):
        raise LeadscoreError(f"too few distinct lead dates for {k} forward-in-time folds")
    folds = []
    for b in range(1, k + 1):
        fit, val = np.sort(np.concatenate(blocks[:b])), np.sort(blocks[b])
        if y[fit].min() == y[fit].max() or y[val].min() == y[val].max():
            raise LeadscoreError(f"forward-in-time fold {b} has only one class: too few leads per period "
                                 f"for {k} folds")
        folds.append((fit, val))
    return Validation(FORWARD, folds, np.sort(np.concatenate(blocks[1:])))


def choose(dates: pd.Series | None, y: np.ndarray, k: int, seed: int,
           rate_folds: pd.Series | None = None) -> Validation:
    """Forward in time when the training rows carry dates; otherwise random K-fold, over whole
    rate folds when every training row has one."""
    if dates is not None and len(dates) and dates.notna().mean() >= MIN_DATED_SHARE:
        filled = dates.fillna(dates.min())
        if filled.nunique() > k:
            return forward(filled, y, k)
    if rate_folds is not None and len(rate_folds) and rate_folds.notna().all():
        return random_kfold(y, k, seed, rate_folds.to_numpy(dtype=np.int64))
    return random_kfold(y, k, seed)


def f1_by_month(y: np.ndarray, p: np.ndarray, cutoff: float, dates) -> list[dict]:
    """Out-of-fold F1 at `cutoff` per calendar month of the lead date: whether the model holds
    up as time moves on, or only on average."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=bool), "flag": np.asarray(p) >= cutoff,
                          "month": pd.to_datetime(dates).to_period("M").astype(str)})
    out = []
    for month, g in frame.groupby("month", sort=True):
        tp = int((g.y & g.flag).sum())
        denom = int(g.flag.sum() + g.y.sum())
        out.append({"month": month, "rows": len(g), "positives": int(g.y.sum()), "flagged": int(g.flag.sum()),
                    "f1": (2 * tp / denom) if denom else None})
    return out
