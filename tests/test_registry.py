"""Model registry and artifacts: one current model, all-or-nothing publishing, checksums,
skops trusted types; the registry table in ops (main.model_registry is dbt's view of it), and the
move of an older database's main.model_registry table there, by Python and by a plain dbt run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT
from helpers import copy_data_dir, feature_database, make_feature_table
from leadscore import config, estimators, promotion, registry, tables, train
from leadscore import features as feat
from leadscore import model as model_mod
from leadscore.errors import LeadscoreError

FAST = {"time_budget": 60, "trials": 1, "folds": 2, "progress": False, "models": ("lightgbm", "random_forest")}


def _registry_rows(db_file: Path) -> list[tuple]:
    con = duckdb.connect(str(db_file))
    try:
        return con.execute("select model_version, is_current from ops.model_registry order by model_version").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, train.TrainResult]:
    """A synthetic feature table and a model trained on it, once per module, in a folder of its
    own (the database, models/ beside it)."""
    with feature_database(tmp_path_factory, "registry_trained", n_train=600, n_score=120, seed=11) as db:
        return db.parent, train.train_model(db, seed=0, **FAST)


@pytest.fixture()
def trained(db_file: Path, trained_template: tuple[Path, train.TrainResult]) -> train.TrainResult:
    """The module's trained folder copied into this test's own (db_file's): the test changes
    only its copy, and the result's paths point into it."""
    folder, result = trained_template
    copy_data_dir(folder, db_file.parent)
    return dataclasses.replace(result, artifact_dir=db_file.parent / result.artifact_dir.relative_to(folder),
                               report_dir=db_file.parent / result.report_dir.relative_to(folder))


def test_exactly_one_current_model(db_file: Path, trained: train.TrainResult) -> None:
    second = train.train_model(db_file, seed=1, promote="always", **FAST)  # on the same rows it may be worse
    rows = _registry_rows(db_file)
    assert len(rows) == 2
    assert [v for v, cur in rows if cur] == [second.model_version]
    con = duckdb.connect(str(db_file))
    try:
        assert registry.current_version(con) == second.model_version
        models = registry.list_models(con)
        assert [m["model_version"] for m in models] == [second.model_version, trained.model_version]
        m = models[0]
        assert m["cv_f1"] == pytest.approx(second.cv_f1) and m["cutoff"] == second.cutoff
        assert m["train_rows"] == 600 and m["seed"] == 1 and m["ensemble"] in ("voting", "single")
        assert [tuple(x) for x in json.loads(m["feature_list"])] == model_mod.load_model(con).features
        assert set(json.loads(m["params"])) == {"lightgbm_baseline", "lightgbm", "random_forest"}
        assert json.loads(m["selection"])["chosen"] in ("lightgbm_baseline", "lightgbm", "random_forest", "ensemble")
        assert m["train_seconds"] > 0 and m["artifact_dir"] == second.model_version  # relative to models/
        assert registry.artifact_folder(m, con) == second.artifact_dir
        # an older version stays loadable by name
        old = model_mod.load_model(con, trained.model_version)
        assert old.version == trained.model_version and old.cutoff == trained.cutoff
    finally:
        con.close()


def test_failure_while_writing_artifacts_changes_nothing(db_file: Path, trained: train.TrainResult,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = _registry_rows(db_file)
    folders_before = sorted(p.name for p in config.models_dir().iterdir())
    real_save = train.save_base_model

    def save_then_fail(kind, estimator, path):
        real_save(kind, estimator, path)
        if path.name == "lightgbm.txt":  # the second file: half the model is on disk
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(train, "save_base_model", save_then_fail)
    with pytest.raises(OSError, match="simulated"):
        train.train_model(db_file, seed=2, **FAST)
    assert _registry_rows(db_file) == before
    assert sorted(p.name for p in config.models_dir().iterdir()) == folders_before  # no tmp or half folder
    con = duckdb.connect(str(db_file))
    try:
        assert model_mod.load_model(con).version == trained.model_version
    finally:
        con.close()


def test_failure_in_the_registry_transaction_removes_the_folder(db_file: Path, trained: train.TrainResult) -> None:
    before = _registry_rows(db_file)
    con = duckdb.connect(str(db_file))
    try:
        version = registry.new_version()

        def write(folder: Path) -> None:
            (folder / "model.json").write_text("{}")

        with pytest.raises(duckdb.Error):  # a column the table does not have: the insert fails
            registry.publish_model(con, version, write, {"no_such_column": 1, "trained_at": None})
        assert not (config.models_dir() / version).exists()
        assert registry.current_version(con) == trained.model_version
    finally:
        con.close()
    assert _registry_rows(db_file) == before


@pytest.mark.parametrize("victim", ["lightgbm.txt", "random_forest.skops", "model.json", "report/metrics.json"])
def test_tampered_artifact_fails_to_load_naming_the_file(db_file: Path, trained: train.TrainResult, victim: str) -> None:
    path = trained.artifact_dir / victim
    with path.open("ab") as fh:
        fh.write(b" ")
    con = duckdb.connect(str(db_file))
    try:
        with pytest.raises(LeadscoreError, match=victim.split("/")[-1]) as err:
            model_mod.load_model(con)
        assert "sha256" in str(err.value)
    finally:
        con.close()


def test_rewritten_checksums_are_caught_by_the_registry(db_file: Path, trained: train.TrainResult) -> None:
    folder = trained.artifact_dir
    (folder / "lightgbm.txt").write_text("tree\n")
    registry.write_checksums(folder)  # an attacker who also rewrites checksums.json
    con = duckdb.connect(str(db_file))
    try:
        with pytest.raises(LeadscoreError, match="checksums.json"):
            model_mod.load_model(con)
    finally:
        con.close()


class Payload:
    """A type no one has declared trusted."""

    def __init__(self) -> None:
        self.command = "rm -rf /"


def test_skops_refuses_untrusted_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    evil = tmp_path / "random_forest.skops"
    sio.dump({"model": Payload()}, str(evil))
    with pytest.raises(LeadscoreError, match="untrusted") as err:
        estimators.load_skops(evil)
    assert "Payload" in str(err.value) and "random_forest.skops" in str(err.value)
    # a trusted file of the wrong estimator is refused too
    forest = tmp_path / "forest.skops"
    X = np.random.default_rng(0).random((50, 3))
    sio.dump(RandomForestClassifier(n_estimators=2, random_state=0).fit(X, X[:, 0] > 0.5), str(forest))
    assert isinstance(estimators.load_skops(forest, (RandomForestClassifier,)), RandomForestClassifier)
    from sklearn.ensemble import ExtraTreesClassifier

    with pytest.raises(LeadscoreError, match="expected ExtraTreesClassifier"):
        estimators.load_skops(forest, (ExtraTreesClassifier,))


def test_loaded_model_scores_like_training_and_unseen_categories(db_file: Path, trained: train.TrainResult) -> None:
    con = duckdb.connect(str(db_file))
    try:
        model = model_mod.load_model(con)
        score = feat.load_split(con, "score")
        assert model.feature_hash == feat.feature_hash(feat.read_features(con))
    finally:
        con.close()
    assert model.version == trained.model_version and model.cutoff == trained.cutoff
    assert [n for n, _ in model.features] == ["x1", "x2", "x3", "n_items", "flag", "cat_a", "cat_b"]
    p = model.predict_proba(score)
    assert p.shape == (len(score),) and np.all((p >= 0) & (p <= 1))
    odd = score.head(3).copy()
    odd["cat_a"] = ["brand new", None, "retail"]
    odd["x1"] = [np.nan, 1e9, -1e9]
    assert np.isfinite(model.predict_proba(odd)).all()
    with pytest.raises(LeadscoreError, match="cat_b"):
        model.predict_proba(score.drop(columns=["cat_b"]))


def test_no_model_yet(db_file: Path) -> None:
    make_feature_table(db_file, n_train=50, n_score=5)
    con = duckdb.connect(str(db_file))
    try:
        assert registry.current_version(con) is None
        assert registry.list_models(con) == []
        with pytest.raises(LeadscoreError, match="no model is registered yet"):
            model_mod.load_model(con)
        # every command that acts on a model says the same: `models show` said "model version None"
        with pytest.raises(LeadscoreError, match="no model is registered yet"):
            promotion.show_lines(con, None)
        with pytest.raises(LeadscoreError, match="model version v0-none is not in ops.model_registry"):
            registry.require_row(con, "v0-none")
    finally:
        con.close()


# -- the registry lives in ops; main.model_registry is dbt's view of it ------------------------

def _old_registry(db_file: Path) -> list[tuple]:
    """A database from before the move: the registry is the table main.model_registry (the same
    DDL as today, in main), with two models; no ops.model_registry."""
    old_ddl = tables.REGISTRY_DDL[1].replace(tables.REGISTRY_TABLE, tables.OLD_REGISTRY_TABLE)
    assert old_ddl != tables.REGISTRY_DDL[1]
    con = duckdb.connect(str(db_file))
    try:
        con.execute(old_ddl)
        for i, current in ((1, False), (2, True)):
            con.execute(
                "insert into main.model_registry (model_version, trained_at, cv_f1, cutoff, is_current, "
                "feature_hash, feature_list, train_rows, train_positive_rate, target_prevalence_mode, ensemble, "
                f"artifact_dir, checksums_sha256) values ('v{i}', timestamp '2024-01-0{i}', 0.{i}, 0.3, {current}, "
                f"'h{i}', '[]', 100, 0.1, 'none', 'single', '/models/v{i}', 'c{i}')"
            )
        return con.execute("select * from main.model_registry order by model_version").fetchall()
    finally:
        con.close()


def _where_registry_is(db_file: Path) -> dict[str, str]:
    con = duckdb.connect(str(db_file))
    try:
        return dict(con.execute(
            "select table_schema, table_type from information_schema.tables where table_name = 'model_registry'"
        ).fetchall())
    finally:
        con.close()


def _rows(db_file: Path, relation: str) -> list[tuple]:
    con = duckdb.connect(str(db_file))
    try:
        return con.execute(f"select * from {relation} order by model_version").fetchall()
    finally:
        con.close()


def test_an_old_registry_is_read_where_it_is_then_moved_to_ops_keeping_its_rows(db_file: Path) -> None:
    before = _old_registry(db_file)
    con = duckdb.connect(str(db_file))
    try:
        # not moved yet (no leadscore command wrote since the upgrade): still readable
        assert registry.current_version(con) == "v2"
        assert registry.model_row(con, "v1")["artifact_dir"] == "/models/v1"
        tables.ensure_schemas(con)
        tables.ensure_schemas(con)  # idempotent
        assert registry.current_version(con) == "v2"
        assert [m["model_version"] for m in registry.list_models(con)] == ["v2", "v1"]
    finally:
        con.close()
    assert _where_registry_is(db_file) == {"ops": "BASE TABLE", "main": "VIEW"}
    # the old columns keep their values; the later ones (here none) are added empty
    assert [r[:len(before[0])] for r in _rows(db_file, "ops.model_registry")] == before
    assert _rows(db_file, "main.model_registry") == _rows(db_file, "ops.model_registry")


def test_a_plain_dbt_run_on_an_old_database_keeps_the_registry_rows(db_file: Path, tmp_path: Path) -> None:
    """dbt replaces main.model_registry by its view: its on-run-start hook moves the rows first,
    even when no leadscore command created ops.model_registry since the upgrade."""
    before = _old_registry(db_file)
    env = {**os.environ, "LEADSCORE_DB": str(db_file), "DBT_PROFILES_DIR": str(REPO_ROOT)}
    dbt = Path(sys.executable).parent / "dbt"
    cmd = [str(dbt), "run", "--select", "model_registry", "--no-use-colors",
           "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    run = subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    assert _where_registry_is(db_file) == {"ops": "BASE TABLE", "main": "VIEW"}
    assert _rows(db_file, "ops.model_registry") == before
    assert _rows(db_file, "main.model_registry") == before
    con = duckdb.connect(str(db_file))
    try:
        # the table keeps its constraints; ensure_registry then adds any later column in place
        with pytest.raises(duckdb.ConstraintException):
            con.execute("insert into ops.model_registry select * from ops.model_registry limit 1")
        tables.ensure_registry(con)
        assert registry.current_version(con) == "v2"
    finally:
        con.close()
    again = subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert [r[:len(before[0])] for r in _rows(db_file, "main.model_registry")] == before


def test_registry_yaml_describes_every_column_of_the_table() -> None:
    """ops.model_registry (source) and main.model_registry (model) list exactly the table's
    columns, in order, each described by a doc block of models_sql/marts/model_registry.md."""
    con = duckdb.connect()
    try:
        tables.ensure_registry(con)
        columns = [r[0] for r in con.execute(f"describe {tables.REGISTRY_TABLE}").fetchall()]
    finally:
        con.close()
    marts = REPO_ROOT / "models_sql" / "marts"
    docs = (marts / "model_registry.md").read_text()
    source = next(t for s in yaml.safe_load((marts / "_sources.yml").read_text())["sources"]
                  if s["name"] == "ops" for t in s["tables"] if t["name"] == "model_registry")
    model = next(m for m in yaml.safe_load((marts / "_models.yml").read_text())["models"]
                 if m["name"] == "model_registry")
    for declared in (source["columns"], model["columns"]):
        assert [c["name"] for c in declared] == columns
        for c in declared:
            assert c["description"] == f"{{{{ doc('model_registry__{c['name']}') }}}}"
            assert f"{{% docs model_registry__{c['name']} %}}" in docs
