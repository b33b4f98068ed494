"""model.py: loading a model folder to score. Checksums are verified before anything is read,
model.json's format is checked, and LoadedModel.predict_proba goes from feature columns to a
score (encoding, base models, ensemble, target prevalence). On a small model folder written
here, without training or a registry; loading through the registry is in test_registry.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore import estimators, model, registry
from leadscore.fileio import sha256_file
from leadscore.errors import LeadscoreError
from leadscore.features import Encoding, Feature, feature_hash
from leadscore.operating_point import shift_prior

FEATURES = [Feature("amount", "DOUBLE", "numeric"), Feature("segment", "VARCHAR", "categorical")]
PI = 0.3


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "segment": rng.choice(["retail", "hotel", "office"], size=n).astype(object),
    })


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A model folder as training writes it: one LightGBM base model, model.json, checksums.json."""
    import lightgbm as lgb

    root = tmp_path_factory.mktemp("model") / "v1"
    root.mkdir()
    df = _frame(400, 0)
    y = (df["amount"].fillna(0) + (df["segment"] == "retail") > 0.6).to_numpy()
    enc = Encoding.fit(df, FEATURES)
    est = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=0).fit(enc.transform(df), y)
    estimators.save_base_model("lightgbm", est, root / "lightgbm.txt")
    meta = {
        "format": registry.FORMAT_VERSION, "version": "v1", "feature_hash": feature_hash(FEATURES),
        "encoding": enc.to_json(), "cutoff": 0.4, "train_positive_rate": PI, "target_prevalence": None,
        "models": [{"name": "lightgbm", "kind": "lightgbm", "file": "lightgbm.txt", "effective_prior": PI}],
        "ensemble": {"kind": "voting", "weights": {"lightgbm": 1.0}},
    }
    (root / registry.MODEL_FILE).write_text(json.dumps(meta))
    (root / "report").mkdir()
    (root / "report" / "metrics.json").write_text("{}")
    registry.write_checksums(root)
    return root


@pytest.fixture()
def copy(folder, tmp_path) -> Path:
    """A private copy of the model folder to tamper with."""
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "v1"))


def _rewrite_meta(folder: Path, **changes) -> str:
    meta = json.loads((folder / registry.MODEL_FILE).read_text())
    meta.update(changes)
    (folder / registry.MODEL_FILE).write_text(json.dumps(meta))
    return registry.write_checksums(folder)  # checksums made to match: only the format check is left


def test_a_model_folder_loads_and_scores_like_its_booster(folder):
    import lightgbm as lgb

    m = model.load_model_dir(folder)
    assert (m.version, m.cutoff, m.features) == ("v1", 0.4, [("amount", "DOUBLE"), ("segment", "VARCHAR")])
    assert m.used_models() == ["lightgbm"] and m.target_prevalence is None
    df = _frame(50, 1)
    df.loc[0, "segment"] = "never seen"
    booster = lgb.Booster(model_file=str(folder / "lightgbm.txt"))
    expected = booster.predict(m.encoding.transform(df))
    assert np.allclose(m.predict_proba(df), expected)
    assert np.allclose(m.base_probabilities(df)["lightgbm"], expected)
    assert m.predict_proba(df.iloc[:0]).shape == (0,)


def test_a_target_prevalence_moves_the_scores_to_it(copy):
    plain = model.load_model_dir(copy)
    _rewrite_meta(copy, target_prevalence=0.6)
    shifted = model.load_model_dir(copy)
    df = _frame(30, 2)
    assert shifted.target_prevalence == 0.6
    assert np.allclose(shifted.predict_proba(df), shift_prior(plain.predict_proba(df), PI, 0.6))
    assert shifted.predict_proba(df).mean() > plain.predict_proba(df).mean()


@pytest.mark.parametrize("victim", ["lightgbm.txt", "model.json", "report/metrics.json"])
def test_a_tampered_file_is_refused_by_name_before_it_is_read(copy, victim):
    with (copy / victim).open("ab") as fh:
        fh.write(b" ")
    with pytest.raises(LeadscoreError, match=rf"model artifact .*{victim} failed its sha256 check"):
        model.load_model_dir(copy)


def test_a_missing_file_or_listing_is_refused(copy):
    (copy / "report" / "metrics.json").unlink()
    with pytest.raises(LeadscoreError, match=r"metrics.json is missing"):
        model.load_model_dir(copy)
    (copy / registry.CHECKSUM_FILE).unlink()
    with pytest.raises(LeadscoreError, match=r"checksums.json is missing"):
        model.load_model_dir(copy)


def test_the_listing_must_match_the_registrys_checksum(copy, folder):
    expected = sha256_file(folder / registry.CHECKSUM_FILE)
    assert model.load_model_dir(copy, expected).version == "v1"
    (copy / "lightgbm.txt").write_text("tree\n")
    registry.write_checksums(copy)  # whoever changed the model also rewrote the listing
    with pytest.raises(LeadscoreError, match="does not match the registry's checksum"):
        model.load_model_dir(copy, expected)


def test_an_unreadable_listing_or_one_without_model_json_is_refused(copy):
    listing = copy / registry.CHECKSUM_FILE
    files = json.loads(listing.read_text())["files"]
    listing.write_text(json.dumps({"files": {k: v for k, v in files.items() if k != registry.MODEL_FILE}}))
    with pytest.raises(LeadscoreError, match="does not cover model.json"):
        model.load_model_dir(copy)
    listing.write_text("{not json")
    with pytest.raises(LeadscoreError, match="checksums.json is unreadable"):
        model.load_model_dir(copy)


@pytest.mark.parametrize("fmt", [99, None, "2"])
def test_a_format_this_version_cannot_read_is_refused(copy, fmt):
    _rewrite_meta(copy, format=fmt)
    with pytest.raises(LeadscoreError, match=rf"has format {fmt}, this leadscore reads 1, 2"):
        model.load_model_dir(copy)


def test_model_json_that_is_not_json_is_refused(copy):
    (copy / registry.MODEL_FILE).write_text("{")
    registry.write_checksums(copy)
    with pytest.raises(LeadscoreError, match="model.json is not valid JSON"):
        model.load_model_dir(copy)
