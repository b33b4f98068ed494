"""The linear member: an L2-regularised logistic regression on one-hot levels and quantile bins.

Why a linear model beside the tree ensembles: it estimates one shrunk effect per category level
and per value range, all of them jointly, where a tree splits a few of them at a time. On its
own it is worse than the fixed LightGBM baseline; blended with it (ensemble.py's voting) it
lowered the out-of-fold log-loss beyond fold noise on the foreign data set and on the demo
generator alike (README, quality benchmark). Whether it is used is decided like every other
candidate: by the ensemble's weights and selection.select_model against the baseline.

It works on the encoded matrix (features.Encoding), so it needs nothing the trees do not get:

* a categorical column holds integer codes: each code seen in the fitted rows gets a weight; a
  code never seen there (a new level) gets none, which is the shrunk prior of a level with no
  evidence;
* a numeric column is cut at its quantiles over the fitted rows into at most `n_bins` ranges,
  plus one range for the column's minimum, where the Encoding puts missing values (its fill sits
  below every real value); each range gets a weight: a step function, as a tree sees a number.

Group keys (`groups`: the matrix columns of features.GROUP_KEY_SUFFIX, the raw customer and
owner ids) make it a mixed-effects logistic regression: each key's levels are one-hot like a
categorical's, but with `group_scale` times the prior variance of every other weight (the L2
penalty is one; the key's one-hot value is sqrt(group_scale)), so a customer with a few leads
keeps more of its own record than a category level would, and every intercept is fitted jointly
with the other effects: net of what the customer's leads' other features explain. That is what
the out-of-fold target rates approximate one column at a time; on the foreign data the joint fit
lowered out-of-fold log-loss from 0.1350 (the fixed LightGBM) to 0.1334 alone (README,
quality benchmark). With group keys, training leaves the label-derived columns out (`exclude`,
features.Encoding.mixed_effects_columns): their evidence is the intercepts'. An excluded
column keeps one range of weight 0, so the model still takes the whole matrix.

The log-odds is `intercept + sum_j weight_j[range or level of x_j]`: exactly additive. So the
per-feature contributions the reasons need are exact too: `weight_j[...] - mean_j`, with `mean_j`
the column's mean weight over the fitted rows and the bias `intercept + sum_j mean_j` (the
interventional SHAP values of an additive model).

Saved as JSON (cut points, codes, weights): a file that cannot run code when it is loaded.

Scoring looks each value up in its column's sorted cut points or codes (a binary search). With
numba (as treepredict) that is one compiled pass over the rows; without it, numpy per column,
the same numbers about five times slower.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from leadscore.errors import LeadscoreError

FORMAT = "leadscore-binned-logistic-1"  # groups, group_scale, exclude: optional params (default: none)
CHUNK_ROWS = 16_384  # rows per thread task when scoring
_NO_MATRIX = np.zeros((0, 0))


class BinnedLogistic:
    """Logistic regression on one-hot bins of an encoded matrix (module docstring).

    `categorical`: the matrix columns holding category codes (Encoding.category_code_indices);
    every other column is binned as a number. `C`: inverse L2 strength (scikit-learn's)."""

    def __init__(self, C: float = 0.3, n_bins: int = 20, categorical: tuple[int, ...] = (),
                 class_weight: str | None = None, max_iter: int = 500, threads: int = 1,
                 groups: tuple[int, ...] = (), group_scale: float = 10.0, exclude: tuple[int, ...] = ()) -> None:
        self.threads = threads  # for scoring: rows split in chunks, each row summed in one thread
        self.C = C
        self.n_bins = n_bins
        self.categorical = categorical
        self.groups = groups
        self.group_scale = group_scale
        self.exclude = exclude
        self.class_weight = class_weight
        self.max_iter = max_iter

    # -- scikit-learn's estimator protocol, without importing scikit-learn: loading a saved model
    # to score must not pay its import (1.4 s of a scoring run's start); fitting imports it
    _estimator_type = "classifier"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def set_params(self, **params: Any) -> BinnedLogistic:
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for BinnedLogistic")
            setattr(self, name, value)
        return self

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> BinnedLogistic:
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise LeadscoreError(f"BinnedLogistic.fit needs a 2-d matrix and one label a row, "
                                 f"got {X.shape} and {y.shape}")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise LeadscoreError(f"BinnedLogistic needs two classes to fit, got {len(self.classes_)}")
        groups = {int(j) for j in self.groups}
        categorical = {int(j) for j in self.categorical} | groups
        exclude = {int(j) for j in self.exclude}
        if self.group_scale <= 0:
            raise LeadscoreError(f"BinnedLogistic.group_scale must be positive, got {self.group_scale}")
        self.__dict__.pop("_flat", None)  # the lookup tables of an earlier fit
        self.columns_: list[dict[str, Any]] = []
        index = np.empty((X.shape[0], sum(j not in exclude for j in range(X.shape[1]))), dtype=np.int64)
        # A group key's one-hot column holds sqrt(group_scale) instead of 1: under the same L2
        # penalty its level weights then have group_scale times the prior variance of every
        # other weight (a random intercept with its own variance), and the weight stored is the
        # fitted coefficient times that value, so scoring looks weights up as for any column.
        fitted: list[dict[str, Any]] = []  # the columns in the design, in order
        offset = 0
        for j in range(X.shape[1]):
            if j in exclude:  # a column this model leaves out: one range, weight 0
                self.columns_.append({"kind": "cuts", "values": np.zeros(0), "weights": np.zeros(1)})
                continue
            k = len(fitted)
            col = X[:, j]
            if j in categorical:
                cuts = np.unique(col)  # the codes seen
                index[:, k] = np.searchsorted(cuts, col)
                entry = {"kind": "codes", "values": cuts}
                width = len(cuts)
            else:
                qs = np.quantile(col, np.arange(1, self.n_bins) / self.n_bins)
                cuts = np.unique(np.concatenate([[col.min()], qs]))
                index[:, k] = np.searchsorted(cuts, col, side="left")
                entry = {"kind": "cuts", "values": cuts}
                width = len(cuts) + 1
            entry.update(offset=offset, width=width, scale=np.sqrt(self.group_scale) if j in groups else 1.0)
            self.columns_.append(entry)
            fitted.append(entry)
            index[:, k] += offset
            offset += width
        value = np.array([e["scale"] for e in fitted])
        n, m = index.shape
        design = sparse.csr_matrix(
            (np.tile(value, n), index.ravel(), np.arange(0, n * m + 1, m)), shape=(n, offset))
        # newton-cg: on these one-hot designs it converges in ~20 Newton steps where lbfgs needs
        # hundreds of iterations at the larger C values of the search space
        lr = LogisticRegression(C=self.C, solver="newton-cg", max_iter=self.max_iter, class_weight=self.class_weight)
        lr.fit(design, y == self.classes_[1])
        coef = lr.coef_[0]
        self.intercept_ = float(lr.intercept_[0])
        for entry in fitted:
            entry["weights"] = coef[entry["offset"]:entry["offset"] + entry["width"]] * entry["scale"]
            del entry["offset"], entry["width"], entry["scale"]
        self.n_features_in_ = X.shape[1]
        self._set_means(X)
        return self

    def _set_means(self, X: np.ndarray) -> None:
        looked = self._lookup(X)
        self.means_ = looked.mean(axis=0)
        self.mean_abs_ = np.abs(looked - self.means_).mean(axis=0)

    # -- prediction ----------------------------------------------------------------------------
    def _tables(self) -> tuple[np.ndarray, ...]:
        """The columns' cut points and weights as flat arrays with [start, end) offsets, for the
        compiled lookup."""
        cache = self.__dict__.get("_flat")
        if cache is None:
            values = [e["values"] for e in self.columns_]
            weights = [e["weights"] for e in self.columns_]
            cache = (
                np.array([e["kind"] == "codes" for e in self.columns_], dtype=np.bool_),
                np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64),
                np.concatenate(values).astype(np.float64) if values else np.zeros(0),
                np.concatenate([[0], np.cumsum([len(w) for w in weights])]).astype(np.int64),
                np.concatenate(weights).astype(np.float64) if weights else np.zeros(0),
            )
            self.__dict__["_flat"] = cache
        return cache

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.columns_):
            raise LeadscoreError(f"the linear model takes {len(self.columns_)} matrix columns, got {X.shape}")
        return X

    def _lookup(self, X: np.ndarray) -> np.ndarray:
        """(rows, columns): each column's weight for each row's range or level."""
        X = self._check(X)
        out = np.empty(X.shape, dtype=np.float64)
        if _compiled():
            _lookup_rows(X, *self._tables(), out, np.zeros(0))  # one thread: reasons are per batch
            return out
        for j, entry in enumerate(self.columns_):
            col = X[:, j]
            cuts, weights = entry["values"], entry["weights"]
            if entry["kind"] == "codes":
                pos = np.minimum(np.searchsorted(cuts, col), len(cuts) - 1)
                out[:, j] = np.where(cuts[pos] == col, weights[pos], 0.0)  # an unseen code: no weight
            else:
                out[:, j] = weights[np.searchsorted(cuts, col, side="left")]
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of the positive class."""
        X = self._check(X)
        if not _compiled():
            return self.intercept_ + self._lookup(X).sum(axis=1)
        total = np.zeros(len(X), dtype=np.float64)
        tables = self._tables()
        chunks = [slice(i, i + CHUNK_ROWS) for i in range(0, len(X), CHUNK_ROWS)]
        threads = min(self.threads, len(chunks))
        if threads <= 1:
            _lookup_rows(X, *tables, _NO_MATRIX, total)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:  # the compiled lookup releases the GIL
                list(pool.map(lambda c: _lookup_rows(X[c], *tables, _NO_MATRIX, total[c]), chunks))
        return self.intercept_ + total

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, columns + 1) log-odds contributions, bias last; each row sums to the log-odds."""
        looked = self._lookup(X)
        return np.column_stack([looked - self.means_, np.full(len(looked), self.intercept_ + self.means_.sum())])

    def importances(self) -> np.ndarray:
        """Mean absolute contribution per matrix column over the fitted rows: how far the column
        moves a typical lead's log-odds."""
        return np.asarray(self.mean_abs_, dtype=np.float64)

    # -- files ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "classes": [int(c) for c in self.classes_],
            "intercept": self.intercept_,
            "params": {"C": float(self.C), "n_bins": int(self.n_bins), "class_weight": self.class_weight,
                       "groups": [int(j) for j in self.groups], "group_scale": float(self.group_scale),
                       "exclude": [int(j) for j in self.exclude]},
            "columns": [{"kind": e["kind"], "values": e["values"].tolist(), "weights": e["weights"].tolist()}
                        for e in self.columns_],
            "means": self.means_.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BinnedLogistic:
        if data.get("format") != FORMAT:
            raise LeadscoreError(f"not a {FORMAT} model (format {data.get('format')!r})")
        params = data["params"]
        model = cls(C=params["C"], n_bins=params["n_bins"], class_weight=params.get("class_weight"),
                    groups=tuple(params.get("groups", ())), group_scale=params.get("group_scale", 10.0),
                    exclude=tuple(params.get("exclude", ())))
        model.classes_ = np.asarray(data["classes"])
        model.intercept_ = float(data["intercept"])
        model.columns_ = []
        for e in data["columns"]:
            if e["kind"] not in ("codes", "cuts"):
                raise LeadscoreError(f"unknown column kind {e['kind']!r} in a linear model")
            model.columns_.append({"kind": e["kind"], "values": np.asarray(e["values"], dtype=np.float64),
                                   "weights": np.asarray(e["weights"], dtype=np.float64)})
        model.n_features_in_ = len(model.columns_)
        model.means_ = np.asarray(data["means"], dtype=np.float64)
        return model

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> BinnedLogistic:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError, LeadscoreError) as exc:
            raise LeadscoreError(f"model artifact {path} is not a readable linear model: {exc}") from exc


def _lookup_rows_python(X, is_code, cut_start, cuts, weight_start, weights, out, total):  # pragma: no cover
    """Each value's weight: into out[i, j] when `out` has rows, else summed into total[i].
    Compiled by numba (_compiled); the numpy path in BinnedLogistic._lookup gives the same
    numbers without it."""
    rows, columns = X.shape
    keep = out.shape[0] > 0
    for i in range(rows):
        acc = 0.0
        for j in range(columns):
            x = X[i, j]
            lo = cut_start[j]
            hi = cut_start[j + 1]
            a = lo
            b = hi
            while a < b:  # first cut >= x (numpy's searchsorted, side='left')
                m = (a + b) // 2
                if cuts[m] < x:
                    a = m + 1
                else:
                    b = m
            w = 0.0
            if is_code[j]:
                if a < hi and cuts[a] == x:  # a code seen in training; an unseen one weighs 0
                    w = weights[weight_start[j] + a - lo]
            else:
                w = weights[weight_start[j] + a - lo]
            if keep:
                out[i, j] = w
            else:
                acc += w
        if not keep:
            total[i] = acc


_lookup_rows = _lookup_rows_python
_COMPILED: bool | None = None


def _compiled() -> bool:
    """Compile the lookup once per process where numba is installed (cache=True keeps the
    machine code between processes); False without numba."""
    global _lookup_rows, _COMPILED
    if _COMPILED is None:
        from leadscore.treeshap import available

        _COMPILED = bool(available())
        if _COMPILED:
            import numba

            _lookup_rows = numba.njit(cache=True, nogil=True)(_lookup_rows_python)
    return _COMPILED
