"""Model registry (`main.model_registry`) and model artifacts.

Layout of one model, `config.models_dir() / <version>/`:

    model.json           features + SQL types, category encodings, fill values, the base models
                         (file, effective training prior), ensemble weights or meta-model,
                         train prevalence, target prevalence, cutoff
    lightgbm_baseline.txt  the fixed-parameter LightGBM every candidate must beat
    lightgbm.txt         LightGBM booster (booster.save_model text)
    xgboost.ubj          XGBoost booster (UBJSON)
    random_forest.skops  scikit-learn RandomForestClassifier (skops.io, never pickle/joblib)
    extra_trees.skops    scikit-learn ExtraTreesClassifier (skops.io)
    report/              metrics.json and the PNG plots (leadscore.report)
    checksums.json       sha256 of every file above; its own sha256 is in the registry row

Publishing is all-or-nothing: files are written into `<models_dir>/.tmp-<version>`, fsynced,
the folder is renamed into place, and only then, in one transaction, the registry row is inserted
and `is_current` moves to it. Any failure on the way removes the folder and leaves the registry
and the current model exactly as they were.

Loading (model.py) verifies every checksum first and loads skops files with an explicit list of
trusted types.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from leadscore import config, db

from leadscore.errors import LeadscoreError
from leadscore.fileio import fsync_path, sha256_file
from leadscore.features import Feature

REGISTRY_TABLE = "main.model_registry"
MODEL_FILE = "model.json"
CHECKSUM_FILE = "checksums.json"
FORMAT_VERSION = 2
# model.json formats model.py can still load (1: before the baseline and named base models)
READABLE_FORMATS = (1, 2)

REGISTRY_DDL = f"""
create table if not exists {REGISTRY_TABLE} (
    model_version        varchar primary key,   -- v<UTC yyyymmddThhmmss>Z-<8 hex>
    trained_at           timestamp not null,    -- UTC
    cv_f1                double,                -- out-of-fold F1 at the chosen cutoff
    cv_auc               double,                -- out-of-fold ROC AUC of the ensemble
    cv_average_precision double,
    cutoff               double not null,       -- predicted_converted = probability >= cutoff
    is_current           boolean not null,      -- exactly one true once a model exists
    feature_hash         varchar not null,      -- sha256 of the ordered (name, SQL type) list
    feature_list         json not null,         -- [[name, sql_type], ...] in table order
    train_rows           bigint not null,
    train_positive_rate  double not null,       -- pi: positive rate of the training rows
    target_prevalence    double,                -- P the probabilities are adjusted to (null: none)
    target_prevalence_mode varchar not null,    -- 'none' | 'given' | 'auto'
    ensemble             varchar not null,      -- 'voting' | 'stacking' (an ensemble shipped) or 'single'
    weights              json,                  -- voting weights / meta-model coefficients
    params               json,                  -- best hyper-parameters per base model
    per_model_metrics    json,                  -- out-of-fold f1/auc/ap, trials, imbalance choice
    dbt_invocation_id    varchar,               -- dbt run that built the features, if known
    artifact_dir         varchar not null,
    checksums_sha256     varchar not null,      -- sha256 of checksums.json
    seed                 bigint,
    folds                integer,
    time_budget          double,
    train_seconds        double
)
"""
# Columns added after the first release: added in place to existing registries.
REGISTRY_MIGRATIONS = [
    # what won (baseline, a tuned model or the ensemble), by how much, and the fold noise
    f"alter table {REGISTRY_TABLE} add column if not exists selection json",
    # fingerprint of the training rows (lead ids, labels, feature values)
    f"alter table {REGISTRY_TABLE} add column if not exists data_fingerprint varchar",
]



# ----------------------------------------------------------------------------------- table


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(REGISTRY_DDL)
    for ddl in REGISTRY_MIGRATIONS:
        con.execute(ddl)


def new_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"v{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def current_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The version with is_current = true, or None when no model is registered."""
    if not db.table_exists(con, "main", "model_registry"):
        return None
    return db.scalar(con, f"select model_version from {REGISTRY_TABLE} where is_current order by trained_at desc limit 1")


def list_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every registered model, newest first, as dicts of the registry columns."""
    if not db.table_exists(con, "main", "model_registry"):
        return []
    cur = con.execute(f"select * from {REGISTRY_TABLE} order by trained_at desc, model_version desc")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def dbt_invocation_id(con: duckdb.DuckDBPyConnection | None = None) -> str | None:
    """Which dbt build produced the features: the latest successful `dbt build` recorded in
    ops.dbt_runs of this database (dbt's on-run-end hook writes it). Falls back to the
    checkout's target/run_results.json when the table is absent (a database built before the
    hook existed)."""
    if con is not None and db.table_exists(con, "ops", "dbt_runs"):
        row = db.fetch_one(
            con,
            "select invocation_id from ops.dbt_runs where command = 'build' and failed = 0 "
            "order by finished_at desc limit 1",
        )
        if row is not None:
            return str(row[0])
    path = config.project_root() / "target" / "run_results.json"
    try:
        return str(json.loads(path.read_text())["metadata"]["invocation_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------ publishing


def write_checksums(folder: Path) -> str:
    """Write checksums.json for every file under `folder`; returns the sha256 of checksums.json."""
    sums = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CHECKSUM_FILE
    }
    target = folder / CHECKSUM_FILE
    target.write_text(json.dumps({"algorithm": "sha256", "files": sums}, indent=2, sort_keys=True))
    return sha256_file(target)


def publish_model(
    con: duckdb.DuckDBPyConnection,
    version: str,
    write_files: Callable[[Path], None],
    row: dict[str, Any] | Callable[[], dict[str, Any]],
) -> Path:
    """Write a model's files atomically and register it as the current model.

    `write_files(tmp_dir)` writes model.json, the model files and the report into a temporary
    folder. Then: checksums, fsync, rename to `models_dir()/version`, and one transaction that
    inserts `row` (registry columns; a callable is called once the files are written, so it can
    carry the final timing) and flips is_current. On any failure nothing is left behind.
    """
    root = config.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{version}"
    final = root / version
    if final.exists():
        raise LeadscoreError(f"model folder {final} already exists")
    renamed = False
    try:
        tmp.mkdir()
        write_files(tmp)
        checksum = write_checksums(tmp)
        for p in sorted(tmp.rglob("*")):
            fsync_path(p)  # files and sub-folders
        fsync_path(tmp)
        os.rename(tmp, final)
        renamed = True
        fsync_path(root)
        values = dict(row() if callable(row) else row)
        values.update(
            model_version=version,
            is_current=True,
            artifact_dir=str(final),
            checksums_sha256=checksum,
        )
        for key in ("feature_list", "weights", "params", "per_model_metrics", "selection"):
            if key in values and not isinstance(values[key], str | type(None)):
                values[key] = json.dumps(values[key], sort_keys=True)
        ensure_table(con)
        cols = list(values)
        with db.transaction(con):
            con.execute(f"update {REGISTRY_TABLE} set is_current = false where is_current")
            con.execute(
                f"insert into {REGISTRY_TABLE} ({', '.join(db.quote_ident(c) for c in cols)}) "
                f"values ({', '.join('?' for _ in cols)})",
                [values[c] for c in cols],
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if renamed:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final



def feature_list_of(features: list[Feature]) -> list[list[str]]:
    return [[f.name, f.sql_type] for f in features]
