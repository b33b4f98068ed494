"""Model registry (`ops.model_registry`, shown by dbt as the view `main.model_registry`) and
model artifacts. The table's DDL is in leadscore.tables.

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

from leadscore import config, db, tables
from leadscore.errors import LeadscoreError
from leadscore.features import Feature
from leadscore.fileio import fsync_path, sha256_file

REGISTRY_TABLE = tables.REGISTRY_TABLE  # ops.model_registry
MODEL_FILE = "model.json"
CHECKSUM_FILE = "checksums.json"
FORMAT_VERSION = 2
# model.json formats model.py can still load (1: before the baseline and named base models)
READABLE_FORMATS = (1, 2)


# ----------------------------------------------------------------------------------- table


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """ops.model_registry exists (and a registry left in main by an older version is moved)."""
    tables.ensure_registry(con)


def relation(con: duckdb.DuckDBPyConnection) -> str | None:
    """The table that holds the registry: ops.model_registry, or, in a database from before the
    registry moved that no leadscore command has written to since, the old main.model_registry
    (the next write moves it: tables.ensure_registry); None when no model was ever registered."""
    for qualified in (REGISTRY_TABLE, tables.OLD_REGISTRY_TABLE):
        schema, name = qualified.split(".")
        if db.table_exists(con, schema, name):
            return qualified
    return None


def model_row(con: duckdb.DuckDBPyConnection, version: str) -> dict[str, Any] | None:
    """The registry row of `version` as a dict of the registry columns, or None."""
    table = relation(con)
    if table is None:
        return None
    cur = con.execute(f"select * from {table} where model_version = ?", [version])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def require_row(con: duckdb.DuckDBPyConnection, version: str | None = None) -> tuple[str, dict[str, Any]]:
    """(version, registry row) of `version`, or of the current model when None: the one lookup
    every command that acts on a model starts from, so each says the same thing when there is
    none."""
    version = version or current_version(con)
    if version is None:
        raise LeadscoreError("no model is registered yet: run `leadscore train` first")
    row = model_row(con, version)
    if row is None:
        raise LeadscoreError(f"model version {version} is not in {REGISTRY_TABLE}")
    return version, row


def models_dir_of(con: duckdb.DuckDBPyConnection | None) -> Path:
    """The models folder beside the database `con` is attached to (what config.models_dir() is
    for the CLI, whatever LEADSCORE_DB says in a process that opened another database)."""
    if con is not None:
        path = db.scalar(con, "select path from duckdb_databases() where database_name = current_database()")
        if path:
            return Path(path).resolve().parent / "models"
    return config.models_dir()


def artifact_folder(row: dict[str, Any], con: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Where a registry row's model files are: artifact_dir relative to the models folder of the
    database (or an absolute path from before); an installation that moved finds them under
    <models folder>/<version>."""
    root = models_dir_of(con)
    folder = Path(row["artifact_dir"])
    if not folder.is_absolute():
        folder = root / folder
    return folder if folder.is_dir() else root / row["model_version"]


def recorded_settings(con: duckdb.DuckDBPyConnection, version: str) -> dict[str, Any] | None:
    """The dbt vars a registered model's features were built with (model.json's
    feature_settings), read from model.json alone, checksums unverified: this only tells which
    model fits a feature table; scoring verifies every file of the model it loads. None for a
    model from before models kept them, or whose files cannot be read (scoring says why)."""
    row = model_row(con, version)
    if row is None:
        return None
    try:
        meta = json.loads((artifact_folder(row, con) / MODEL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("feature_settings") if isinstance(meta, dict) else None


def settings_mismatch(con: duckdb.DuckDBPyConnection, version: str) -> list[str]:
    """The dbt vars on which the feature table as built differs from what `version` was trained
    on (features.settings_differences); empty when they agree or either side is not known."""
    from leadscore import features

    recorded = recorded_settings(con, version)
    built = features.read_settings(con)
    return features.settings_differences(recorded, built) if recorded is not None and built is not None else []


def new_version(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"v{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def current_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The version with is_current = true, or None when no model is registered."""
    table = relation(con)
    if table is None:
        return None
    return db.scalar(con, f"select model_version from {table} where is_current order by trained_at desc limit 1")


def list_models(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every registered model, newest first, as dicts of the registry columns."""
    table = relation(con)
    if table is None:
        return []
    cur = con.execute(f"select * from {table} order by trained_at desc, model_version desc")
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
    verdict: Any = None,
) -> Path:
    """Write a model's files atomically and register it: as the current model, or as a
    challenger when `verdict` (a promotion.Verdict) says it may not replace the current one.

    `write_files(tmp_dir)` writes model.json, the model files and the report into a temporary
    folder. Then: checksums, fsync, rename to `models_dir()/version`, and one transaction that
    inserts `row` (registry columns; a callable is called once the files are written, so it can
    carry the final timing) and flips is_current. On any failure nothing is left behind.
    """
    root = models_dir_of(con)  # beside the database the row goes into, so the relative path resolves
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
        promote = verdict is None or verdict.promote
        values.update(
            model_version=version,
            is_current=promote,
            artifact_dir=final.name,  # relative to the models folder: a moved installation finds it
            checksums_sha256=checksum,
        )
        for key in ("feature_list", "weights", "params", "per_model_metrics", "selection"):
            if key in values and not isinstance(values[key], str | type(None)):
                values[key] = json.dumps(values[key], sort_keys=True)
        tables.ensure_schemas(con)
        ensure_table(con)
        cols = list(values)
        with db.transaction(con):
            previous = current_version(con)
            if promote:
                con.execute(f"update {REGISTRY_TABLE} set is_current = false where is_current")
            con.execute(
                f"insert into {REGISTRY_TABLE} ({', '.join(db.quote_ident(c) for c in cols)}) "
                f"values ({', '.join('?' for _ in cols)})",
                [values[c] for c in cols],
            )
            reason = verdict.reason if verdict is not None else "registered as current"
            evidence = verdict.evidence if verdict is not None else {}
            _event(con, version, "registered as current" if promote else "registered as challenger",
                   previous, reason, evidence)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if renamed:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final



def _event(con: duckdb.DuckDBPyConnection, version: str, action: str, previous: str | None, reason: str,
           evidence: dict[str, Any] | None = None) -> None:
    con.execute(
        "insert into ops.model_events values (?, ?, ?, ?, ?, ?)",
        [datetime.now(UTC).replace(tzinfo=None), version, action, previous, reason,
         json.dumps(evidence or {}, sort_keys=True, default=str)],
    )


def promote(con: duckdb.DuckDBPyConnection, version: str, reason: str = "promoted by hand") -> str | None:
    """Make `version` the current model; returns the version it replaced. Scoring follows at once
    (it always loads the current model)."""
    if model_row(con, version) is None:
        raise LeadscoreError(f"model version {version} is not in {REGISTRY_TABLE}")
    tables.ensure_schemas(con)
    with db.transaction(con):
        previous = current_version(con)
        if previous == version:
            return previous
        con.execute(f"update {REGISTRY_TABLE} set is_current = (model_version = ?)", [version])
        _event(con, version, "promoted", previous, reason)
    return previous


def rollback(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """Make the model that was current before the latest change current again; returns (from, to)."""
    tables.ensure_schemas(con)
    row = db.fetch_one(
        con,
        "select model_version, previous_current from ops.model_events where action in "
        "('registered as current', 'promoted', 'rolled back') and previous_current is not null "
        "order by event_at desc limit 1",
    )
    current = current_version(con)
    if row is None or current is None or row[0] != current:
        raise LeadscoreError("nothing to roll back to: no earlier current model is recorded "
                             "(`leadscore models promote VERSION` picks one by hand)")
    target = row[1]
    if model_row(con, target) is None:
        raise LeadscoreError(f"the earlier current model {target} is no longer in {REGISTRY_TABLE}")
    with db.transaction(con):
        con.execute(f"update {REGISTRY_TABLE} set is_current = (model_version = ?)", [target])
        _event(con, target, "rolled back", current, f"rollback from {current}")
    return current, target


def events(con: duckdb.DuckDBPyConnection, version: str | None = None) -> list[dict[str, Any]]:
    """The champion / challenger history, newest first (of one model when `version` is given)."""
    if not db.table_exists(con, "ops", "model_events"):
        return []
    sql = "select * from ops.model_events" + (" where model_version = ? or previous_current = ?" if version else "")
    cur = con.execute(sql + " order by event_at desc", [version, version] if version else [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def feature_list_of(features: list[Feature]) -> list[list[str]]:
    return [[f.name, f.sql_type] for f in features]
