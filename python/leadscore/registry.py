"""Model registry (`main.model_registry`) and model artifacts.

Layout of one model, `config.models_dir() / <version>/`:

    model.json           features + SQL types, category encodings, fill values, the base models
                         (file, effective training prior), ensemble weights or meta-model,
                         train prevalence, target prevalence, cutoff
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

Loading verifies every checksum first (a mismatch raises LeadscoreError naming the file) and
loads skops files with an explicit list of trusted types.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from leadscore import config, db

# LightGBM/XGBoost use OpenMP; its default busy-waiting threads collapse when the machine is
# shared (2 cores, several jobs: a 0.4 s fit took 24 s). Passive waiting costs nothing when the
# machine is free. Only a default: it must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from leadscore.errors import LeadscoreError
from leadscore.fileio import fsync_path, sha256_file
from leadscore.features import Encoding, Feature

REGISTRY_TABLE = "main.model_registry"
MODEL_FILE = "model.json"
CHECKSUM_FILE = "checksums.json"
FORMAT_VERSION = 1

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
    ensemble             varchar not null,      -- 'voting' | 'stacking'
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

# The only non-default types a RandomForest/ExtraTrees skops file may contain. skops trusts
# scikit-learn estimators and numpy/builtins itself; everything else is refused.
TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]


# ------------------------------------------------------------------------ probability algebra


def _clip(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)


def logit(p: np.ndarray | float) -> np.ndarray:
    p = _clip(p)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def shift_prior(p: np.ndarray, from_prior: float, to_prior: float) -> np.ndarray:
    """Prior-shift correction: odds multiplied by odds(to_prior) / odds(from_prior).

    Used twice: (1) to bring each base model, trained on resampled / class-weighted data whose
    effective positive rate is `from_prior`, back to the training rate; (2) to move the ensemble
    from the training rate pi to a scoring population's rate P (Saerens et al. 2002, eq. 2.4)."""
    if from_prior == to_prior:
        return np.asarray(p, dtype=np.float64)
    return sigmoid(logit(p) + float(logit(to_prior)) - float(logit(from_prior)))


def combine(corrected: dict[str, np.ndarray], ensemble: dict[str, Any]) -> np.ndarray:
    """The ensemble probability (on the training prior) from prior-corrected base probabilities."""
    if ensemble["kind"] == "voting":
        out = np.zeros_like(next(iter(corrected.values())), dtype=np.float64)
        for name, w in ensemble["weights"].items():
            if w:
                out += float(w) * corrected[name]
        out = np.clip(out, 0.0, 1.0)
        cal = ensemble.get("calibration")
        if cal:  # Platt scaling of the blend, fitted on its out-of-fold probabilities
            out = sigmoid(float(cal["slope"]) * logit(out) + float(cal["intercept"]))
        return out
    if ensemble["kind"] == "stacking":
        z = np.full_like(next(iter(corrected.values())), float(ensemble["intercept"]), dtype=np.float64)
        for name, c in zip(ensemble["inputs"], ensemble["coef"], strict=True):
            z += float(c) * logit(corrected[name])
        return sigmoid(z)
    raise LeadscoreError(f"unknown ensemble kind {ensemble['kind']!r} in {MODEL_FILE}")


# ----------------------------------------------------------------------------------- table


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(REGISTRY_DDL)


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
        for key in ("feature_list", "weights", "params", "per_model_metrics"):
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


# --------------------------------------------------------------------------------- loading


def verify_checksums(folder: Path, expected_sha: str | None = None) -> dict[str, str]:
    """Check every file listed in checksums.json; raise LeadscoreError naming the first bad one."""
    listing = folder / CHECKSUM_FILE
    if not listing.is_file():
        raise LeadscoreError(f"model artifact {listing} is missing")
    if expected_sha is not None and sha256_file(listing) != expected_sha:
        raise LeadscoreError(f"model artifact {listing} does not match the registry's checksum (tampered?)")
    try:
        files = json.loads(listing.read_text())["files"]
    except (ValueError, KeyError) as exc:
        raise LeadscoreError(f"model artifact {listing} is unreadable: {exc}") from exc
    for rel, digest in files.items():
        path = folder / rel
        if not path.is_file():
            raise LeadscoreError(f"model artifact {path} is missing")
        if sha256_file(path) != digest:
            raise LeadscoreError(f"model artifact {path} failed its sha256 check (modified after training)")
    if MODEL_FILE not in files:
        raise LeadscoreError(f"model artifact {listing} does not cover {MODEL_FILE}")
    return files


def load_skops(path: Path, expected: tuple[type, ...] = ()) -> Any:
    """skops.io.load with an explicit trusted-type list; refuses anything else by name."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:  # corrupt zip, wrong format
        raise LeadscoreError(f"model artifact {path} is not a readable skops file: {exc}") from exc
    refused = sorted(set(untrusted) - set(TRUSTED_SKOPS_TYPES))
    if refused:
        raise LeadscoreError(f"model artifact {path} contains untrusted type(s) {', '.join(refused)}: refusing to load")
    trusted = [t for t in TRUSTED_SKOPS_TYPES if t in untrusted]
    obj = sio.load(str(path), trusted=trusted)
    if expected and not isinstance(obj, expected):
        raise LeadscoreError(f"model artifact {path} holds a {type(obj).__name__}, expected {expected[0].__name__}")
    return obj


def threads(rows: int | None = None) -> int:
    """Threads for training and prediction: LEADSCORE_THREADS, else min(cpu count, 4); a single
    thread below 20,000 rows, where thread start-up costs more than it saves. Keep it fixed
    between runs that must reproduce each other."""
    env = os.environ.get("LEADSCORE_THREADS")
    if env:
        return max(1, int(env))
    if rows is not None and rows < 20_000:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def load_base_model(kind: str, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function X (float32 matrix) -> positive-class probability for one saved base model."""
    if kind == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        return lambda X: np.asarray(booster.predict(X, num_threads=threads()), dtype=np.float64)
    if kind == "xgboost":
        import xgboost as xgb

        bst = xgb.Booster()
        bst.load_model(str(path))
        bst.set_param({"nthread": threads()})
        return lambda X: np.asarray(bst.inplace_predict(X), dtype=np.float64)
    if kind in ("random_forest", "extra_trees"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        expected = RandomForestClassifier if kind == "random_forest" else ExtraTreesClassifier
        est = load_skops(path, (expected,))
        return lambda X: forest_predict(est, X, threads(len(X)))
    raise LeadscoreError(f"unknown base model kind {kind!r} in {path.parent / MODEL_FILE}")


def forest_predict(est: Any, X: np.ndarray, n_threads: int = 1, chunk: int = 20_000) -> np.ndarray:
    """Positive-class probability of a RandomForest/ExtraTrees, bit-for-bit reproducible.

    scikit-learn's own n_jobs > 1 adds the trees' votes in whatever order the threads finish,
    which changes the last bits; here rows are split into chunks scored in parallel, each chunk
    single-threaded, so every row's sum runs over the trees in the same order."""
    est.set_params(n_jobs=1)
    if n_threads <= 1 or len(X) <= chunk:
        return np.asarray(est.predict_proba(X)[:, 1], dtype=np.float64)
    from concurrent.futures import ThreadPoolExecutor

    parts = [X[i:i + chunk] for i in range(0, len(X), chunk)]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        out = list(pool.map(lambda part: est.predict_proba(part)[:, 1], parts))
    return np.concatenate(out).astype(np.float64)


def predict_base(kind: str, est: Any, X: np.ndarray, n_threads: int) -> np.ndarray:
    """Positive-class probability of a fitted (in-memory) base estimator."""
    if kind in ("random_forest", "extra_trees"):
        return forest_predict(est, X, n_threads)
    return np.asarray(est.predict_proba(X)[:, 1], dtype=np.float64)


@dataclass
class LoadedModel:
    """A registered model ready to score. `predict_proba(df)` takes raw feature columns (as
    `features.iter_score_batches` yields them) and returns P(converted) on the scoring
    population's scale (target prevalence applied when the model has one); compare with
    `cutoff` using >=."""

    version: str
    cutoff: float
    feature_hash: str
    features: list[tuple[str, str]]
    train_positive_rate: float
    target_prevalence: float | None
    artifact_dir: Path
    meta: dict[str, Any]
    encoding: Encoding
    _predictors: dict[str, Callable[[np.ndarray], np.ndarray]]

    def used_models(self) -> list[str]:
        """Base models the ensemble actually reads: a voting weight of 0 means the model is
        kept for the record but not worth evaluating on every scored lead."""
        ens = self.meta["ensemble"]
        if ens["kind"] == "voting":
            return [name for name, w in ens["weights"].items() if w]
        return list(ens["inputs"])

    def base_probabilities(self, df: pd.DataFrame, only_used: bool = False) -> dict[str, np.ndarray]:
        """Each base model's probability, corrected back to the training positive rate."""
        X = self.encoding.transform(df)
        wanted = set(self.used_models()) if only_used else None
        out = {}
        for m in self.meta["models"]:
            if wanted is not None and m["name"] not in wanted:
                continue
            raw = self._predictors[m["name"]](X)
            out[m["name"]] = shift_prior(raw, m["effective_prior"], self.train_positive_rate)
        return out

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        if len(df) == 0:
            return np.zeros(0, dtype=np.float64)
        p = combine(self.base_probabilities(df, only_used=True), self.meta["ensemble"])
        if self.target_prevalence is not None:
            p = shift_prior(p, self.train_positive_rate, self.target_prevalence)
        return p


def load_model_dir(folder: Path, expected_checksum: str | None = None) -> LoadedModel:
    verify_checksums(folder, expected_checksum)
    try:
        meta = json.loads((folder / MODEL_FILE).read_text())
    except ValueError as exc:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} is not valid JSON: {exc}") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} has format {meta.get('format')}, expected {FORMAT_VERSION}")
    encoding = Encoding.from_json(meta["encoding"])
    predictors = {m["name"]: load_base_model(m["kind"], folder / m["file"]) for m in meta["models"]}
    return LoadedModel(
        version=meta["version"],
        cutoff=float(meta["cutoff"]),
        feature_hash=meta["feature_hash"],
        features=[(f.name, f.sql_type) for f in encoding.features],
        train_positive_rate=float(meta["train_positive_rate"]),
        target_prevalence=None if meta.get("target_prevalence") is None else float(meta["target_prevalence"]),
        artifact_dir=folder,
        meta=meta,
        encoding=encoding,
        _predictors=predictors,
    )


def load_model(con: duckdb.DuckDBPyConnection, version: str | None = None) -> LoadedModel:
    """Load the current model (or `version`) after verifying its checksums."""
    version = version or current_version(con)
    if version is None:
        raise LeadscoreError("no model is registered yet: run `leadscore train` first")
    row = None
    if db.table_exists(con, "main", "model_registry"):
        row = db.fetch_one(
            con, f"select artifact_dir, checksums_sha256 from {REGISTRY_TABLE} where model_version = ?", [version]
        )
    if row is None:
        raise LeadscoreError(f"model version {version} is not in {REGISTRY_TABLE}")
    folder = Path(row[0])
    if not folder.is_dir():
        # the data folder may have moved: fall back to models_dir()/version
        folder = config.models_dir() / version
    if not folder.is_dir():
        raise LeadscoreError(f"model folder for {version} not found ({row[0]})")
    model = load_model_dir(folder, row[1])
    if model.version != version:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} is for {model.version}, not {version}")
    return model


def feature_list_of(features: list[Feature]) -> list[list[str]]:
    return [[f.name, f.sql_type] for f in features]
