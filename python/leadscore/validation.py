"""How training rows are split to validate: random stratified K-fold, or forward in time.

Why forward: a nightly job scores tomorrow's leads with a model fitted on yesterday's. When the
leads carry a `lead_date` (the final round's files do), a random split lets the model learn from
leads that came after the ones it is judged on, so the cutoff and the model choice are read off
a friendlier world than the one it will score. Expanding-window folds judge every validated lead
only by a model fitted on earlier leads. The feature store cuts the dated training rows into time
blocks (`history_block`, dbt var validation_time_blocks; a day is never split), and the K folds
validate the last K blocks, each with a model fitted on every block before it. The earlier blocks
are training-only, so they have no out-of-fold score: `validated` says which rows do, and
everything read off out-of-fold scores (selection, ensemble weights, cutoff) uses `view`. Why
the SQL's blocks and not a cut made here: a validated lead is scored on its labeled history as
of its block's start (fct_lead_validation_history, tuning.Data.validation_rows), which the SQL can only
count along blocks it knows.

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

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from leadscore.errors import LeadscoreError

RANDOM = "random_kfold"
FORWARD = "forward"
# Forward folds only when (nearly) every training row has a time block, i.e. a date: the few
# without one are fitted on in every fold and never validated.
MIN_DATED_SHARE = 0.99


@dataclass(frozen=True)
class Validation:
    scheme: str  # RANDOM | FORWARD
    folds: list[tuple[np.ndarray, np.ndarray]]  # (fit rows, validation rows), indices into the training rows
    validated: np.ndarray  # sorted indices of the rows that get an out-of-fold score
    notes: tuple[str, ...] = ()  # what the caller should be told (fewer folds than asked)

    @property
    def key(self) -> str:
        """The validation as a study name and the promotion judge key it: trials and out-of-fold
        figures measured on other folds are not comparable. Random folds follow the rows and the
        seed, which both already key; forward folds follow the SQL's time blocks (dbt var
        validation_time_blocks), which move while the rows and their features stay the same, so
        they are keyed by the cut itself."""
        if self.scheme != FORWARD:
            return self.scheme
        h = hashlib.sha256()
        for _, va in self.folds:
            h.update(np.ascontiguousarray(va, dtype=np.int64).tobytes())
            h.update(b"|")
        return f"{self.scheme}-{h.hexdigest()[:10]}"

    def view(self, values: np.ndarray) -> np.ndarray:
        """The validated rows of an array over all training rows."""
        return values[self.validated]

    def first(self, k: int) -> Validation:
        """Only the first k folds: what is validated when the time budget ends the baseline's
        cross-validation early (train.py). Each random fold is a stratified sample of the rows,
        and each forward fold is a later block, so the rows of the finished folds are still a
        fair sample to read a cutoff off; there are just fewer of them."""
        folds = self.folds[:k]
        return replace(self, folds=folds, validated=np.sort(np.concatenate([va for _, va in folds])))

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


def forward(blocks: pd.Series | np.ndarray, y: np.ndarray, k: int) -> Validation:
    """K expanding-window folds: the last K time blocks, each validated by a model fitted on the
    blocks before it. A row without a block (NaN: an undated lead among dated ones) is fitted on
    in every fold and never validated."""
    block = pd.Series(blocks, dtype="float64").fillna(-1.0).to_numpy()
    present = np.unique(block[block >= 0])
    notes: tuple[str, ...] = ()
    if len(present) < 3:
        raise LeadscoreError(
            f"forward-in-time validation needs at least 3 time blocks, the feature store has {len(present)}: raise "
            "dbt var validation_time_blocks (a block never splits a day, so a few days that hold most leads "
            "leave fewer blocks)")
    if len(present) < k + 1:
        notes = (f"validation: {k} forward-in-time folds need {k + 1} time blocks, the feature store has "
                 f"{len(present)} (dbt var validation_time_blocks; a day that holds many leads leaves a block "
                 f"empty): validating the last {len(present) - 1}",)
        k = len(present) - 1
    folds = []
    for b in present[-k:]:
        fit, val = np.flatnonzero(block < b), np.flatnonzero(block == b)
        if y[fit].min() == y[fit].max() or y[val].min() == y[val].max():
            raise LeadscoreError(f"forward-in-time fold for time block {int(b)} has only one class: too few "
                                 f"leads per block for {k} folds")
        folds.append((fit, val))
    return Validation(FORWARD, folds, np.sort(np.concatenate([val for _, val in folds])), notes)


def choose(blocks: pd.Series | None, y: np.ndarray, k: int, seed: int,
           rate_folds: pd.Series | None = None) -> Validation:
    """Forward in time when (nearly) every training row has a time block (a final-round file's
    dated leads); otherwise random K-fold, over whole rate folds when every training row has one."""
    if blocks is not None and len(blocks) and blocks.notna().mean() >= MIN_DATED_SHARE:
        return forward(blocks, y, k)
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
