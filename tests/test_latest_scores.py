"""main.scored_leads reads ops.latest_scores (issue 15: publish independent of the history's
length) and gives exactly what it gave when it ranked the whole history: the current model's
latest row per lead, ranked among all current scores. Checked through the CLI on a copy of
conftest's pipeline after rescoring nights, a challenger model's scores and a promotion, and on
a database from before ops.latest_scores (filled from the history once, by the first command).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO_ROOT

from helpers import copy_pipeline
from helpers import leadscore_cli as leadscore
from helpers import rows_of as query

# What scored_leads computed before ops.latest_scores existed: the latest history row per lead
# among the current model's, by (scored_at, run_id), then rank and decile over all of them.
FROM_HISTORY = """
    with latest as (
        select h.* from ops.score_history as h
        inner join main.model_registry as m on h.model_version = m.model_version and m.is_current
        qualify row_number() over (partition by h.lead_id order by h.scored_at desc, h.run_id desc) = 1
    )
    select lead_id, run_id, model_version, conversion_probability, predicted_converted, rank_in_run,
        row_number() over (order by conversion_probability desc, lead_id) as rank,
        ntile(10) over (order by conversion_probability desc, lead_id) as decile
    from latest
    order by rank
"""
FROM_VIEW = """
    select lead_id, run_id, model_version, conversion_probability, predicted_converted, rank_in_run, rank, decile
    from main.scored_leads order by rank
"""


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def nights(pipeline_template, tmp_path_factory) -> Path:
    """The pipeline after two more rescoring runs of the current model and the runs of a
    challenger: several history rows per lead and model."""
    root = copy_pipeline(pipeline_template, tmp_path_factory.mktemp("latest_scores"))
    data = root / "data"
    _ok(leadscore(data, "score", "--all", "--no-reasons"))
    _ok(leadscore(data, "score", "--all", "--no-reasons"))
    _ok(leadscore(data, "train", "--baseline-only", "--seed", "3", "--promote", "never"))
    challenger = query(data / "leadscore.duckdb",
                       "select model_version from ops.model_registry where not is_current order by trained_at desc")[0][0]
    _ok(leadscore(data, "score", "--model", challenger, "--no-reasons"))
    _ok(leadscore(data, "score", "--model", challenger, "--all", "--no-reasons"))
    return root


def test_scored_leads_is_the_latest_history_row_of_the_current_model(nights):
    db = nights / "data" / "leadscore.duckdb"
    runs = query(db, "select count(distinct run_id), count(distinct model_version), count(*) from ops.score_history")
    assert runs == [(5, 2, 5 * 400)]
    view = query(db, FROM_VIEW)
    assert len(view) == 400 and view == query(db, FROM_HISTORY)
    # one row per lead and model: each pair's latest run, whole rows as the history has them
    assert query(db, "select count(*), count(distinct (lead_id, model_version)) from ops.latest_scores") == [(800, 800)]
    assert query(db, "select * from ops.latest_scores order by all") == query(
        db, "select * from ops.score_history qualify row_number() over "
            "(partition by lead_id, model_version order by scored_at desc, run_id desc) = 1 order by all")


def test_a_promotion_shows_the_new_current_models_latest_scores_at_once(nights, tmp_path):
    root = copy_pipeline(nights, tmp_path)
    data, db = root / "data", root / "data" / "leadscore.duckdb"
    challenger = query(db, "select model_version from ops.model_registry where not is_current")[0][0]
    _ok(leadscore(data, "models", "promote", challenger))
    view = query(db, FROM_VIEW)
    assert {r[2] for r in view} == {challenger}
    assert view == query(db, FROM_HISTORY)


def test_a_database_from_before_latest_scores_is_filled_once_and_publishes_the_same(nights, tmp_path):
    root = copy_pipeline(nights, tmp_path)
    data, db = root / "data", root / "data" / "leadscore.duckdb"
    expected = query(db, FROM_HISTORY)
    con = duckdb.connect(str(db))
    con.execute("drop table ops.latest_scores")
    con.close()
    # the first leadscore command that opens the ops schema fills it from the history
    out = _ok(leadscore(data, "score", "--no-reasons"))
    assert "nothing to score" in out
    assert query(db, FROM_VIEW) == expected
    assert query(db, "select count(*) from ops.latest_scores") == [(800,)]
    _ok(leadscore(data, "publish"))
    published = query(data / "serving" / "leadscore.duckdb",
                       "select lead_id, run_id, model_version, conversion_probability, predicted_converted, "
                       "rank_in_run, rank, decile from scored_leads order by rank")
    assert published == expected


def test_a_plain_dbt_build_on_a_database_from_before_latest_scores_creates_it(nights, tmp_path):
    """An analytics engineer's `dbt build` on a database whose last leadscore command predates
    ops.latest_scores: the on-run-start hook creates and fills it, so scored_leads builds and
    shows what it showed from the history; a second run leaves it as it is."""
    root = copy_pipeline(nights, tmp_path)
    db = root / "data" / "leadscore.duckdb"
    expected = query(db, FROM_HISTORY)
    before = query(db, "select * from ops.latest_scores order by all")
    con = duckdb.connect(str(db))
    con.execute("drop table ops.latest_scores")
    con.close()
    env = {**os.environ, "LEADSCORE_DB": str(db), "DBT_PROFILES_DIR": str(REPO_ROOT)}
    cmd = [str(Path(sys.executable).parent / "dbt"), "run", "--select", "scored_leads", "--no-use-colors",
           "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    for _ in range(2):
        run = subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:]
        assert query(db, "select * from ops.latest_scores order by all") == before
        assert query(db, FROM_VIEW) == expected
    # the same columns, types and null constraints as the history (the table leadscore creates)
    columns = ("select column_name, data_type, is_nullable from information_schema.columns "
               "where table_schema = 'ops' and table_name = '{}' order by ordinal_position")
    assert query(db, columns.format("latest_scores")) == query(db, columns.format("score_history"))
