"""promotion.py and the registry's champion / challenger: a worse retrain does not become
current; `models promote` and `models rollback` flip it, and scoring follows."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import numpy as np
import pytest

from helpers import copy_data_dir, feature_database, make_feature_table, rows_of, run
from leadscore import outcomes, promotion, registry, score, tables, train


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


def test_out_of_fold_figures_of_other_validation_are_not_compared(db_file, champion):
    """The same training rows validated another way (forward folds cut along other time blocks,
    or from before validated leads were scored as of their block's start) measure another
    quantity: the judge does not hold the champion's out-of-fold log-loss against the retrain."""
    con = duckdb.connect(str(db_file))
    try:
        sel = json.loads(registry.model_row(con, champion)["selection"])
        assert sel["validation"]["key"] == "random_kfold"  # what the retrain below has
        sel["validation"] = {**sel["validation"], "scheme": "forward", "key": None}  # a record from before the key
        con.execute(f"update {registry.REGISTRY_TABLE} set selection = ? where model_version = ?",
                    [json.dumps(sel), champion])
    finally:
        con.close()
    retrain = train.train_model(db_file, time_budget=60, seed=1, folds=3, progress=False, baseline_only=True)
    assert retrain.became_current and "no shared evidence" in retrain.promotion_reason
    assert "other training rows or validation" in retrain.promotion_reason


def test_promote_always_overrides_and_never_keeps(db_file, champion):
    kept = train.train_model(db_file, time_budget=60, seed=1, folds=3, progress=False, baseline_only=True,
                             promote="never")
    assert not kept.became_current and _current(db_file) == champion
    forced = train.train_model(db_file, time_budget=60, seed=2, folds=3, progress=False, baseline_only=True,
                               promote="always")
    assert forced.became_current and _current(db_file) == forced.model_version


def _score_leads_as_loaded(db_file, score_truth) -> None:
    """The feature table's score rows as loaded leads (raw.leads, unlabeled, their ids), scored
    by the current model: what `leadscore evaluate` and the promotion rule join to."""
    con = duckdb.connect(str(db_file))
    try:
        tables.ensure_schemas(con)
        con.register("truth", score_truth)
        con.execute("insert into raw.leads (lead_id, load_id, source_row, id, loaded_at) "
                    "select t.lead_id, 2, f.id, f.id, now()::timestamp from truth as t "
                    "join main.fct_lead_features as f using (lead_id)")
        con.unregister("truth")
        score.score_leads(con)
    finally:
        con.close()


def _set_current_scores(db_file, version: str, expr: str) -> None:
    """Overwrite `version`'s stored scores with `expr` over ops.outcomes.is_converted (o)."""
    con = duckdb.connect(str(db_file))
    try:
        for table in ("ops.score_history", "ops.latest_scores"):
            con.execute(f"update {table} as s set conversion_probability = {expr} from ops.outcomes as o "
                        "where o.lead_id = s.lead_id and s.model_version = ?", [version])
    finally:
        con.close()


def _other_training_rows(db_file) -> None:
    """Drop some training rows: a retrain then sees other rows (another data fingerprint)."""
    con = duckdb.connect(str(db_file))
    try:
        con.execute("delete from main.fct_lead_features where split = 'train' and lead_id < 'L000060'")
    finally:
        con.close()


def test_outcomes_learned_later_decide_between_models_on_other_rows(db_file, champion, tmp_path, capsys):
    """Outcomes of the leads the current model scored reach the database through `leadscore
    evaluate`; a retrain on other rows is judged on exactly those leads, its own scores of their
    feature rows against the current model's stored ones."""
    truth = make_feature_table(tmp_path / "same-table.duckdb", n_train=800, n_score=120, seed=21)  # the template's
    _score_leads_as_loaded(db_file, truth)
    labels = tmp_path / "outcomes.csv"
    ids = rows_of(db_file, "select lead_id, id from raw.leads")
    id_of = dict(ids)
    labels.write_text("id,is_converted\n" + "".join(
        f"{id_of[lead]},{int(label)}\n" for lead, label in zip(truth["lead_id"], truth["is_converted"], strict=True)))
    for _ in range(2):  # the same file twice: its outcomes are kept once
        code, _, err = run(capsys, "evaluate", "--labels", str(labels))
        assert code == 0, err
    assert rows_of(db_file, "select count(*), sum(is_converted::int) from ops.outcomes") == [
        (120, int(truth["is_converted"].sum()))]

    # the current model's stored scores made (nearly) right: no honest retrain beats them
    _set_current_scores(db_file, champion, "case when o.is_converted then 0.97 else 0.01 end")
    _other_training_rows(db_file)
    worse = train.train_model(db_file, time_budget=60, seed=1, folds=3, progress=False, baseline_only=True)
    assert not worse.became_current, worse.promotion_reason
    assert "> current" in worse.promotion_reason and "120 leads it scored whose outcome is now known" in \
        worse.promotion_reason
    event = rows_of(db_file, "select evidence from ops.model_events where model_version = "
                             f"'{worse.model_version}'")[0][0]
    assert json.loads(event)["basis"] == promotion.OUTCOMES_BASIS and json.loads(event)["leads"] == 120

    # the challenger never scored those leads: compare says so and what puts them side by side
    code, out, err = run(capsys, "models", "compare", champion, worse.model_version)
    assert code == 0, err
    assert (f"120 leads with a known outcome were scored by {champion} but not by {worse.model_version}: "
            f"`leadscore score --model {worse.model_version}` scores them") in out
    assert "leads both scored" not in out
    code, _, err = run(capsys, "score", "--model", worse.model_version)
    assert code == 0, err
    code, out, err = run(capsys, "models", "compare", champion, worse.model_version)
    assert code == 0, err
    assert "log-loss on 120 leads both scored" in out and "were scored by" not in out
    assert rows_of(db_file, f"select model_version from {registry.REGISTRY_TABLE} where is_current") == [(champion,)]

    # made uninformative (0.5 for every lead): the retrain's own scores of those leads beat them
    _set_current_scores(db_file, champion, "0.5")
    better = train.train_model(db_file, time_budget=60, seed=2, folds=3, progress=False, baseline_only=True)
    assert better.became_current and "<= current" in better.promotion_reason, better.promotion_reason


def test_known_outcomes_take_the_latest_of_evaluate_and_set_aside_labels_and_never_a_training_row(db_file):
    con = duckdb.connect(str(db_file))
    try:
        tables.ensure_schemas(con)
        assert con.execute(outcomes.known_outcomes_sql(con)).fetchall() == []
        for lead, lead_id, label in (("a", 1, None), ("b", 2, None), ("c", 4, None), ("t", 3, True)):
            con.execute("insert into raw.leads (lead_id, load_id, source_row, id, loaded_at, is_converted) "
                        "values (?, 1, ?, ?, now()::timestamp, ?)", [lead, lead_id, lead_id, label])
        con.execute("insert into raw.set_aside_labels values (1, 'a', 1, 1, '1', true, timestamp '2026-01-01'), "
                    "(1, 'b', 2, 2, 'maybe', null, timestamp '2026-01-01'), "
                    "(1, 'c', 4, 4, 'no', false, timestamp '2026-01-01')")
        kept = outcomes.record(con, np.array([1, 2, 3, 99]), np.array([0, 1, 1, 1]), "evaluate", "e1",
                               datetime(2026, 2, 1))
        known = con.execute(f"select * from ({outcomes.known_outcomes_sql(con)}) order by all").fetchall()
    finally:
        con.close()
    assert kept == 3  # ids 1, 2, 3 name loaded leads; 99 none
    # a: the later evaluate outcome wins over the set-aside label; b: only the evaluate one (the
    # set-aside text was no label); c: only its set-aside label; t: a training row, never an
    # outcome learned later
    assert known == [("a", False), ("b", True), ("c", False)]


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
        tables.ensure_schemas(con)
        con.execute(f"insert into {registry.REGISTRY_TABLE} select * replace ('v-other' as model_version, "
                    f"false as is_current) from {registry.REGISTRY_TABLE} where model_version = ?", [champion])
        cutoff = registry.model_row(con, champion)["cutoff"]
        y = np.array([i % 5 == 0 for i in range(200)])
        for i, label in enumerate(y):
            lead = f"L{i:06d}"
            con.execute("insert into raw.leads (lead_id, load_id, source_row, id, loaded_at) "
                        "values (?, 1, ?, ?, now()::timestamp)", [lead, i, i])
            con.execute("insert into ops.outcomes values (?, ?, ?, 'evaluate', 'e1', now()::timestamp)",
                        [lead, i, bool(label)])
            # the champion flags every converter; the other only every second one
            for version, p in ((champion, 0.95 if label else 0.02), ("v-other", 0.95 if label and i % 10 == 0 else 0.02)):
                con.execute("insert into ops.score_history (lead_id, model_version, run_id, scored_at, "
                            "conversion_probability, predicted_converted, cutoff, rank_in_run, decile_in_run) "
                            "values (?, ?, 'r', now()::timestamp, ?, false, ?, 1, 1)", [lead, version, p, cutoff])
        tables.ensure_latest_scores(con)  # ops.latest_scores from the history, as a migration fills it
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
