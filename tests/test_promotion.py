"""promotion.py and the registry's champion / challenger: a worse retrain does not become
current; `models promote` and `models rollback` flip it, and scoring follows."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from helpers import copy_data_dir, feature_database, run
from leadscore import promotion, registry, score, train


def _current(db_file) -> str:
    con = duckdb.connect(str(db_file))
    try:
        return registry.current_version(con)
    finally:
        con.close()


def _score_version(db_file) -> str:
    con = duckdb.connect(str(db_file))
    try:
        return score.score_leads(con, rescore=True).model_version
    finally:
        con.close()


@pytest.fixture(scope="module")
def champion_template(tmp_path_factory):
    """A baseline model that is current, whose out-of-fold log-loss on these rows is made
    excellent, so any retrain on the same rows is worse: built once per module in a folder of
    its own (the database, models/ beside it). The baseline is deterministic."""
    with feature_database(tmp_path_factory, "champion", n_train=800, n_score=120, seed=21) as db_file:
        first = train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
    folder = db_file.parent
    con = duckdb.connect(str(db_file))
    try:
        sel = json.loads(registry.model_row(con, first.model_version)["selection"])
        sel["chosen_oof_log_loss"] = 0.01
        con.execute(f"update {registry.REGISTRY_TABLE} set selection = ? where model_version = ?",
                    [json.dumps(sel), first.model_version])
    finally:
        con.close()
    return folder, first.model_version


@pytest.fixture()
def champion(db_file, champion_template):
    """The module's champion copied into this test's own folder (db_file's)."""
    folder, version = champion_template
    copy_data_dir(folder, db_file.parent)
    return version


def test_a_worse_retrain_is_a_challenger_and_promote_and_rollback_flip_it(db_file, champion, capsys):
    worse = train.train_model(db_file, time_budget=60, seed=1, folds=3, progress=False, baseline_only=True)
    assert not worse.became_current and "> current" in worse.promotion_reason
    assert "CHALLENGER" in worse.summary()
    assert _current(db_file) == champion and _score_version(db_file) == champion

    code, out, _ = run(capsys, "models", "promote", worse.model_version)
    assert code == 0 and f"was {champion}" in out
    assert _current(db_file) == worse.model_version and _score_version(db_file) == worse.model_version

    code, out, _ = run(capsys, "models", "rollback")
    assert code == 0 and f"{champion} is the current model again" in out
    assert _current(db_file) == champion and _score_version(db_file) == champion

    code, out, _ = run(capsys, "models", "list")
    assert code == 0 and f"*  {champion}" in out and worse.model_version in out
    code, out, _ = run(capsys, "models", "show", worse.model_version)
    assert "registered as challenger" in out and "promoted" in out and "rolled back" in out
    code, out, _ = run(capsys, "models", "compare", champion, worse.model_version)
    assert code == 0 and "same training rows: comparable" in out


def test_promote_always_overrides_and_never_keeps(db_file, champion):
    kept = train.train_model(db_file, time_budget=60, seed=1, folds=3, progress=False, baseline_only=True,
                             promote="never")
    assert not kept.became_current and _current(db_file) == champion
    forced = train.train_model(db_file, time_budget=60, seed=2, folds=3, progress=False, baseline_only=True,
                               promote="always")
    assert forced.became_current and _current(db_file) == forced.model_version


def test_outcomes_learned_later_decide_between_models_on_other_rows(db_file, champion):
    """The current model scored leads whose outcomes are now known: it must beat the new model's
    out-of-fold scores on exactly those leads to stay."""
    con = duckdb.connect(str(db_file))
    try:
        lead_ids = np.array([f"L{i:06d}" for i in range(200)])
        y = np.array([i % 5 == 0 for i in range(200)], dtype=np.int8)
        con.execute("create schema if not exists ops")
        from leadscore import tables

        tables.ensure_schemas(con)
        # the champion's scores of these leads were (nearly) right
        for lead, label in zip(lead_ids, y, strict=True):
            con.execute("insert into ops.score_history (lead_id, model_version, run_id, scored_at, "
                        "conversion_probability, predicted_converted, cutoff, rank_in_run, decile_in_run) "
                        "values (?, ?, 'r', now()::timestamp, ?, false, 0.5, 1, 1)",
                        [lead, champion, 0.95 if label else 0.02])
        good = promotion.judge(con, "other rows", 0.2, lead_ids, y, np.where(y == 1, 0.97, 0.01))
        bad = promotion.judge(con, "other rows", 0.2, lead_ids, y, np.full(200, 0.2))
    finally:
        con.close()
    assert good.promote and good.evidence["basis"].startswith("outcomes learned")
    assert not bad.promote and bad.evidence["leads"] == 200


def test_artifact_dir_is_relative_so_a_moved_installation_finds_its_models(db_file, champion):
    con = duckdb.connect(str(db_file))
    try:
        row = registry.model_row(con, champion)
    finally:
        con.close()
    assert row["artifact_dir"] == champion


def test_compare_reads_the_f1_difference_on_outcomes_learned_later_against_the_paired_interval(db_file, champion):
    """`models compare A B` on leads both scored whose outcomes are now known: each model's F1 at
    its own cutoff, and the paired bootstrap interval of the difference with what it says."""
    con = duckdb.connect(str(db_file))
    try:
        from leadscore import tables

        tables.ensure_schemas(con)
        con.execute(f"insert into {registry.REGISTRY_TABLE} select * replace ('v-other' as model_version, "
                    f"false as is_current) from {registry.REGISTRY_TABLE} where model_version = ?", [champion])
        cutoff = registry.model_row(con, champion)["cutoff"]
        y = np.array([i % 5 == 0 for i in range(200)])
        for i, label in enumerate(y):
            lead = f"L{i:06d}"
            con.execute("insert into raw.leads (lead_id, load_id, source_row, id, loaded_at, is_converted) "
                        "values (?, 1, ?, ?, now()::timestamp, ?)", [lead, i, i, bool(label)])
            # the champion flags every converter; the other only every second one
            for version, p in ((champion, 0.95 if label else 0.02), ("v-other", 0.95 if label and i % 10 == 0 else 0.02)):
                con.execute("insert into ops.score_history (lead_id, model_version, run_id, scored_at, "
                            "conversion_probability, predicted_converted, cutoff, rank_in_run, decile_in_run) "
                            "values (?, ?, 'r', now()::timestamp, ?, false, ?, 1, 1)", [lead, version, p, cutoff])
        lines = promotion.compare_lines(con, champion, "v-other")
        itself = promotion.compare_lines(con, champion, champion)
    finally:
        con.close()
    f1_line = next(line for line in lines if line.startswith("F1 at own cutoff on those leads"))
    assert f1_line.split()[-2:] == ["1.0000", "0.6667"]  # 2 x 20 / (2 x 20 + 20 missed)
    diff = next(line for line in lines if line.startswith("F1, first minus second, 95%"))
    assert diff.endswith("the first is better")
    same = next(line for line in itself if line.startswith("F1, first minus second, 95%"))
    assert "+0.0000 to +0.0000" in same and same.endswith("within the sample's noise")
