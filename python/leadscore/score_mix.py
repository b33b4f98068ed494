"""The score rows' customer mix: the operating point reweighted to the leads it will score.

Why: a few customer ids carry a large share of the leads and convert unlike anyone else (a
catch-all id whose leads almost never convert, an id whose leads all do). When the leads to
score hold such an id in another share than the training rows, the F1 the training rows promise
is not the F1 the batch will see, and the F1-optimal cutoff moves with it. Each of those leads
still converts as before (p(y | x) holds; only the mix moved, a covariate shift), so
importance-weighted validation (Sugiyama, Krauledat and Müller 2007) fits: each out-of-fold row
counts with its stratum's share among the score rows over its share among the training rows.

The strata are each customer id that holds at least `MIN_SHARE` of the training rows, and every
other customer together: a few large cells whose shares are counted, not modelled. A density-ratio
classifier over every column would be the general form, but on data whose score rows differ by
design (other missing-value rates; a classifier tells them apart at AUC 0.94 on the demo worlds)
its weights swamp the estimate with noise, while the customer mix is what moves the F1.

Applied only when the mix moved beyond chance (a chi-square test of the two samples' counts over
the strata, p < `ALPHA`); otherwise every weight is 1 and training is what it was without it.
Never together with a target prevalence: a batch selected by outcome (label shift, the
competition's 1:2 file) moves a heavy id's share because of its labels, and reweighting by that
share would count the shift twice. The weights move the cutoff and the out-of-fold figures that
describe the batch (F1, precision, recall, average precision); model selection stays on the
training rows' own log-loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2

from leadscore.features import CUSTOMER_KEY

# a customer id with at least this share of the training rows is a stratum of its own
MIN_SHARE = 0.01
# the mix is reweighted only when the chi-square test rejects "same mix" at this level
ALPHA = 0.01
# the stratum of every customer below MIN_SHARE
OTHER = "(every other customer)"
# the mart's column that names a lead's customer (a group key: the raw id as text)
KEY_COLUMN = CUSTOMER_KEY
# a lead without a customer id is a stratum value of its own
MISSING_KEY = "(no customer id)"


@dataclass
class Stratum:
    key: str
    train_rows: int
    score_rows: int
    weight: float  # score share / training share


@dataclass
class ScoreMix:
    """The comparison of the two mixes, and whether the weights apply (`applied`)."""

    applied: bool
    reason: str
    strata: list[Stratum] = field(default_factory=list)
    chi2: float | None = None
    df: int | None = None
    p_value: float | None = None
    effective_rows: float | None = None  # Kish's effective sample size of the weighted rows

    def weights(self, keys: np.ndarray) -> np.ndarray | None:
        """Each row's weight for customer keys `keys` (the training rows the operating point is
        read from), or None when the mix is not reweighted."""
        if not self.applied:
            return None
        by_key = {s.key: s.weight for s in self.strata}
        k = _normalise(keys)
        return np.array([by_key.get(x, by_key[OTHER]) for x in k], dtype=float)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreMix:
        """Back from `to_dict` (model.json, the training result)."""
        return cls(**{**d, "strata": [Stratum(**s) for s in d.get("strata", [])]})

    def describe(self) -> str:
        """One line for the training summary."""
        if not self.applied:
            return f"score mix: not reweighted ({self.reason})"
        heavy = ", ".join(f"{s.key} {s.train_rows}->{s.score_rows} rows (x{s.weight:.2f})"
                          for s in self.strata if s.key != OTHER)
        return (f"score mix: the operating point is reweighted to the score rows' customer mix "
                f"(chi-square p = {self.p_value:.2g}; {heavy}; effective rows {self.effective_rows:,.0f})")


def _normalise(keys: np.ndarray) -> np.ndarray:
    k = np.asarray(keys, dtype=object)
    return np.array([MISSING_KEY if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in k],
                    dtype=object)


def compare(train_keys: np.ndarray | None, score_keys: np.ndarray | None, y: np.ndarray,
            min_share: float = MIN_SHARE, alpha: float = ALPHA) -> ScoreMix:
    """The customer mix of the score rows against that of the training rows `train_keys` (the
    rows the operating point is read from, labels `y`). None keys: the mart has no customer key
    column (built with `use_group_keys: false`)."""
    if train_keys is None or score_keys is None:
        return ScoreMix(False, f"the features have no {KEY_COLUMN} column")
    if len(score_keys) == 0:
        return ScoreMix(False, "no score rows")
    kt, ks = _normalise(train_keys), _normalise(score_keys)
    values, counts = np.unique(kt, return_counts=True)
    heavy = sorted((str(v) for v, c in zip(values, counts, strict=True) if c >= min_share * len(kt)),
                   key=lambda v: (-int(counts[values == v][0]), v))
    if not heavy:
        return ScoreMix(False, f"no customer holds {min_share:.0%} of the training rows")
    keys = [*heavy, OTHER]
    st = np.where(np.isin(kt, heavy), kt, OTHER)
    ss = np.where(np.isin(ks, heavy), ks, OTHER)
    nt = np.array([(st == k).sum() for k in keys], dtype=float)
    ns = np.array([(ss == k).sum() for k in keys], dtype=float)
    keep = (nt + ns) > 0
    table = np.vstack([nt[keep], ns[keep]])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    df = int(keep.sum()) - 1
    p = float(chi2.sf(stat, df)) if df > 0 else 1.0
    ratio = np.divide(ns / ns.sum(), nt / nt.sum(), out=np.ones_like(nt), where=nt > 0)
    strata = [Stratum(k, int(a), int(b), float(r)) for k, a, b, r in zip(keys, nt, ns, ratio, strict=True)]
    mix = ScoreMix(True, f"the mix moved (p = {p:.2g} < {alpha})", strata, stat, df, p)
    if p >= alpha:
        return ScoreMix(False, f"the mix is the training rows' within chance (p = {p:.2g})", strata, stat, df, p)
    w = mix.weights(train_keys)
    if w is None or float((w * y).sum()) <= 0 or float((w * (1 - y)).sum()) <= 0:
        return ScoreMix(False, "the score rows' strata hold no positive or no negative training row", strata,
                        stat, df, p)
    mix.effective_rows = float(w.sum() ** 2 / (w ** 2).sum())
    return mix
