"""score.py in process: one run appends every pending lead once, a second run finds nothing,
a model that no longer matches the table writes nothing; no subprocess, no dbt."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pytest

from leadscore import score, train
from leadscore.errors import LeadscoreError
from leadscore.model import load_model
from conftest import REPO_ROOT
from helpers import copy_data_dir, make_feature_table


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory):
    """A synthetic feature table (500 score rows) and a baseline model registered on it, built
    once per module in a folder of its own (the database and models/ beside it). The baseline
    is deterministic, so a copy is the model every test would have trained for itself."""
    folder = tmp_path_factory.mktemp("score_trained")
    db = folder / "leadscore.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEADSCORE_DB", str(db))
        mp.setenv("LEADSCORE_HOME", str(REPO_ROOT))
        truth = make_feature_table(db)
        train.train_model(db, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
    return folder, truth


@pytest.fixture()
def trained(db_file, trained_template):
    """The module's trained folder copied into this test's own (db_file's), so each test
    changes only its copy."""
    folder, truth = trained_template
    copy_data_dir(folder, db_file.parent)
    return truth.copy()


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


def test_every_scored_lead_gets_three_reasons_from_its_largest_contributions(db_file, trained):
    """Reasons come from the model's own contributions: reason_1 names the feature whose
    LightGBM contribution (pred_contrib) is largest in size for that lead. Without the seed
    feature_reasons (no dbt here) every text is the generic '<feature> = <value>'."""
    import lightgbm as lgb

    from leadscore import features

    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, batch_size=128)
        rows = con.execute(
            "select lead_id, reason_1, reason_2, reason_3 from ops.score_history order by lead_id"
        ).fetchall()
        model = load_model(con)
        frame = features.load_split(con, "score", model.encoding.features)
    finally:
        con.close()
    assert len(rows) == 500
    assert all(r[1] and r[2] and r[3] for r in rows)
    names = [f.name for f in model.encoding.features]
    booster = lgb.Booster(model_file=str(model.artifact_dir / "lightgbm_baseline.txt"))
    phi = booster.predict(model.encoding.transform(frame), pred_contrib=True)[:, : len(names)]
    ranked = np.argsort(-np.abs(phi), axis=1, kind="stable")
    for i, (lead_id, *texts) in enumerate(rows):
        assert lead_id == frame["lead_id"].iloc[i]
        top = [names[j] for j in ranked[i, :3]]
        assert [re.split(r"[ :]", t)[0] for t in texts] == top, (texts, top)
        sign = "raises" if phi[i, ranked[i, 0]] > 0 else "lowers"
        assert f": {sign} the odds ({phi[i, ranked[i, 0]]:+.2f})" in texts[0]


def test_scoring_without_reasons_gives_the_same_scores_and_says_so(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con)
        with_reasons = dict((r[0], r[2]) for r in history(con))
        score.score_leads(con, rescore=True, with_reasons=False)
        rows = con.execute(
            "select lead_id, conversion_probability, reason_1, reason_2, reason_3 from ops.score_history "
            "where run_id = (select max(run_id) from ops.score_history)"
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == 500
    assert all(with_reasons[lead] == p for lead, p, *_ in rows)
    assert {text for *_, r1, r2, r3 in rows for text in (r1, r2, r3)} == {score.NO_REASONS}


def test_a_score_history_from_before_reasons_gains_the_columns(db_file, trained):
    """An existing database: ops.score_history without reason columns is migrated in place; its
    rows keep null reasons, new runs write them."""
    from leadscore import tables

    con = duckdb.connect(str(db_file))
    try:
        con.execute("create schema if not exists ops")
        con.execute("drop table if exists ops.score_history")
        con.execute(
            "create table ops.score_history (lead_id varchar not null, model_version varchar not null, "
            "run_id varchar not null, scored_at timestamp not null, conversion_probability double not null, "
            "predicted_converted boolean not null, cutoff double not null, rank_in_run bigint not null, "
            "decile_in_run integer not null, primary key (lead_id, model_version, run_id))"
        )
        con.execute("insert into ops.score_history values ('old', 'v0', 'r0', now()::timestamp, 0.5, true, 0.3, 1, 1)")
        tables.ensure_schemas(con)
        tables.ensure_schemas(con)  # idempotent
        score.score_leads(con)
        counts = con.execute(
            "select run_id = 'r0', count(*), count(reason_1), count(reason_2), count(reason_3) "
            "from ops.score_history group by all order by all"
        ).fetchall()
    finally:
        con.close()
    assert counts == [(False, 500, 500, 500, 500), (True, 1, 0, 0, 0)]


@pytest.mark.parametrize("batch_size", [1, 64, 500])
def test_tied_probabilities_rank_by_lead_id_as_sql_windows_do(db_file, trained, monkeypatch, batch_size):
    """Tree models give equal scores to equal leaves: with probabilities rounded to one decimal
    (500 leads, about 11 values, -0.0 among them) every rank and decile is what DuckDB's
    row_number() / ntile(10) over (order by conversion_probability desc, lead_id) gives, whatever
    the batches, and the history rows are in lead_id order."""
    from leadscore.model import LoadedModel

    predict = LoadedModel.predict_matrix

    def tied(self, X):
        p = np.round(predict(self, X), 1)
        return np.where(p == 0.0, -0.0, p)

    monkeypatch.setattr(LoadedModel, "predict_matrix", tied)
    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, batch_size=batch_size, with_reasons=False)
        rows = con.execute(
            "select rank_in_run, decile_in_run, row_number() over w, ntile(10) over w, lead_id "
            "from ops.score_history window w as (order by conversion_probability desc, lead_id)"
        ).fetchall()
        stored_order = [r[0] for r in con.execute("select lead_id from ops.score_history").fetchall()]
        distinct = con.execute("select count(distinct conversion_probability) from ops.score_history").fetchone()[0]
    finally:
        con.close()
    assert len(rows) == 500 and distinct < 15
    assert all(r[0] == r[2] and r[1] == r[3] for r in rows)
    assert [sum(1 for r in rows if r[1] == d) for d in range(1, 11)] == [50] * 10
    assert stored_order == sorted(stored_order)


def test_a_run_keeps_the_latest_score_of_each_lead_and_model(db_file, trained):
    """ops.latest_scores holds, per lead and model, the row of its latest run, kept by each run
    in its own transaction: after two runs of one model it is the second run's rows, exactly as
    the history has them; leads another model scored keep their own row."""
    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, with_reasons=False)
        con.execute("insert into ops.latest_scores select * replace ('v0' as model_version) from ops.latest_scores "
                    "where lead_id in (select lead_id from ops.latest_scores order by lead_id limit 3)")
        score.score_leads(con, rescore=True, with_reasons=False, batch_size=97)
        second = con.execute("select max(run_id) from ops.score_history").fetchone()[0]
        latest = con.execute("select * from ops.latest_scores where model_version <> 'v0' order by lead_id").fetchall()
        expected = con.execute("select * from ops.score_history where run_id = ? order by lead_id", [second]).fetchall()
        other = con.execute("select count(*) from ops.latest_scores where model_version = 'v0'").fetchone()[0]
    finally:
        con.close()
    assert len(latest) == 500 and latest == expected
    assert other == 3


def test_a_killed_run_writes_neither_history_nor_latest_scores(db_file, trained, monkeypatch):
    from leadscore import faults

    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, with_reasons=False)
        before = [con.execute(f"select * from ops.{t} order by all").fetchall() for t in ("score_history", "latest_scores")]

        def killed(name, detail=""):
            if name == "score.before_commit":
                raise KeyboardInterrupt

        monkeypatch.setattr(faults, "pause_point", killed)
        with pytest.raises(KeyboardInterrupt):
            score.score_leads(con, rescore=True, with_reasons=False)
        after = [con.execute(f"select * from ops.{t} order by all").fetchall() for t in ("score_history", "latest_scores")]
        temp = con.execute("select count(*) from duckdb_tables() where temporary").fetchone()[0]
    finally:
        con.close()
    assert after == before and len(before[1]) == 500
    assert temp == 0  # the staging tables went with the writer connection


def test_a_run_with_reasons_and_one_without_rank_alike(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        score.score_leads(con, batch_size=77)
        score.score_leads(con, rescore=True, with_reasons=False, batch_size=500)
        runs = con.execute(
            "select run_id, lead_id, conversion_probability, predicted_converted, rank_in_run, decile_in_run, "
            "row_number() over (partition by run_id order by conversion_probability desc, lead_id) as r, "
            "ntile(10) over (partition by run_id order by conversion_probability desc, lead_id) as d "
            "from ops.score_history order by run_id, lead_id"
        ).fetchall()
    finally:
        con.close()
    assert all(row[4] == row[6] and row[5] == row[7] for row in runs)
    first, second = runs[:500], runs[500:]
    assert [r[1:6] for r in first] == [r[1:6] for r in second]


def test_scoring_caps_duckdbs_memory_only_while_it_runs(db_file, trained):
    con = duckdb.connect(str(db_file))
    try:
        con.execute("set memory_limit = '3GiB'")
        score.score_leads(con, with_reasons=False)
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "3.0 GiB"
    finally:
        con.close()
    assert score._memory_limit("18.8 GiB") == "256MiB" and score._memory_limit("200.0 MiB") == "200.0 MiB"
    assert score._memory_limit("odd") == "256MiB"


def test_scoring_with_reasons_does_not_import_lightgbm(db_file, trained):
    """With numba, the scores (treepredict) and the reasons (treeshap) both come from the model's
    text: LightGBM, and sklearn behind it, stay unloaded (about 2 s of a nightly's scoring)."""
    pytest.importorskip("numba")
    import subprocess
    import sys

    code = (
        "import sys, duckdb; from leadscore import score; con = duckdb.connect(sys.argv[1]); "
        "r = score.score_leads(con, rescore=True); con.close(); "
        "print(r.leads_scored, [m for m in ('lightgbm', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db_file)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "500 []"


def test_read_ahead_prepares_each_batch_once_in_order_and_one_ahead():
    import contextlib
    import threading

    prepared: list[int] = []
    main = threading.get_ident()
    threads = set()

    def prepare(x: int) -> int:
        threads.add(threading.get_ident())
        prepared.append(x)
        return x * 10

    got = []
    with contextlib.closing(score.read_ahead(iter(range(5)), prepare)) as items:
        for item in items:
            got.append(item)
            # while the caller holds batch k, batch k + 1 at most has been read, never k + 2
            assert len(prepared) <= len(got) + 1
    assert got == [0, 10, 20, 30, 40]
    assert prepared == [0, 1, 2, 3, 4]
    assert main not in threads  # reading and encoding happen beside the caller, not in turn


def test_read_ahead_passes_a_read_error_on_and_leaves_the_source_closable():
    import contextlib

    def source():
        yield 1
        raise OSError("disk gone")

    batches = source()
    with pytest.raises(OSError, match="disk gone"):
        with contextlib.closing(score.read_ahead(batches, lambda x: x)) as items:
            for _ in items:
                pass
    batches.close()  # not running on another thread any more: closing it raises nothing


def test_read_ahead_waits_for_the_read_in_flight_when_the_caller_fails():
    import contextlib
    import threading
    import time

    finished = threading.Event()

    def slow(x: int) -> int:
        time.sleep(0.2)
        if x == 1:
            finished.set()
        return x

    batches = iter(range(3))
    with pytest.raises(RuntimeError):
        with contextlib.closing(score.read_ahead(batches, slow)) as items:
            for _ in items:
                raise RuntimeError("model failed")
    assert finished.is_set()  # batch 1's read had ended before control came back


def test_a_failing_model_stops_the_reader_and_writes_nothing(db_file, trained, monkeypatch):
    """An error while batch k is predicted ends the run with batch k + 1's read finished and the
    feature query closed: nothing is written, and the connection is usable at once."""
    from leadscore.model import LoadedModel

    calls = {"n": 0}
    original = LoadedModel.predict_matrix

    def failing(self, X):
        calls["n"] += 1
        if calls["n"] == 2:
            raise LeadscoreError("model exploded")
        return original(self, X)

    monkeypatch.setattr(LoadedModel, "predict_matrix", failing)
    con = duckdb.connect(str(db_file))
    try:
        with pytest.raises(LeadscoreError, match="exploded"):
            score.score_leads(con, batch_size=100, with_reasons=False)
        assert con.execute("select count(*) from ops.score_history").fetchone()[0] == 0
        assert con.execute("select count(*) from main.fct_lead_features").fetchone()[0] > 0
    finally:
        con.close()
