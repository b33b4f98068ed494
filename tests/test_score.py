"""score.py in process: one run appends every pending lead once, a second run finds nothing,
a model that no longer matches the table writes nothing; no subprocess, no dbt."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from leadscore import score, train
from leadscore.errors import LeadscoreError
from leadscore.model import load_model
from helpers import make_feature_table


@pytest.fixture()
def trained(db_file):
    """A synthetic feature table (500 score rows) and a baseline model registered on it."""
    truth = make_feature_table(db_file)
    train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
    return truth


def history(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "select lead_id, model_version, conversion_probability, predicted_converted, cutoff, rank_in_run, "
        "decile_in_run from ops.score_history order by rank_in_run"
    ).fetchall()


def test_scores_every_pending_lead_once_with_rank_and_decile(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        first = score.score_leads(con, batch_size=64)
        again = score.score_leads(con)
        rows = history(con)
        model = load_model(con)
    finally:
        con.close()
    assert first.leads_scored == 500 and again.leads_scored == 0
    assert "nothing to score" in again.summary()
    assert len(rows) == 500 and len({r[0] for r in rows}) == 500
    probs = np.array([r[2] for r in rows])
    assert np.all(np.diff(probs) <= 0)  # rank 1 is the most likely lead
    assert [r[5] for r in rows] == list(range(1, 501))
    assert [r[6] for r in rows[:50]] == [1] * 50 and rows[-1][6] == 10
    assert all(r[3] == (r[2] >= model.cutoff) for r in rows)
    assert first.predicted_converted == sum(r[3] for r in rows)


def test_batch_size_does_not_change_a_score(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, batch_size=500)
        whole = dict((r[0], r[2]) for r in history(con))
        score.score_leads(con, rescore=True, batch_size=37)
        paged = con.execute(
            "select lead_id, conversion_probability from ops.score_history "
            "where run_id = (select max(run_id) from ops.score_history)"
        ).fetchall()
    finally:
        con.close()
    assert len(paged) == 500
    assert all(whole[lead] == p for lead, p in paged)


def test_a_model_that_no_longer_matches_the_table_writes_nothing(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        con.execute("alter table main.fct_lead_features drop column x3")
        with pytest.raises(LeadscoreError, match="x3 is missing"):
            score.score_leads(con)
        assert con.execute("select count(*) from ops.score_history").fetchone()[0] == 0
    finally:
        con.close()
