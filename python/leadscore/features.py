"""Feature access: read `main.fct_lead_features` into pandas and turn it into a model matrix.

Contract with the dbt models (see models_sql/marts): the table has one row per lead with the
key columns `lead_id`, `id`, `split` ('train' | 'score') and `is_converted` (null when
unlabeled); EVERY other column is a feature. Numeric SQL types (DOUBLE, FLOAT, INTEGER, BIGINT,
BOOLEAN, DECIMAL, ...) are numeric features, VARCHAR columns are categorical. Nothing here
hard-codes a feature name: the list and types are read from `information_schema.columns`.

Data always travels DuckDB -> Arrow -> pandas with whole fetches (`fetch_arrow_table`), never
row by row and never leaving a result partly fetched (DuckDB 2.x refuses new work on a
connection that still has an unfinished result).

The encoding (`Encoding`) is learned from training rows only and saved as JSON inside the model:

* numeric feature: float; a missing value becomes a fill value below the training minimum (the
  SQL owns missing flags: int_leads_filled's is_missing_* columns);
* categorical feature: integer code. 0 = missing, 1 = never seen in training, 2.. = every
  training level, most frequent first (ties by value), so the codes are deterministic. The SQL
  has already bucketed rare levels (int_leads_bucketed); this only freezes the levels. Unseen
  categories at scoring time get code 1: they score, not fail.

The matrix has no NaN, so every model and every resampler (SMOTE/SMOTENC) takes the same input.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadscore import db
from leadscore.errors import LeadscoreError
from leadscore.tables import LATEST_SCORES

FEATURE_TABLE = "main.fct_lead_features"
# Forward-in-time validation's view of the dated training rows (marts/_models.yml): each lead's
# time block and its labeled history as of the block's start, under the feature columns' names.
VALIDATION_HISTORY_TABLE = "main.fct_lead_validation_history"
BLOCK = "history_block"
# lead_date: final-round files only; rate_fold: the fold a training row's out-of-fold rates leave
# out (validation keeps it whole)
KEY_COLUMNS = ("lead_id", "id", "split", "is_converted", "lead_date", "rate_fold")
LABEL = "is_converted"
# A VARCHAR column named <column>_group_key is a raw identifier (customer, owner), not a tree
# feature: only the mixed-effects (linear) member reads it, as one shrunk intercept per value.
GROUP_KEY_SUFFIX = "_group_key"
# The customer's group key: the evidence calibration (evidence.py) and the score mix
# (score_mix.py) read a lead's customer from it.
CUSTOMER_KEY = "customer_idx" + GROUP_KEY_SUFFIX
# The mart's names for columns computed from labels (int_lead_target_rates' out-of-fold rates,
# tiers and evidence; int_lead_history_as_of's earlier conversions): the mixed-effects member
# leaves them out where it has group keys, which carry that evidence as intercepts fitted jointly.
LABEL_DERIVED_SUFFIXES = ("_target_rate", "_rate_tier", "_evidence_rows", "_evidence_conversions",
                          "_earlier_conversions", "_earlier_conversion_rate")

NUMERIC_TYPE = re.compile(
    r"^(DOUBLE|FLOAT|REAL|FLOAT4|FLOAT8|INTEGER|INT|INT4|INT8|BIGINT|SMALLINT|TINYINT|HUGEINT|"
    r"UBIGINT|UINTEGER|USMALLINT|UTINYINT|UHUGEINT|BOOLEAN|BOOL|DECIMAL(\(\d+,\s*\d+\))?|NUMERIC.*)$",
    re.IGNORECASE,
)
CATEGORICAL_TYPE = re.compile(r"^(VARCHAR|TEXT|STRING)(\(\d+\))?$", re.IGNORECASE)

CODED_KINDS = ("categorical", "group")  # columns the encoding turns into integer codes
MISSING_CODE = 0
OTHER_CODE = 1
FIRST_CATEGORY_CODE = 2


@dataclass(frozen=True)
class Feature:
    name: str
    sql_type: str  # as DuckDB reports it, e.g. DOUBLE, VARCHAR, DECIMAL(18,3)
    kind: str  # "numeric" | "categorical" | "group" (a group key: codes like a categorical, linear member only)


def _split_table(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return (schema or "main"), name


def read_features(con: duckdb.DuckDBPyConnection, table: str = FEATURE_TABLE) -> list[Feature]:
    """The ordered feature list of `table` (every column but the key columns) with their kinds;
    the group keys (`<column>_group_key`) last, so the tree models' matrix is a prefix of the whole.

    Raises LeadscoreError when the table is missing, lacks a key column, or has a column whose
    type is neither numeric nor VARCHAR (the contract allows only those)."""
    schema, name = _split_table(table)
    rows = db.fetch_all(
        con,
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    )
    if not rows:
        raise LeadscoreError(f"table {table} does not exist: run `leadscore build` first")
    names = {r[0] for r in rows}
    missing = [c for c in ("lead_id", "split", LABEL) if c not in names]
    if missing:
        raise LeadscoreError(f"table {table} lacks the key column(s) {', '.join(missing)}")
    features: list[Feature] = []
    for col, dtype in rows:
        if col in KEY_COLUMNS:
            continue
        kind = feature_kind(col, dtype)
        if kind is None:
            raise LeadscoreError(
                f"column {col} of {table} has type {dtype}: features must be numeric or VARCHAR"
            )
        features.append(Feature(col, dtype, kind))
    if not any(f.kind != "group" for f in features):
        raise LeadscoreError(f"table {table} has no feature columns")
    return group_keys_last(features)


def feature_kind(name: str, sql_type: str) -> str | None:
    """'numeric', 'categorical' or 'group' (a VARCHAR `<column>_group_key`); None for a type a
    feature cannot have."""
    if NUMERIC_TYPE.match(sql_type):
        return "numeric"
    if CATEGORICAL_TYPE.match(sql_type):
        return "group" if name.endswith(GROUP_KEY_SUFFIX) else "categorical"
    return None


def group_keys_last(features: Sequence[Feature]) -> list[Feature]:
    """The features in table order, the group keys moved to the end: the tree models' matrix is
    then the leading columns of the whole one (Encoding.tree_width)."""
    return [f for f in features if f.kind != "group"] + [f for f in features if f.kind == "group"]


def feature_hash(features: Sequence[Feature] | Sequence[tuple[str, str]]) -> str:
    """sha256 of the ordered (name, SQL type) list: scoring compares it with the model's."""
    pairs = [(f.name, f.sql_type) if isinstance(f, Feature) else (f[0], f[1]) for f in features]
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def _select_list(features: Sequence[Feature], alias: str = "f") -> str:
    """The feature columns as the table types them (the dbt contract): no cast here, the
    encoding reads ints, booleans and doubles alike."""
    return ", ".join(f"{alias}.{db.quote_ident(f.name)}" for f in features)


def _to_pandas(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    result = con.execute(sql, params or [])
    # whole-result Arrow fetch: to_arrow_table (DuckDB >= 1.4), fetch_arrow_table before that
    fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table
    return fetch().to_pandas()


def _key_columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """`id`, `lead_date` and `rate_fold` as the table has them, typed nulls where it lacks them (a
    table built from qualifier-format data has no lead_date; a test table may have no id or
    rate_fold)."""
    schema, name = _split_table(table)
    have = {
        r[0]
        for r in db.fetch_all(
            con,
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "and column_name in ('id', 'lead_date', 'rate_fold')",
            [schema, name],
        )
    }
    return ", ".join(
        f"f.{col}" if col in have else f"cast(null as {typ}) as {col}"
        for col, typ in (("id", "bigint"), ("lead_date", "date"), ("rate_fold", "integer"))
    )


def load_split(
    con: duckdb.DuckDBPyConnection,
    split: str,
    features: Sequence[Feature] | None = None,
    table: str = FEATURE_TABLE,
) -> pd.DataFrame:
    """All rows of one split ('train' or 'score') with lead_id, id, lead_date, rate_fold,
    is_converted and the features, ordered by lead_id (a deterministic order, so same data ->
    same folds)."""
    features = list(features) if features is not None else read_features(con, table)
    sql = (
        f"select f.lead_id, {_key_columns(con, table)}, f.{LABEL}, {_select_list(features)} "
        f"from {table} as f where f.split = ? order by f.lead_id"
    )
    return _to_pandas(con, sql, [split])


def load_validation_history(con: duckdb.DuckDBPyConnection,
                            table: str = VALIDATION_HISTORY_TABLE) -> pd.DataFrame | None:
    """The dated training rows' time blocks and block-start history (lead_id, history_block and
    the feature columns it replaces), or None for a database without the table (a feature table
    built by hand, or before the table existed)."""
    if not db.table_exists(con, *_split_table(table)):
        return None
    return _to_pandas(con, f"select * from {table} order by lead_id")


@dataclass(frozen=True)
class ValidationView:
    """How forward-in-time validation sees the training rows (`load_split`'s order): each row's
    time block (NaN for a row without one) and the rows as a validated lead is scored, its
    labeled history as of its block's start. Why not the feature table's own values: those count
    the labels of the block's earlier leads, which the fold's model never fitted on and a score
    row's batch never has."""

    blocks: pd.Series
    rows: pd.DataFrame
    replaced: tuple[str, ...]  # the feature columns the history stands in for (values may equal the table's)


def validation_view(train_df: pd.DataFrame, history: pd.DataFrame | None) -> ValidationView | None:
    """`train_df` with the block-start values of `history` (load_validation_history) in place of
    its own, matched by lead_id; rows `history` lacks keep theirs. None without history."""
    if history is None:
        return None
    aligned = train_df[["lead_id"]].merge(history, on="lead_id", how="left", validate="one_to_one")
    replaced = tuple(c for c in history.columns if c not in ("lead_id", BLOCK) and c in train_df.columns)
    rows = train_df.copy()
    has_row = aligned[BLOCK].notna().to_numpy()
    for column in replaced:  # numeric history columns: counts and rates
        rows[column] = np.where(has_row, aligned[column].astype("float64").to_numpy(),
                                rows[column].astype("float64").to_numpy())
    return ValidationView(blocks=aligned[BLOCK].astype("float64"), rows=rows, replaced=replaced)


def load_leads(
    con: duckdb.DuckDBPyConnection,
    lead_ids: Sequence[str],
    features: Sequence[Feature],
    table: str = FEATURE_TABLE,
) -> pd.DataFrame:
    """The score rows of the given leads, as `load_split` reads them (ordered by lead_id); a
    lead that is not a score row of the table is left out. For scoring a few chosen leads with a
    model held in memory (leadscore.promotion: a new model's scores of leads with known outcomes)."""
    con.register("_chosen_leads", pa.table({"lead_id": pa.array([str(x) for x in lead_ids], pa.string())}))
    try:
        return _to_pandas(
            con,
            f"select f.lead_id, {_key_columns(con, table)}, f.{LABEL}, {_select_list(features)} "
            f"from {table} as f semi join _chosen_leads as c on f.lead_id = c.lead_id "
            "where f.split = 'score' order by f.lead_id",
        )
    finally:
        con.unregister("_chosen_leads")


def check_features(model_features: Sequence[Feature], table_features: Sequence[Feature]) -> None:
    """Raise naming every difference between what a model learned on and what the table has:
    if dbt changed a feature's name or type since training, scores would be silently wrong."""
    have = {f.name: f.sql_type for f in table_features}
    problems = []
    for f in model_features:
        if f.name not in have:
            problems.append(f"{f.name} is missing")
        elif have[f.name] != f.sql_type:
            problems.append(f"{f.name} is {have[f.name]}, model expects {f.sql_type}")
    if problems:
        raise LeadscoreError(
            f"fct_lead_features no longer matches the model's features ({first_of(problems)}): "
            "retrain with `leadscore train` or rebuild the features the model was trained on"
        )


def first_of(items: Sequence[str], limit: int = 5) -> str:
    """The first `limit` items joined for a one-line message, and how many more there are."""
    return "; ".join(items[:limit]) + (f"; and {len(items) - limit} more" if len(items) > limit else "")


SETTINGS_TABLE = "main.feature_settings"


def read_settings(con: duckdb.DuckDBPyConnection, table: str = SETTINGS_TABLE) -> dict[str, Any] | None:
    """The dbt vars the feature table was built with (models_sql/marts/feature_settings.sql), or
    None where the table does not exist (a database built before it did). A training run keeps
    them in model.json so that scoring can tell features built another way from the same columns:
    switching a family off, another rare-value threshold or other crosses keep every name and type."""
    schema, name = _split_table(table)
    if not db.table_exists(con, schema, name):
        return None
    return parse_settings(table, [r[0] for r in db.fetch_all(con, f"select feature_vars from {table}")])


def parse_settings(table: str, values: list[Any]) -> dict[str, Any]:
    """The one row's feature_vars as a dict (either engine's table: spark.spark_settings too)."""
    if len(values) != 1:
        raise LeadscoreError(f"{table} has {len(values)} rows, expected one: run `leadscore build`")
    try:
        settings = json.loads(values[0])
    except (TypeError, ValueError) as exc:
        raise LeadscoreError(f"{table}.feature_vars is not a JSON object: run `leadscore build` ({exc})") from exc
    if not isinstance(settings, dict):
        raise LeadscoreError(f"{table}.feature_vars is not a JSON object: run `leadscore build`")
    return settings


def settings_differences(model_settings: dict[str, Any], built: dict[str, Any]) -> list[str]:
    """One line a var whose value differs, `name: model <v>, features <v>` (JSON values), sorted."""
    out = []
    for name in sorted(set(model_settings) | set(built)):
        if model_settings.get(name, "(absent)") != built.get(name, "(absent)"):
            out.append(f"{name}: model {json.dumps(model_settings.get(name, '(absent)'))}, "
                       f"features {json.dumps(built.get(name, '(absent)'))}")
    return out


def check_settings(model_version: str, model_settings: dict[str, Any] | None, built: dict[str, Any] | None) -> None:
    """Refuse to score features built with other dbt vars than the model's. A model from before
    models recorded their settings (None) is not checked: nothing says what it was trained on."""
    if model_settings is None:
        return
    if built is None:
        raise LeadscoreError(f"{SETTINGS_TABLE} does not exist, so nothing says how fct_lead_features was built: "
                             "run `leadscore build`")
    problems = settings_differences(model_settings, built)
    if problems:
        raise LeadscoreError(
            f"fct_lead_features was built with other dbt vars than model {model_version} was trained on "
            f"({first_of(problems)}): rebuild with the model's settings (`leadscore build --vars ...`) or "
            "train a model on these features (`leadscore train`)"
        )


def _pending(model_version: str | None, rescore: bool) -> tuple[str, list[Any]]:
    """The one 'not yet scored' rule: unlabeled rows, minus those `model_version` already
    scored unless rescoring. The count and the batches both use it.

    'Already scored' is read from ops.latest_scores (one row per lead and model, kept in the
    same transaction as the history), not from ops.score_history: the same answer, at a cost
    that does not grow with every rescoring run the history keeps."""
    if model_version is None or rescore:
        return "f.split = 'score'", []
    return (
        "f.split = 'score' and not exists (select 1 from "
        f"{LATEST_SCORES} as s where s.lead_id = f.lead_id and s.model_version = ?)",
        [model_version],
    )


@dataclass
class ScoreStream:
    """What one scoring run reads, streamed: the model's features (checked against the table),
    how many leads wait and their lead_date range, and the Arrow record batches that hold them
    (`lead_id`, `id`, `lead_date`, `rate_fold` and the feature columns), in no particular order."""

    features: list[Feature]
    total: int
    first_lead_date: Any
    last_lead_date: Any
    batches: Iterator[pa.RecordBatch]


def score_stream(
    con: duckdb.DuckDBPyConnection,
    model_features: Sequence[Feature],
    model_version: str,
    rescore: bool = False,
    batch_size: int = 200_000,
    table: str = FEATURE_TABLE,
    model_settings: dict[str, Any] | None = None,
) -> ScoreStream:
    """The read side of a scoring run as ONE query streamed in Arrow record batches of at most
    `batch_size` rows: no page re-sorts the leads still waiting (keyset pages did, which made a
    5M-lead rescore quadratic), and no batch goes through pandas.

    The caller must read the batches to the end before it uses `con` again (DuckDB refuses new
    work on a connection with an unfinished streamed result): score.py scores every batch, then
    writes once. Rows come in no particular order; ties are broken by lead_id afterwards.

    `model_settings`: the dbt vars the model was trained on (model.json); the feature table must
    have been built with the same ones (`check_settings`)."""
    if batch_size <= 0:
        raise LeadscoreError(f"batch size must be positive, got {batch_size}")
    check_features(model_features, read_features(con, table))
    if model_settings is not None:
        check_settings(model_version, model_settings, read_settings(con))
    where, params = _pending(model_version, rescore)
    keys = _key_columns(con, table)
    total, first, last = db.fetch_all(
        con, f"select count(*), min(lead_date), max(lead_date) from (select {keys} from {table} as f where {where})",
        params,
    )[0]
    sql = f"select f.lead_id, {keys}, {_select_list(model_features)} from {table} as f where {where}"

    def batches() -> Iterator[pa.RecordBatch]:
        if not total:
            return
        result = con.execute(sql, params)
        # to_arrow_reader (DuckDB >= 1.4), fetch_record_batch before that
        reader = (getattr(result, "to_arrow_reader", None) or result.fetch_record_batch)(int(batch_size))
        try:
            for batch in reader:
                if batch.num_rows:
                    yield batch
        finally:
            # the query's result goes now (also when the caller stops early), not whenever the
            # reader is collected
            reader.close()

    return ScoreStream(list(model_features), int(total), first, last, batches())


# ----------------------------------------------------------------------------------- encoding


def _column_major(rows: int, columns: int) -> np.ndarray:
    """The encoding's work matrix: filled one feature column at a time, so column-major (each
    column's writes are contiguous; into a row-major matrix every value lands on its own cache
    line), then copied once into the row-major matrix the models read. At 200,000 leads and 104
    columns that cut the encoding's CPU by about a third."""
    return np.empty((rows, columns), dtype=np.float32, order="F")


@dataclass
class Encoding:
    """Deterministic, JSON-serialisable preprocessing learned from training rows only."""

    features: list[Feature]
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical -> kept values
    fill: dict[str, float] = field(default_factory=dict)  # numeric -> fill value for missing
    indicators: list[str] = field(default_factory=list)  # format-1 models only: numerics with a __missing column

    @classmethod
    def fit(cls, df: pd.DataFrame, features: Sequence[Feature]) -> Encoding:
        """Freeze the category levels and fill values of (training) rows.

        Rare-value bucketing, fills and missing flags are the SQL's (int_leads_bucketed,
        int_leads_filled): every level the training rows carry keeps its own code here, and a
        level never seen in training maps to 'other'."""
        enc = cls(features=list(features))
        for f in features:
            col = df[f.name]
            if f.kind in CODED_KINDS:
                counts = col.dropna().astype(str).value_counts()
                # most frequent first, ties broken by the value itself: deterministic
                order = sorted(counts.items(), key=lambda kv: (-int(kv[1]), kv[0]))
                enc.categories[f.name] = [k for k, _ in order]
            else:
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                finite = values[np.isfinite(values)]
                lo = float(finite.min()) if finite.size else 0.0
                hi = float(finite.max()) if finite.size else 0.0
                # below every training value: a tree separates "not known" with one split
                enc.fill[f.name] = lo - 1.0 - 0.01 * (hi - lo)
        return enc

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.features] + [f"{n}__missing" for n in self.indicators]

    @property
    def tree_width(self) -> int:
        """How many leading matrix columns the tree models read: all but the group keys, which
        read_features puts last (a model without group keys: every column)."""
        groups = self.group_indices
        if not groups:
            return len(self.column_names)
        if self.indicators or groups != list(range(groups[0], len(self.features))):
            raise LeadscoreError("the group keys must be the encoding's last columns")
        return groups[0]

    @property
    def group_indices(self) -> list[int]:
        """Matrix columns holding group-key codes (the linear member's random intercepts)."""
        return [i for i, f in enumerate(self.features) if f.kind == "group"]

    def mixed_effects_columns(self) -> tuple[list[int], list[int]]:
        """(group keys, columns left out) for the mixed-effects member: the group keys whose
        training rows carry values, and, when there are any, the label-derived columns
        (LABEL_DERIVED_SUFFIXES), whose evidence the intercepts then hold. No group key with
        values (a mart built with use_group_keys false): ([], []), the plain linear member."""
        groups = [i for i in self.group_indices if self.categories.get(self.features[i].name)]
        if not groups:
            return [], []
        return groups, [i for i, f in enumerate(self.features) if f.name.endswith(LABEL_DERIVED_SUFFIXES)]

    @property
    def categorical_indices(self) -> list[int]:
        """Matrix columns holding integer codes (categoricals) or 0/1 missing indicators."""
        n = len(self.features)
        return [i for i, f in enumerate(self.features) if f.kind == "categorical"] + list(
            range(n, n + len(self.indicators))
        )

    @property
    def category_code_indices(self) -> list[int]:
        """Matrix columns holding categorical codes only (for LightGBM's categorical_feature)."""
        return [i for i, f in enumerate(self.features) if f.kind == "categorical"]

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """The float32 model matrix (no NaN) for `df`, which must hold every feature column."""
        missing = [f.name for f in self.features if f.name not in df.columns]
        if missing:
            raise LeadscoreError(f"input lacks feature column(s): {', '.join(missing)}")
        n = len(df)
        out = _column_major(n, len(self.features) + len(self.indicators))
        for j, f in enumerate(self.features):
            col = df[f.name]
            if f.kind in CODED_KINDS:
                cats = self.categories.get(f.name, [])
                # Index.get_indexer: position of each value among the kept categories, -1 if absent
                codes = pd.Index(cats, dtype=object).get_indexer(col.astype("string").astype(object))
                codes = codes.astype(np.int64) + FIRST_CATEGORY_CODE  # known -> 2.., unknown -> 1
                codes[col.isna().to_numpy()] = MISSING_CODE
                out[:, j] = codes
            else:
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                values = np.where(np.isfinite(values), values, self.fill[f.name])
                out[:, j] = values
        base = len(self.features)
        for k, name in enumerate(self.indicators):
            out[:, base + k] = df[name].isna().to_numpy(dtype=np.float32)
        return np.ascontiguousarray(out)

    def transform_arrow(self, batch: pa.RecordBatch | pa.Table) -> np.ndarray:
        """`transform` of an Arrow batch without pandas: the same float32 matrix, bit for bit
        (tests/test_features.py compares the two), at a fraction of the cost (no Python string
        objects: categorical codes come from pyarrow.compute.index_in)."""
        names = set(batch.schema.names)
        missing = [f.name for f in self.features if f.name not in names]
        if missing:
            raise LeadscoreError(f"input lacks feature column(s): {', '.join(missing)}")
        n = batch.num_rows
        out = _column_major(n, len(self.features) + len(self.indicators))
        for j, f in enumerate(self.features):
            col = batch.column(f.name)
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            if f.kind in CODED_KINDS:
                if not pa.types.is_string(col.type):
                    col = pc.cast(col, pa.string())
                idx = pc.index_in(col, value_set=self._category_set(f.name))  # null: unseen or null
                codes = pc.fill_null(pc.add(pc.cast(idx, pa.int64()), FIRST_CATEGORY_CODE), OTHER_CODE)
                codes = pc.if_else(pc.is_valid(col), codes, MISSING_CODE)
                out[:, j] = codes.to_numpy(zero_copy_only=False)
            else:
                if pa.types.is_decimal(col.type):  # decimals as pandas converts them (exactly rounded)
                    values = pd.to_numeric(col.to_pandas(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    values = pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
                out[:, j] = np.where(np.isfinite(values), values, self.fill[f.name])
        base = len(self.features)
        for k, name in enumerate(self.indicators):
            col = batch.column(name)
            nan_aware = pa.types.is_floating(col.type)
            out[:, base + k] = pc.is_null(col, nan_is_null=nan_aware).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(out)

    def _category_set(self, name: str) -> pa.Array:
        cache = self.__dict__.setdefault("_category_sets", {})
        if name not in cache:
            cache[name] = pa.array(self.categories.get(name, []), type=pa.string())
        return cache[name]

    def to_json(self) -> dict[str, Any]:
        return {
            "features": [{"name": f.name, "sql_type": f.sql_type, "kind": f.kind} for f in self.features],
            "categories": self.categories,
            "fill": self.fill,
            "indicators": self.indicators,
            "codes": {"missing": MISSING_CODE, "other_or_unseen": OTHER_CODE, "first_category": FIRST_CATEGORY_CODE},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Encoding:
        return cls(
            features=[Feature(f["name"], f["sql_type"], f["kind"]) for f in data["features"]],
            categories={k: list(v) for k, v in data["categories"].items()},
            fill={k: float(v) for k, v in data["fill"].items()},
            indicators=list(data["indicators"]),
        )
