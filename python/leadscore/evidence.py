"""How much a model knew about a lead's customer: the training rows of that customer it was fitted on.

Why the ensemble's calibration needs it. A lead's conversion depends on its customer, and what
the models know of a customer is its training leads. For a customer they never saw, every member
scores the lead as an average customer with these features, yet the customer's own effect is
still there, unknown: such leads convert less often than their high scores say and more often
than their low ones (out of fold, on the foreign data set, scores of 0.84 converted at 0.73 and
scores of 0.004 at 0.008, where leads of customers with over ten training leads were calibrated).
A single Platt scaling cannot tell the two apart. The ensemble's calibration (ensemble.platt)
therefore lets its slope and intercept move with log(1 + rows): the rows of the lead's customer
among the rows the scoring model was fitted on.

Counted where the fitting happened, so that the count means the same on both sides:

* an out-of-fold score: the customer's rows among that fold's fit rows (`out_of_fold`); with
  forward-in-time folds, only the earlier blocks;
* a score row: the customer's rows among all training rows, the final models' fit
  (`Evidence.of`, from the table frozen at training).

The customer is the group key `EVIDENCE_KEY` (the raw id the linear member keeps as a random
intercept, features.GROUP_KEY_SUFFIX); a mart built without group keys has no evidence, and the
calibration is the plain Platt scaling. A missing or never-seen id has no rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leadscore.errors import LeadscoreError
from leadscore.features import CUSTOMER_KEY, FIRST_CATEGORY_CODE, Encoding

EVIDENCE_KEY = CUSTOMER_KEY


def _rows_per_code(codes: np.ndarray) -> np.ndarray:
    """Rows per group-key code; codes below FIRST_CATEGORY_CODE (missing, never seen) count 0."""
    c = np.asarray(codes).astype(np.int64)
    table = np.bincount(c[c >= FIRST_CATEGORY_CODE], minlength=FIRST_CATEGORY_CODE).astype(np.int64)
    table[:FIRST_CATEGORY_CODE] = 0
    return table


def _look_up(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    c = np.asarray(codes).astype(np.int64)
    out = np.zeros(len(c), dtype=np.float64)
    known = (c >= 0) & (c < len(table))
    out[known] = table[c[known]]
    return out


@dataclass(frozen=True)
class Evidence:
    """The customer's training rows per group-key code, over the rows the final models are fitted
    on, and where the code sits in the model matrix."""

    feature: str
    column: int
    rows_per_code: np.ndarray

    @classmethod
    def fit(cls, encoding: Encoding, X: np.ndarray) -> Evidence | None:
        """From the training matrix; None when the encoding has no `EVIDENCE_KEY` with values."""
        names = [f.name for f in encoding.features]
        if EVIDENCE_KEY not in names or not encoding.categories.get(EVIDENCE_KEY):
            return None
        column = names.index(EVIDENCE_KEY)
        return cls(EVIDENCE_KEY, column, _rows_per_code(X[:, column]))

    def of(self, X: np.ndarray) -> np.ndarray:
        """Rows of each row's customer among all training rows (a score row's evidence)."""
        if X.shape[1] <= self.column:
            raise LeadscoreError(f"the evidence column {self.feature} (matrix column {self.column}) is not in a "
                                 f"matrix of {X.shape[1]} columns")
        return _look_up(self.rows_per_code, X[:, self.column])

    def out_of_fold(self, X: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Per training row: its customer's rows among the fit rows of the fold that validates it
        (0 for a row no fold validates)."""
        codes = X[:, self.column]
        out = np.zeros(len(X), dtype=np.float64)
        for fit_rows, val_rows in folds:
            out[val_rows] = _look_up(_rows_per_code(codes[fit_rows]), codes[val_rows])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "column": self.column, "rows_per_code": self.rows_per_code.tolist()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Evidence:
        return cls(str(d["feature"]), int(d["column"]), np.asarray(d["rows_per_code"], dtype=np.int64))


def for_training(encoding: Encoding, X: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                 validated: np.ndarray) -> tuple[Evidence | None, np.ndarray | None]:
    """(the table of the final fit, each validated row's out-of-fold evidence), or (None, None)
    without a customer key: what ensemble.build_ensemble takes, both or neither."""
    evidence = Evidence.fit(encoding, X)
    if evidence is None:
        return None, None
    return evidence, evidence.out_of_fold(X, folds)[validated]
