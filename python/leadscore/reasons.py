"""Reasons per lead: why a lead scored as it did, as three readable sentences.

Where the numbers come from. Each base model that has its own per-feature contribution output
gives one, in log-odds, for every lead:

* LightGBM: `Booster.predict(X, pred_contrib=True)` (TreeSHAP), or the same numbers from
  leadscore.treeshap where numba is installed: per-leaf tables instead of LightGBM's per-lead
  recursion, about 6x less CPU, equal up to the order of the floating point additions;
* XGBoost: `Booster.predict(DMatrix(X), pred_contribs=True)` (TreeSHAP);
* the linear member (linear.BinnedLogistic): its additive log-odds, each column's weight minus
  its mean over the training rows (exact for an additive model);

one column per matrix column plus a last "bias" column (the expected log-odds), and each row
sums to the model's raw score (`raw_score=True` / `output_margin=True`) exactly. RandomForest
and ExtraTrees have no such output: in an ensemble their share is left out and the weights of
the members that do provide contributions are renormalised over them
(`ensemble.log_odds_weights`):

* voting: the contributions are averaged with the voting weights, scaled to sum to one over the
  contributing members, then multiplied by the Platt slope of the blend. The blend averages
  probabilities, not log-odds, so this is the log-odds analogue of the blend: each member counts
  with its weight and keeps its directions, but the sum is not exactly the score's log-odds;
* stacking: the meta-model is linear in the members' log-odds, so its coefficients apply as they
  are (rescaled only when a member is left out): exact when every member contributes.

A single LightGBM or XGBoost model (the usual case: the baseline often wins) is exact: the
contributions plus the bias are the log-odds of the score (the prior and target-prevalence
shifts are constants, added to the bias).

When no member provides contributions (a RandomForest or ExtraTrees chosen alone, or a blend of
only those), the forests' own tree paths are used instead (Saabas' decomposition, as the
treeinterpreter package does it): along each tree's decision path, the change in the node's
positive share is credited to the feature the parent split on; averaged over the trees, these
add up exactly to the forest's probability minus the share at the roots. They are moved to
log-odds by one factor per lead, (logit p - logit bias) / (p - bias), which keeps every sign and
their exact sum. This is a different (path-dependent) attribution than TreeSHAP, but it is the
forest's own, not a guess from another model.

Columns and features. The model matrix has one column per feature (a categorical is one column of
integer codes) and, for format-1 models, `<feature>__missing` indicators; contributions are
summed per source feature (`Encoding.features`), so a category-level feature is reported once,
under its own name, whatever its encoding.

Readable text. The sentence templates live in one place, the dbt seed `feature_reasons`
(dbt_project/seeds/feature_reasons.csv, described in _seeds.yml), read from `main.feature_reasons`
so analysts see the catalog in SQL and in dbt docs. A template is a Python format string over
the lead's own values: `{value}` is the feature's value, `{other_column}` another feature column of
the same lead, with an optional format spec (`{value:.0%}`). A boolean uses `template` when true
and `false_template` when false; a null value (or a null column the template needs) uses
`missing_template`. A feature without a row in the seed (a promoted extra column, a database
built without the seed) gets the generic fallback `<feature> = <value>` / `<feature>: not known`.
Each sentence ends with the direction and the contribution: `...: raises the odds (+0.84)`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from leadscore import db, ensemble, estimators, treeshap
from leadscore.errors import LeadscoreError
from leadscore.fileio import sha256_file
from leadscore.operating_point import logit

if TYPE_CHECKING:
    from leadscore.model import LoadedModel

CATALOG_TABLE = "main.feature_reasons"
REASONS = 3  # reasons kept per lead (ops.score_history.reason_1 .. reason_3)
NATIVE_KINDS = ("lightgbm", "xgboost", "logistic")  # kinds with their own contribution output
INDICATOR_SUFFIX = "__missing"  # format-1 models' missing indicator columns


# ------------------------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class Template:
    """One row of the feature_reasons seed."""

    feature: str
    label: str
    template: str
    false_template: str | None = None
    missing_template: str | None = None


def load_templates(con: duckdb.DuckDBPyConnection, table: str = CATALOG_TABLE) -> dict[str, Template]:
    """The sentence templates by feature; empty when the seed was never built (every feature then
    gets the generic fallback, so scoring never fails for want of text)."""
    schema, _, name = table.rpartition(".")
    if not db.table_exists(con, schema or "main", name):
        return {}
    rows = db.fetch_all(
        con, f"select feature, label, template, false_template, missing_template from {table} order by feature"
    )
    return {r[0]: Template(r[0], r[1] or r[0], r[2] or f"{r[1] or r[0]} = {{value}}", r[3] or None, r[4] or None)
            for r in rows}


@functools.lru_cache(maxsize=4096)
def template_fields(text: str) -> tuple[tuple[str, str], ...]:
    """(field name, format spec) of every placeholder in a template: what a test checks against
    the feature table's columns (cached: scoring renders each template many times)."""
    return tuple((field, spec or "") for _, field, spec, _ in string.Formatter().parse(text) if field is not None)


# ------------------------------------------------------------------------------- contributions


def member_contributions(kind: str, model: Any, X: np.ndarray, fast: Any = None) -> np.ndarray:
    """Per-column contributions of one base model in log-odds: shape (rows, columns + 1), the last
    column the bias; each row sums to the model's raw score (LightGBM, XGBoost) or to the
    logit of its probability (forests, Saabas). `fast`: the booster's treeshap.LightGBMTreeShap
    (fast_member), which computes LightGBM's numbers with less work."""
    if kind == "lightgbm":
        if fast is not None:
            return fast.contributions(X, threads=estimators.threads())
        out = model.predict(X, pred_contrib=True, num_threads=estimators.threads())
        return np.asarray(out, dtype=np.float64)
    if kind == "xgboost":
        import xgboost as xgb

        out = model.predict(xgb.DMatrix(X, nthread=estimators.threads()), pred_contribs=True)
        return np.asarray(out, dtype=np.float64)
    if kind == "logistic":
        return model.contributions(X)
    if kind in ("random_forest", "extra_trees"):
        return forest_contributions(model, X)
    raise LeadscoreError(f"no contributions for base model kind {kind!r}")


def fast_member(kind: str, model: Any, n_columns: int) -> Any:
    """The per-leaf-table TreeSHAP of a LightGBM member (leadscore.treeshap), or None where numba
    is not installed or the booster is not one it covers: LightGBM's pred_contrib then."""
    if kind != "lightgbm" or not treeshap.available():
        return None
    try:
        return treeshap.LightGBMTreeShap(model.text if isinstance(model, _LazyBooster) else model, n_columns)
    except ValueError:
        return None


def forest_contributions(est: Any, X: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Saabas' decomposition of a RandomForest/ExtraTrees, moved to log-odds (see the module
    docstring): shape (rows, columns + 1), each row summing to logit(P(positive))."""
    from scipy import sparse

    n, m = X.shape
    positive = list(est.classes_).index(True) if True in list(est.classes_) else len(est.classes_) - 1
    prob = np.zeros((n, m), dtype=np.float64)
    bias = 0.0
    trees = est.estimators_
    for tree in trees:
        t = tree.tree_
        value = t.value[:, 0, :]
        share = value[:, positive] / np.maximum(value.sum(axis=1), 1e-300)
        parent = np.full(t.node_count, -1, dtype=np.int64)
        for children in (t.children_left, t.children_right):
            inner = children >= 0
            parent[children[inner]] = np.nonzero(inner)[0]
        child = np.nonzero(parent >= 0)[0]
        credit = sparse.csr_matrix(
            (share[child] - share[parent[child]], (child, t.feature[parent[child]])), shape=(t.node_count, m)
        )
        for start in range(0, n, chunk):
            part = X[start:start + chunk]
            prob[start:start + len(part)] += (tree.decision_path(part) @ credit).toarray()
        bias += share[0]
    prob /= len(trees)
    bias /= len(trees)
    p = np.clip(bias + prob.sum(axis=1), 1e-7, 1 - 1e-7)
    b = float(np.clip(bias, 1e-7, 1 - 1e-7))
    gap = p - b
    # logit is increasing, so the factor is positive: signs and the exact sum survive
    factor = np.where(np.abs(gap) > 1e-9, (logit(p) - logit(b)) / np.where(gap == 0, 1, gap), 1 / (b * (1 - b)))
    out = np.empty((n, m + 1), dtype=np.float64)
    out[:, :m] = prob * factor[:, None]
    out[:, m] = logit(np.array([b]))[0]
    return out


def widen(part: np.ndarray, n_columns: int) -> np.ndarray:
    """A member's contributions (bias last) over the first columns of the matrix, as contributions
    over all `n_columns` of them: 0 for the columns it does not read."""
    if part.shape[1] == n_columns + 1:
        return part
    out = np.zeros((len(part), n_columns + 1), dtype=np.float64)
    out[:, : part.shape[1] - 1] = part[:, :-1]
    out[:, -1] = part[:, -1]
    return out


def combine(contributions: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of the members' contribution matrices (same shape, bias last)."""
    out: np.ndarray | None = None
    for name, w in weights.items():
        part = w * contributions[name]
        out = part if out is None else out + part
    if out is None:
        raise LeadscoreError("no member contributions to combine")
    return out


def feature_groups(column_names: Sequence[str], features: Sequence[str]) -> np.ndarray:
    """Index of the source feature of every matrix column: a feature's own column, and a
    `<feature>__missing` indicator, both count for the feature."""
    where = {f: i for i, f in enumerate(features)}
    out = np.empty(len(column_names), dtype=np.int64)
    for j, col in enumerate(column_names):
        name = col[: -len(INDICATOR_SUFFIX)] if col.endswith(INDICATOR_SUFFIX) and col not in where else col
        if name not in where:
            raise LeadscoreError(f"matrix column {col} belongs to no feature")
        out[j] = where[name]
    return out


def by_feature(contributions: np.ndarray, groups: np.ndarray, n_features: int) -> np.ndarray:
    """(rows, features): the column contributions (bias column dropped) summed per feature."""
    cols = contributions[:, : len(groups)]
    if np.array_equal(groups, np.arange(n_features)):
        return cols
    out = np.zeros((len(cols), n_features), dtype=np.float64)
    for j, g in enumerate(groups):
        out[:, g] += cols[:, j]
    return out


def top_features(per_feature: np.ndarray, k: int = REASONS) -> np.ndarray:
    """(rows, k) feature indices by decreasing |contribution| (ties: the lower index first)."""
    n, m = per_feature.shape
    k = min(k, m)
    size = np.abs(per_feature)
    if k < m:
        cand = np.argpartition(-size, k - 1, axis=1)[:, :k]
    else:
        cand = np.tile(np.arange(m), (n, 1))
    order = np.lexsort((cand, -np.take_along_axis(size, cand, axis=1)), axis=1)
    return np.take_along_axis(cand, order, axis=1)


# ----------------------------------------------------------------------------------- rendering


def _plain(value: Any) -> Any:
    """A cell as a plain Python value: None for null, int for a whole number, float, bool, str."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        if math.isnan(v):
            return None
        return int(v) if v.is_integer() and abs(v) < 2**53 else v
    return str(value)


def readable_number(value: int | float) -> str:
    """A number as a sales team reads it in a sentence, never in scientific notation: from 1,000
    on with thousands separators, from 100 on a fraction rounded to a whole number (an evidence
    count on the out-of-fold scale, 2312.8, reads 2,313), below that three significant digits
    without trailing zeros (9.6, 0.412, 0.0000123)."""
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1000 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 99.95:  # 99.96 would read "100.0" with three digits: a whole number either way
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class _Formatter(string.Formatter):
    """str.format with a readable default for numbers (readable_number), when the template gives
    no format spec; a spec in the template (`{value:.1%}`) is applied as written."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec and isinstance(value, int | float) and not isinstance(value, bool):
            return readable_number(value)
        return super().format_field(value, format_spec)


_FORMATTER = _Formatter()


def sentence(template: Template | None, feature: str, row: Callable[[str], Any]) -> str:
    """The reason text of one feature for one lead (without the direction): `row(name)` gives the
    lead's value of a column (None when null or absent)."""
    value = row(feature)
    if template is None:
        return f"{feature}: not known" if value is None else f"{feature} = {_FORMATTER.format('{0}', value)}"
    if value is None:
        return template.missing_template or f"{template.label}: not known"
    text = template.template
    if isinstance(value, bool) and not value:
        text = template.false_template or f"{template.label}: no"
    values: dict[str, Any] = {}
    for name, _ in template_fields(text):
        v = value if name == "value" else row(name)
        if v is None:
            return template.missing_template or f"{template.label}: not known"
        values[name] = v
    try:
        return _FORMATTER.format(text, **values)
    except (ValueError, TypeError, KeyError, IndexError):  # a spec that does not fit the value
        return f"{template.label} = {_FORMATTER.format('{0}', value)}"


def direction(contribution: float) -> str:
    if contribution > 0:
        return f"raises the odds ({contribution:+.2f})"
    if contribution < 0:
        return f"lowers the odds ({contribution:+.2f})"
    return "does not move the odds (0.00)"


def render(df: pd.DataFrame, features: Sequence[str], top: np.ndarray, per_feature: np.ndarray,
           templates: dict[str, Template]) -> list[list[str | None]]:
    """REASONS lists (reason_1, reason_2, reason_3) of one text per lead, from the leads' own
    values in `df` (the raw feature columns, as scoring reads them)."""
    columns: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray | None:
        if name not in columns:
            if name not in df.columns:
                return None
            columns[name] = df[name].to_numpy(dtype=object)
        return columns[name]

    out: list[list[str | None]] = [[None] * len(df) for _ in range(REASONS)]
    for i in range(len(df)):
        def row(name: str, i: int = i) -> Any:
            col = column(name)
            return None if col is None else _plain(col[i])

        for k in range(top.shape[1]):
            f = int(top[i, k])
            name = features[f]
            out[k][i] = f"{sentence(templates.get(name), name, row)}: {direction(float(per_feature[i, f]))}"
    for k in range(top.shape[1], REASONS):  # a model of fewer features than reasons
        out[k] = ["no further feature" for _ in range(len(df))]
    return out


# ----------------------------------------------------------------------------------- explainer


@dataclass
class Explainer:
    """What a scoring run needs to give every lead its reasons: the contributing base models
    (loaded once, from the files the model's checksums cover), their weights, and the catalog."""

    features: list[str]
    groups: np.ndarray
    models: dict[str, tuple[str, Any]]  # name -> (kind, booster / forest)
    weights: dict[str, float]
    bias_shift: float  # constant log-odds moves (prior shifts, intercepts), for the exact sum
    templates: dict[str, Template]
    source: str  # 'native' (LightGBM/XGBoost) or 'forest paths' (the fallback)
    fast: dict[str, Any] = field(default_factory=dict)  # name -> treeshap.LightGBMTreeShap (fast_member)
    tree_width: int | None = None  # the trees' matrix columns (Encoding.tree_width); None: all

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(rows, columns + 1): the ensemble's log-odds contributions, bias last (a tree's are 0
        for the group keys, which it does not read)."""
        width = X.shape[1] if self.tree_width is None else self.tree_width
        parts = {name: widen(member_contributions(kind, m, estimators.member_matrix(kind, X, width),
                                                  self.fast.get(name)), X.shape[1])
                 for name, (kind, m) in self.models.items()}
        out = combine(parts, self.weights)
        out[:, -1] += self.bias_shift
        return out

    def explain(self, df: pd.DataFrame, X: np.ndarray) -> list[list[str | None]]:
        """Three reason texts per lead of `df` (X: its encoded matrix)."""
        if len(df) == 0:
            return [[] for _ in range(REASONS)]
        per_feature = by_feature(self.contributions(X), self.groups, len(self.features))
        return render(df, self.features, top_features(per_feature), per_feature, self.templates)


class _LazyBooster:
    """A LightGBM member's Booster, loaded from its (checked) model text on first use. With
    numba the reasons come from treeshap.LightGBMTreeShap, built from the same text, and the
    Booster is never needed: LightGBM is then not imported at all (with sklearn and scipy
    behind it, about 2 s of a nightly's scoring start)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._booster: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.text)
        return getattr(self._booster, name)


def _load_member(model: LoadedModel, entry: dict[str, Any]) -> Any:
    path = model.artifact_dir / entry["file"]
    expected = model.checksums.get(entry["file"])
    kind = entry["kind"]
    # a LightGBM member is read once, so the text checked is the text used
    data = path.read_bytes() if kind == "lightgbm" else None
    digest = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    if expected is None or digest != expected:
        raise LeadscoreError(f"model artifact {path} failed its sha256 check (modified after loading)")
    if data is not None:
        return _LazyBooster(data.decode())
    if kind == "xgboost":
        import xgboost as xgb

        bst = xgb.Booster()
        bst.load_model(str(path))
        return bst
    if kind == "logistic":
        from leadscore.linear import BinnedLogistic

        return BinnedLogistic.load(path)
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    return estimators.load_skops(path, (RandomForestClassifier if kind == "random_forest" else ExtraTreesClassifier,))


def explainer(model: LoadedModel, templates: dict[str, Template] | None = None) -> Explainer:
    """The Explainer of a loaded model: its LightGBM/XGBoost members, or its forests when it has
    neither (module docstring)."""
    spec = model.meta["ensemble"]
    used = ensemble.used_models(spec)
    entries = {m["name"]: m for m in model.meta["models"]}
    native = [n for n in used if entries[n]["kind"] in NATIVE_KINDS]
    names, source = (native, "native") if native else (used, "forest paths")
    weights = ensemble.log_odds_weights(spec, names)
    pi = model.train_positive_rate
    # constant moves of the log-odds: each member's prior back to the training rate, the blend's
    # intercept, the target prevalence; they go to the bias, never to a feature
    shift = sum(w * (_logit(pi) - _logit(float(entries[n]["effective_prior"]))) for n, w in weights.items())
    shift += ensemble.mean_calibration(spec.get("calibration"))[1] if spec["kind"] == "voting" else 0.0
    shift += float(spec["intercept"]) if spec["kind"] == "stacking" else 0.0
    if model.target_prevalence is not None:
        shift += _logit(model.target_prevalence) - _logit(pi)
    features = [f.name for f in model.encoding.features]
    models = {n: (entries[n]["kind"], _load_member(model, entries[n])) for n in names}
    n_columns = len(model.encoding.column_names)
    tree_width = model.encoding.tree_width
    fast = {n: f for n, (kind, m) in models.items()
            if (f := fast_member(kind, m, n_columns if estimators.reads_group_keys(kind) else tree_width)) is not None}
    return Explainer(
        features=features,
        groups=feature_groups(model.encoding.column_names, features),
        models=models,
        weights=weights,
        bias_shift=shift,
        templates=dict(templates or {}),
        source=source,
        fast=fast,
        tree_width=tree_width,
    )


def _logit(p: float) -> float:
    return float(logit(p))
