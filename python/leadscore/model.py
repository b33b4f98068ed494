"""A registered model, loaded to score: checksums verified, base models read from formats
that cannot run code, encoding and ensemble applied in one place (`LoadedModel.predict_proba`).

The registry (registry.py) owns the table and writing a model; this module owns reading one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from leadscore import ensemble, estimators, registry
from leadscore.errors import LeadscoreError
from leadscore.evidence import Evidence
from leadscore.features import Encoding
from leadscore.fileio import sha256_file
from leadscore.operating_point import shift_prior
from leadscore.registry import CHECKSUM_FILE, MODEL_FILE, READABLE_FORMATS


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




@dataclass
class LoadedModel:
    """A registered model ready to score. `predict_proba(df)` takes raw feature columns (as
    `features.load_split` reads them) and returns P(converted) on the scoring
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
    # checksums.json's files (path -> sha256) as verified at load: reasons.explainer reads the
    # base model files again (for their contribution output) and checks them against these
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def feature_settings(self) -> dict[str, Any] | None:
        """The dbt vars its features were built with (features.read_settings at training); None
        for a model trained before models recorded them."""
        return self.meta.get("feature_settings")

    def used_models(self) -> list[str]:
        return ensemble.used_models(self.meta["ensemble"])

    @cached_property
    def _evidence(self) -> Evidence | None:
        """The ensemble's evidence table, parsed once: scoring predicts batch after batch."""
        return ensemble.spec_evidence(self.meta["ensemble"])

    @property
    def _effective_priors(self) -> dict[str, float]:
        return {m["name"]: float(m["effective_prior"]) for m in self.meta["models"]}

    def base_probabilities(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Every base model's probability on the training rate, for comparing them (bench)."""
        X = self.encoding.transform(df)
        priors = self._effective_priors
        return {
            name: shift_prior(predict(X), priors[name], self.train_positive_rate)
            for name, predict in self._predictors.items()
        }

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Encode, predict, combine, shift: the whole way from feature columns to a score."""
        if len(df) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.predict_matrix(self.encoding.transform(df))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """predict_proba from the encoded matrix (`encoding.transform`): scoring encodes a batch
        once for the scores and the reasons (reasons.Explainer) alike."""
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        p = ensemble.predict(self.meta["ensemble"], self._predictors, self._effective_priors, self.train_positive_rate, X,
                             self._evidence)
        if self.target_prevalence is not None:
            p = shift_prior(p, self.train_positive_rate, self.target_prevalence)
        return p


def load_model_dir(folder: Path, expected_checksum: str | None = None) -> LoadedModel:
    files = verify_checksums(folder, expected_checksum)
    try:
        meta = json.loads((folder / MODEL_FILE).read_text())
    except ValueError as exc:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} is not valid JSON: {exc}") from exc
    if meta.get("format") not in READABLE_FORMATS:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} has format {meta.get('format')}, "
                             f"this leadscore reads {', '.join(map(str, READABLE_FORMATS))}")
    encoding = Encoding.from_json(meta["encoding"])
    predictors = {m["name"]: estimators.on_its_columns(
        m["kind"], estimators.load_base_model(m["kind"], folder / m["file"]), encoding.tree_width)
        for m in meta["models"]}
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
        checksums=dict(files),
    )


def load_model(con: duckdb.DuckDBPyConnection, version: str | None = None) -> LoadedModel:
    """Load the current model (or `version`) after verifying its checksums."""
    version, row = registry.require_row(con, version)
    folder = registry.artifact_folder(row, con)
    if not folder.is_dir():
        raise LeadscoreError(f"model folder for {version} not found ({row['artifact_dir']})")
    model = load_model_dir(folder, row["checksums_sha256"])
    if model.version != version:
        raise LeadscoreError(f"model artifact {folder / MODEL_FILE} is for {model.version}, not {version}")
    return model

