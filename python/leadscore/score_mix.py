"""The score rows' customer mix: the operating point reweighted to the leads it will score.

Why: a few customer ids carry a large share of the leads and convert unlike anyone else (a
catch-all id whose leads almost never convert, an id whose leads all do). When the leads to
score hold such an id in another share than the training rows, the F1 the training rows promise
is not the F1 the batch will see, and the F1-optimal cutoff moves with it. Each of those leads
still converts as before (p(y | x) holds; only the mix moved, a covariate shift), so
importance-weighted validation (Sugiyama, Krauledat and Müller 2007) fits: each out-of-fold row
counts with its stratum's share among the score rows over its share among the training rows.

The strata are each customer id that holds at least `MIN_SHARE` of the training rows the
operating point is read from (the validated, out-of-fold rows), and every other customer
together: a few large cells whose shares are counted, not modelled. A density-ratio
classifier over every column would be the general form, but on data whose score rows differ by
design (other missing-value rates; a classifier tells them apart at AUC 0.94 on the demo worlds)
its weights swamp the estimate with noise, while the customer mix is what moves the F1.

Applied only when the mix moved beyond chance (a chi-square test of the two samples' counts over
the strata, p < `ALPHA`), and only on evidence the test and the weights can stand on: a customer
expected to hold fewer than `MIN_EXPECTED` score rows joins the others (below that the chi-square
rejects too often, and its share ratio is a few leads' worth), and the weighted rows must keep at
least `MIN_EFFECTIVE` effective positives and negatives (a cutoff read off a handful of rows is
noise). Otherwise every weight is 1 and training is what it was without it.
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
import pandas as pd
from scipy.stats import chi2

from leadscore.features import CUSTOMER_KEY

# a customer id with at least this share of the training rows is a stratum of its own ...
MIN_SHARE = 0.01
# ... when the score rows would hold at least this many of its leads at its training share
# (Cochran's rule for the chi-square: an expected count under 5 makes it reject too often)
MIN_EXPECTED = 5.0
# the weighted training rows must keep this many effective (Kish) positives and negatives
MIN_EFFECTIVE = 20.0
# the mix is reweighted only when the chi-square test rejects "same mix" at this level
ALPHA = 0.01
# the stratum of every customer below MIN_SHARE
OTHER = "(every other customer)"
# a lead without a customer id is a stratum value of its own
MISSING_KEY = "(no customer id)"


@dataclass
class Stratum:
    """One customer (or every other customer together) and the weight its training rows take."""

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
    """Keys as text, a missing one (None, NaN, pd.NA) as MISSING_KEY: leads without a customer id
    are one group, not one group per missing-value kind."""
    k = pd.Series(np.asarray(keys, dtype=object), dtype=object)
    return np.where(k.isna(), MISSING_KEY, k.astype(str)).astype(object)


def _effective(w: np.ndarray) -> float:
    """Kish's effective sample size of weights `w`: how many equally weighted rows they are worth."""
    total = float(w.sum())
    return total ** 2 / float((w ** 2).sum()) if total > 0 else 0.0


def compare(train_keys: np.ndarray | None, score_keys: np.ndarray | None, y: np.ndarray,
            min_share: float = MIN_SHARE, alpha: float = ALPHA) -> ScoreMix:
    """The customer mix of the score rows against that of the training rows `train_keys` (the
    rows the operating point is read from, labels `y`, aligned with them). None keys: the mart
    has no customer key column (built with `use_group_keys: false`)."""
    if train_keys is None or score_keys is None:
        return ScoreMix(False, f"the features have no {CUSTOMER_KEY} column")
    if len(train_keys) != len(y):
        raise ValueError(f"{len(train_keys)} training keys for {len(y)} labels: the keys must be the validated rows'")
    if len(score_keys) == 0:
        return ScoreMix(False, "no score rows")
    kt, ks = _normalise(train_keys), _normalise(score_keys)
    values, counts = np.unique(kt, return_counts=True)
    big = (counts >= min_share * len(kt)) & (counts / len(kt) * len(ks) >= MIN_EXPECTED)
    order = np.lexsort((values[big], -counts[big]))  # largest first, then by key
    heavy = [str(v) for v in values[big][order]]
    if not heavy:
        return ScoreMix(False, f"no customer holds {min_share:.0%} of the training rows and {MIN_EXPECTED:.0f} "
                               f"expected score rows ({len(ks)} score rows)")
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
    found = {"strata": [Stratum(k, int(a), int(b), float(r)) for k, a, b, r in zip(keys, nt, ns, ratio, strict=True)],
             "chi2": stat, "df": df, "p_value": p}
    if p >= alpha:
        return ScoreMix(False, f"the mix is the training rows' within chance (p = {p:.2g})", **found)
    mix = ScoreMix(True, f"the mix moved (p = {p:.2g} < {alpha})", **found)
    w = mix.weights(train_keys)
    positives, negatives = _effective(w[y == 1]), _effective(w[y == 0])
    if min(positives, negatives) < MIN_EFFECTIVE:
        return ScoreMix(False, f"the reweighted rows keep too few positives or negatives to read a cutoff off "
                               f"({positives:.0f} and {negatives:.0f} effective, under {MIN_EFFECTIVE:.0f})", **found)
    mix.effective_rows = _effective(w)
    return mix
