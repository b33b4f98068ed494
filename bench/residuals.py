"""Residual check: which columns, or pairs of columns, does the model leave structure in?

Why: a feature the model lacks shows as out-of-fold residuals that do not average out within
the levels of some column or pair. The sales segment (`business_unit_x_enterprise`, var
`feature_crosses`) was found this way: on the foreign data the blend's residuals per business
unit x company size stood at z = 97 while every single column was calibrated, a crossover the
additive linear member cannot hold and the trees under-fit.

What it does, on the training rows of a built database only (no score rows, no truth):
cross-validates the two fixed members every training run fits first, the fixed-parameter
LightGBM baseline and the linear member at its default parameters (the pipeline's own code:
features, validation, tuning.cross_validate), blends them with the soft vote, and then, for every
grouping, sums the out-of-fold residuals y - p per level:

    excess = sum over levels of (sum of y - p)^2 / (sum of p (1 - p)),  minus the number of levels

A calibrated model leaves each level's sum a zero-mean noise with about that variance, so the
excess is near 0 give or take sqrt(2 x levels); z = excess / sqrt(2 x levels). Levels with
less than 0.5 expected variance are left out (too small to say anything). Groupings: each
feature column (numeric ones as deciles, missing as its own level), and each pair among the
categorical columns with at most --max-levels levels and the numeric deciles. A z well above
the rest (several hundred groupings are tested, so a few reach 2 or 3 by chance) names a
column pair worth a cross.

With --raw the columns as ingested (the staging model `stg_leads`, before any cleaning) are
groupings too, named `raw.<column>`: each text value with at least 30 training rows as a level
(rarer ones pooled), and each text's length, the numbers, the dates and the flags as
`grouping_columns` bins them; a raw grouping that splits the rows as its feature column does is
left out. Why: a cleaning step that merges spellings, strips a field or fills a number with
different conversion rates on either side leaves no trace in the feature columns, only in the
raw ones.

    .venv/bin/python bench/residuals.py [--db PATH] [--raw] [--top 25] [--max-levels 40] [--seed 1]

The database defaults to LEADSCORE_DB or data/leadscore.duckdb, opened read-only.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

DECILES = 10
MIN_LEVEL_VARIANCE = 0.5
FOLDS = 5  # as `leadscore train`'s default
RAW_MIN_ROWS = 30  # a raw text value with fewer training rows is pooled: too few to test alone
# staging columns that are keys, labels or bookkeeping, not something a lead says
RAW_SKIP = ("lead_id", "id", "load_id", "source_row", "split", "is_converted", "extra_columns")


def grouped_excess(residual: np.ndarray, variance: np.ndarray, keys: pd.DataFrame) -> tuple[float, int, float]:
    """(excess, levels, z) of the residuals summed per level of `keys` (one or more columns)."""
    frame = keys.copy()
    frame["_r"] = residual
    frame["_v"] = variance
    sums = frame.groupby(list(keys.columns), dropna=False, observed=True)[["_r", "_v"]].sum()
    sums = sums[sums["_v"] > MIN_LEVEL_VARIANCE]
    levels = len(sums)
    if levels == 0:
        return 0.0, 0, 0.0
    excess = float((sums["_r"] ** 2 / sums["_v"]).sum()) - levels
    return excess, levels, excess / math.sqrt(2 * levels)


def grouping_columns(df: pd.DataFrame, categorical: list[str], numeric: list[str]) -> pd.DataFrame:
    """The columns residuals are grouped by: categoricals as they are (missing as its own level),
    numerics as deciles of their ranks (missing as -1)."""
    out = pd.DataFrame(index=df.index)
    for name in categorical:
        out[name] = df[name].astype("string").fillna("<missing>")
    for name in numeric:
        values = pd.to_numeric(df[name], errors="coerce")
        if values.nunique(dropna=True) <= DECILES:
            out[name] = values.fillna(-1.0)
        else:
            ranks = values.rank(method="first")
            out[name] = pd.qcut(ranks, DECILES, labels=False).astype("float").fillna(-1.0)
    return out


def raw_grouping_columns(raw: pd.DataFrame, min_rows: int = RAW_MIN_ROWS) -> pd.DataFrame:
    """Groupings from the ingested columns, named `raw.<column>`: text values with fewer than
    `min_rows` rows pooled as `<rare>` (missing its own level); `raw.<column>.length`, the text's
    length; numbers, dates and lengths as `grouping_columns` makes them (deciles, missing apart)."""
    out = pd.DataFrame(index=raw.index)
    numbers = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        if name in RAW_SKIP:
            continue
        column = raw[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            numbers[name] = column.astype("int64").where(column.notna())
        elif pd.api.types.is_bool_dtype(column):  # nullable flags: missing stays its own level
            numbers[name] = column.astype("Float64").astype("float64")
        elif pd.api.types.is_numeric_dtype(column):
            numbers[name] = column
        else:
            text = column.astype("string")
            counts = text.value_counts()
            common = text.isin(counts.index[counts >= min_rows]) | text.isna()
            out[f"raw.{name}"] = text.where(common, "<rare>").fillna("<missing>")
            numbers[f"{name}.length"] = text.str.len().astype("float")
    binned = grouping_columns(numbers, [], [n for n in numbers.columns if numbers[n].notna().any()])
    return pd.concat([out, binned.add_prefix("raw.")], axis=1)


def new_partitions(groups: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """`raw` without the groupings that split the rows exactly as the feature column of the same
    name does (a number the SQL left alone): they would only repeat its rows in the table."""
    def same(a: pd.Series, b: pd.Series) -> bool:
        return bool((pd.factorize(a)[0] == pd.factorize(b)[0]).all())
    repeated = [name for name in raw.columns
                if name.removeprefix("raw.") in groups.columns and same(raw[name], groups[name.removeprefix("raw.")])]
    return raw.drop(columns=repeated)


def read_raw(db_path: str, lead_ids: pd.Series) -> pd.DataFrame:
    """The staging rows of `lead_ids`, in their order."""
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    try:
        raw = con.sql("select * from stg_leads where split = 'train'").df()
    finally:
        con.close()
    rows = pd.DataFrame({"lead_id": lead_ids.to_numpy()}).merge(raw, on="lead_id", how="left", validate="1:1")
    if rows["split"].isna().any():
        raise SystemExit(f"{db_path}: {int(rows['split'].isna().sum())} training rows have no row in stg_leads; "
                         "run `leadscore build` again")
    return rows


def residual_table(y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, max_levels: int) -> pd.DataFrame:
    """One row per grouping (a column with two levels or more, or a pair of such columns with at
    most `max_levels` levels each), sorted by z, largest first."""
    residual = y - p
    variance = p * (1 - p)
    varying = [c for c in groups.columns if groups[c].nunique() > 1]  # one level: nothing to group
    small = [c for c in varying if groups[c].nunique() <= max_levels]
    rows = []
    for name in varying:
        rows.append((name, *grouped_excess(residual, variance, groups[[name]])))
    for a, b in itertools.combinations(small, 2):
        rows.append((f"{a} x {b}", *grouped_excess(residual, variance, groups[[a, b]])))
    table = pd.DataFrame(rows, columns=["grouping", "excess", "levels", "z"])
    return table.sort_values("z", ascending=False, ignore_index=True)


def out_of_fold_blend(db_path: str, seed: int) -> tuple[pd.DataFrame, list, np.ndarray, np.ndarray]:
    """(training rows, features, labels, out-of-fold blend of the fixed baseline and the linear
    member), as the training job would fit them first."""
    import duckdb

    from leadscore import features as feat
    from leadscore.ensemble import build_ensemble
    from leadscore.estimators import BASELINE, BASELINE_PARAMS, DEFAULT_PARAMS
    from leadscore.evidence import for_training as customer_evidence
    from leadscore.train import training_data
    from leadscore.tuning import cross_validate

    con = duckdb.connect(db_path, read_only=True)
    try:
        flist = feat.read_features(con)
        train = feat.load_split(con, "train", flist)
        history = feat.load_validation_history(con)
    finally:
        con.close()
    data, val, encoding = training_data(train, flist, FOLDS, seed, history)
    y = data.y
    oof = {}
    for name, params in ((BASELINE, BASELINE_PARAMS), ("logistic", DEFAULT_PARAMS["logistic"])):
        oof[name], losses, _, _ = cross_validate(name, params, data)
        print(f"{name}: out-of-fold log-loss {np.mean(losses):.5f}", file=sys.stderr)
    rows = val.validated  # forward folds (dated leads) leave the blocks before the last K unvalidated
    # the customer's evidence, as training calibrates the blend
    evidence, oof_evidence = customer_evidence(encoding, data.X, val.folds, rows)
    _, blend = build_ensemble("voting", {k: v[rows] for k, v in oof.items()}, y[rows], val.view_folds(),
                              evidence, oof_evidence)
    # group the validated rows by the values they were scored on: under forward folds, their
    # history as of their block's start
    view = feat.validation_view(train, history) if data.val_patch_idx else None
    scored_on = train if view is None else view.rows
    return scored_on.iloc[rows].reset_index(drop=True), flist, y[rows], blend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=os.environ.get("LEADSCORE_DB", str(REPO / "data" / "leadscore.duckdb")))
    parser.add_argument("--raw", action="store_true",
                        help="also group by the columns as ingested (stg_leads), before any cleaning")
    parser.add_argument("--top", type=int, default=25, help="groupings to print (default 25)")
    parser.add_argument("--max-levels", type=int, default=40,
                        help="columns with at most this many levels are paired (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="fold seed (default 1, as the benchmark)")
    args = parser.parse_args(argv)
    if not Path(args.db).is_file():
        parser.error(f"no database at {args.db}: run `leadscore ingest` and `leadscore build` first")

    from leadscore import features as feat

    train, flist, y, p = out_of_fold_blend(args.db, args.seed)
    label_derived = feat.LABEL_DERIVED_SUFFIXES
    categorical = [f.name for f in flist if f.kind == "categorical" and not f.name.endswith(label_derived)]
    numeric = [f.name for f in flist if f.kind == "numeric" and not f.name.endswith(label_derived)
               and train[f.name].notna().any()]
    groups = grouping_columns(train, categorical, numeric)
    if args.raw:
        raw = raw_grouping_columns(read_raw(args.db, train["lead_id"]))
        groups = pd.concat([groups, new_partitions(groups, raw)], axis=1)
    table = residual_table(y, p, groups, args.max_levels)
    print(f"{len(table)} groupings of {len(y)} training rows, out of fold; z ~ 0 +- 1 when the model "
          f"leaves nothing there")
    print(table.head(args.top).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
