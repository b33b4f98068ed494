"""The dbt vars a feature table was built with travel with the model trained on it
(models_sql/marts/feature_settings.sql, features.read_settings / check_settings): scoring refuses
features built another way, which keep every column's name and type, and says why; the nightly
job trains a model on them instead."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from leadscore import features as feat
from leadscore.errors import LeadscoreError
from conftest import REPO_ROOT
from helpers import leadscore_cli, rows_of

# vars that change what is checked or kept, not what fct_lead_features holds
NOT_FEATURE_VARS_PREFIX = "drift_"
# (validation_time_blocks: how training validates forward in time, fct_lead_validation_history)
NOT_FEATURE_VARS = {"score_history_test_days", "validation_time_blocks"}


def _project_vars() -> dict:
    return yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text())["vars"]


def _built_settings(db: Path) -> dict:
    return json.loads(rows_of(db, "select feature_vars from main.feature_settings")[0][0])


def _current_model_settings(data: Path) -> dict | None:
    artifact = rows_of(data / "leadscore.duckdb",
                       "select artifact_dir from ops.model_registry where is_current")[0][0]
    return json.loads((data / "models" / artifact / "model.json").read_text()).get("feature_settings")


def test_every_var_is_a_feature_setting_or_a_check(pipeline_template: Path) -> None:
    """A var added to dbt_project.yml that changes the features must be in the model's list, or
    scoring would not notice it changed; the drift thresholds are the only ones left out."""
    expected = {name: value for name, value in _project_vars().items()
                if not name.startswith(NOT_FEATURE_VARS_PREFIX) and name not in NOT_FEATURE_VARS}
    assert _built_settings(pipeline_template / "data" / "leadscore.duckdb") == expected


def test_training_keeps_the_settings_of_its_features(pipeline_template: Path) -> None:
    data = pipeline_template / "data"
    recorded = _current_model_settings(data)
    assert recorded is not None
    assert recorded == _built_settings(data / "leadscore.duckdb")


def test_check_settings_names_each_var_that_differs() -> None:
    model = {"use_feature_crosses": True, "rare_min_count": 10, "feature_crosses": [["a", "b"]]}
    feat.check_settings("v1", model, dict(model))  # the same: nothing to say
    feat.check_settings("v1", None, {"anything": 1})  # a model from before settings were kept
    built = {**model, "use_feature_crosses": False, "rare_min_count": 5}
    with pytest.raises(LeadscoreError) as exc:
        feat.check_settings("v1", model, built)
    message = str(exc.value)
    assert "model v1" in message
    assert "rare_min_count: model 10, features 5" in message
    assert "use_feature_crosses: model true, features false" in message
    assert "; feature_crosses:" not in message and "(feature_crosses:" not in message
    with pytest.raises(LeadscoreError, match="feature_settings does not exist"):
        feat.check_settings("v1", model, None)


def test_read_settings_of_a_database_built_before_them(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        assert feat.read_settings(con) is None
        con.execute("create table main.feature_settings as select '[1, 2]' as feature_vars")
        with pytest.raises(LeadscoreError, match="not a JSON object"):
            feat.read_settings(con)
    finally:
        con.close()


def test_score_refuses_features_built_with_other_vars(pipeline: Path) -> None:
    """The table says the features were built with the crosses off, the model was trained with
    them on: every column keeps its name and type, and scoring refuses, writing nothing."""
    data = pipeline / "data"
    db = data / "leadscore.duckdb"
    settings = _built_settings(db)
    assert settings["use_feature_crosses"] is True
    con = duckdb.connect(str(db))
    try:
        con.execute("update main.feature_settings set feature_vars = ?",
                    [json.dumps({**settings, "use_feature_crosses": False})])
    finally:
        con.close()
    history = rows_of(db, "select count(*) from ops.score_history")
    result = leadscore_cli(data, "score", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "use_feature_crosses: model true, features false" in result.stderr
    assert "`leadscore train`" in result.stderr
    assert rows_of(db, "select count(*) from ops.score_history") == history


def test_score_says_which_ingested_leads_are_not_built_yet(pipeline: Path) -> None:
    """New leads ingested but not built are invisible to scoring: it says so, not 'nothing to score'."""
    data = pipeline / "data"
    gen = leadscore_cli(data, "generate", "--out", str(pipeline / "more"), "--train-rows", "10",
                        "--score-rows", "30", "--seed", "41")
    assert gen.returncode == 0, gen.stderr
    src = (pipeline / "more" / "submission.csv").read_text().splitlines()
    moved = [src[0]] + [f"{int(line.split(',', 1)[0]) + 20_000_000},{line.split(',', 1)[1]}" for line in src[1:]]
    (pipeline / "more" / "later.csv").write_text("\n".join(moved) + "\n")
    assert leadscore_cli(data, "ingest", "--score", str(pipeline / "more" / "later.csv")).returncode == 0
    result = leadscore_cli(data, "score")
    assert result.returncode == 0, result.stderr
    assert "30 ingested lead(s) are not in fct_lead_features yet" in result.stdout
    assert "nothing was scored" in result.stdout
    assert "every unlabeled lead already has a score" not in result.stdout
    # and a submission file written now says it lacks them
    export = leadscore_cli(data, "export-submission", "--out", str(pipeline / "sub.csv"))
    assert export.returncode == 0, export.stderr
    assert "warning: 30 unlabeled lead(s) with an id are not in it" in export.stderr
    assert len((pipeline / "sub.csv").read_text().splitlines()) == 1 + 400  # the header and the built leads


def test_a_night_with_other_vars_trains_a_model_on_its_features(pipeline: Path) -> None:
    """`nightly --vars` that change the features: the current model could not score them, so the
    night trains one on them, makes it current, and scores with it."""
    data = pipeline / "data"
    db = data / "leadscore.duckdb"
    before = rows_of(db, "select model_version from ops.model_registry where is_current")[0][0]
    assert _current_model_settings(data)["target_rate_smoothing"] == 20
    result = leadscore_cli(data, "nightly", "--input", str(pipeline / "incoming"),
                           "--vars", "{target_rate_smoothing: 30}", "--time-budget", "15")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert f"model {before} was trained on features built with other dbt vars" in log
    assert "target_rate_smoothing: model 20, features 30" in log
    after = rows_of(db, "select model_version from ops.model_registry where is_current")[0][0]
    assert after != before
    assert _current_model_settings(data)["target_rate_smoothing"] == 30
    assert rows_of(db, f"select count(*) from ops.score_history where model_version = '{after}'")[0][0] > 0
    reason = rows_of(db, f"select reason from ops.model_events where model_version = '{after}' "
                         "and action = 'registered as current'")
    assert reason and "nightly: the features were built with other dbt vars" in reason[-1][0]

    # switching the current model by hand to one the features do not fit: said at once
    promoted = leadscore_cli(data, "models", "promote", before)
    assert promoted.returncode == 0, promoted.stderr
    assert "target_rate_smoothing: model 20, features 30" in promoted.stderr
    assert leadscore_cli(data, "models", "promote", after).returncode == 0

    # the next night goes back to the defaults: the model trained on them is current again, and
    # nothing is trained
    models = rows_of(db, "select count(*) from ops.model_registry")
    back = leadscore_cli(data, "nightly", "--input", str(pipeline / "incoming"), "--time-budget", "15")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert f"model {before} was trained on these: it is current again, nothing to train" in back.stdout + back.stderr
    assert rows_of(db, "select model_version from ops.model_registry where is_current")[0][0] == before
    assert rows_of(db, "select count(*) from ops.model_registry") == models
