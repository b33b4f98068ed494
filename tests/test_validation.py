"""validation.py: forward-in-time folds never judge a lead by a model that saw a later lead, nor
by its own block's labels; without dates, K random folds over every row, each a union of whole
rate folds when the rows have them (stratified K-fold when they do not)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore import validation
from leadscore.errors import LeadscoreError


def dated(n: int = 600, blocks: int = 6, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    """Each row's time block (as fct_lead_validation_history has them) and a label."""
    rng = np.random.default_rng(seed)
    block = pd.Series(rng.integers(0, blocks, n).astype("float64"))
    y = (rng.random(n) < 0.2).astype(np.int8)
    return block, y


def test_forward_folds_fit_only_on_earlier_blocks():
    blocks, y = dated()
    v = validation.forward(blocks, y, 4)
    assert v.scheme == validation.FORWARD and len(v.folds) == 4
    for fit, val in v.folds:
        assert blocks[val].nunique() == 1 and blocks[fit].max() < blocks[val].min()


def test_forward_folds_validate_the_last_k_blocks_and_expand():
    blocks, y = dated()
    v = validation.forward(blocks, y, 4)
    assert [int(blocks[val].iloc[0]) for _, val in v.folds] == [2, 3, 4, 5]
    assert [len(fit) for fit, _ in v.folds] == [int((blocks < b).sum()) for b in (2, 3, 4, 5)]
    vals = np.concatenate([val for _, val in v.folds])
    assert len(vals) == len(set(vals)) == len(v.validated) == int((blocks >= 2).sum())


def test_a_row_without_a_block_is_fitted_on_and_never_validated():
    blocks, y = dated()
    blocks[:10] = np.nan  # undated leads among dated ones
    v = validation.forward(blocks, y, 5)
    assert not set(range(10)) & set(v.validated)
    assert all(set(range(10)) <= set(fit) for fit, _ in v.folds)


def test_view_folds_point_at_the_same_rows():
    blocks, y = dated()
    v = validation.forward(blocks, y, 3)
    ids = np.arange(len(y)) * 10
    viewed = v.view(ids)
    for (fit, val), (vfit, vval) in zip(v.folds, v.view_folds(), strict=True):
        assert np.array_equal(viewed[vval], ids[val])
        assert len(vfit) + len(vval) == len(viewed) and not set(vfit) & set(vval)


def test_first_k_folds_validate_only_their_rows():
    """What train.py keeps when the time budget ends the baseline's cross-validation early."""
    blocks, y = dated()
    for v in (validation.random_kfold(y, 5, seed=0), validation.forward(blocks, y, 4)):
        two = v.first(2)
        assert two.scheme == v.scheme and len(two.folds) == 2
        expected = np.sort(np.concatenate([va for _, va in v.folds[:2]]))
        assert np.array_equal(two.validated, expected)
        for (vfit, vval), (_, val) in zip(two.view_folds(), two.folds, strict=True):
            assert np.array_equal(two.view(np.arange(len(y)))[vval], val)
            assert len(vfit) + len(vval) == len(two.validated)


def test_a_baseline_cut_to_one_forward_fold_skips_the_random_kfold_comparison():
    """A nightly on dated leads with a tiny budget: the baseline validated one forward fold, and
    the random K-fold figures beside it are skipped with a reason (they raised ValueError, K=1)."""
    from leadscore import train
    from leadscore.tuning import Clock, Data

    blocks, y = dated()
    v = validation.forward(blocks, y, 4).first(1)
    data = Data(X=np.zeros((len(y), 1), dtype=np.float32), y=y, pi=float(y.mean()), folds=v.folds, cat_idx=[],
                code_idx=[], seed=0, n_threads=1)
    out = train._random_kfold_baseline(v, data, Clock(budget=600.0), reserve=0.0, fold_seconds=0.01)
    assert out == {"skipped": "the time budget ended the baseline's validation after one fold"}


def test_without_blocks_it_is_stratified_k_fold_over_every_row():
    _, y = dated()
    for blocks in (None, pd.Series([np.nan] * len(y))):
        v = validation.choose(blocks, y, 5, seed=1)
        assert v.scheme == validation.RANDOM and np.array_equal(v.validated, np.arange(len(y)))
        assert sorted(np.concatenate([va for _, va in v.folds]).tolist()) == list(range(len(y)))


def test_random_folds_keep_each_rate_fold_whole_and_follow_the_seed():
    """A lead's out-of-fold rate is shared to the last digit with the other leads of its value in
    its rate fold: a validation fold that split that group would let its model learn the validated
    leads from their fold mates' labels. So each validation fold is a union of whole rate folds."""
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.2).astype(np.int8)
    rate_folds = pd.Series(rng.integers(0, 20, len(y)))
    v = validation.choose(None, y, 5, seed=1, rate_folds=rate_folds)
    assert v.scheme == validation.RANDOM and np.array_equal(v.validated, np.arange(len(y)))
    assert sorted(np.concatenate([va for _, va in v.folds]).tolist()) == list(range(len(y)))
    held = [set(rate_folds[val]) for _, val in v.folds]
    assert all(len(h) == 4 for h in held) and set().union(*held) == set(range(20))
    for (fit, val), h in zip(v.folds, held, strict=True):
        assert not set(rate_folds[fit]) & h and len(fit) + len(val) == len(y)
    again = validation.choose(None, y, 5, seed=1, rate_folds=rate_folds)
    other = validation.choose(None, y, 5, seed=2, rate_folds=rate_folds)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(v.folds, again.folds, strict=True))
    assert [set(rate_folds[val]) for _, val in other.folds] != held
    # a row without a rate fold (a table from before the column): stratified K-fold as before
    partial = rate_folds.astype("Int64").where(rate_folds.index > 0)
    plain = validation.choose(None, y, 5, seed=1, rate_folds=partial)
    assert any(len(set(rate_folds[val])) > 4 for _, val in plain.folds)


def test_more_validation_folds_than_rate_folds_is_a_clear_error():
    y = np.array([0, 1] * 50, dtype=np.int8)
    with pytest.raises(LeadscoreError, match="5 validation folds need at least 5 rate folds, the feature table has 3"):
        validation.choose(None, y, 5, seed=1, rate_folds=pd.Series(np.arange(100) % 3))


def test_with_blocks_choose_goes_forward():
    blocks, y = dated()
    assert validation.choose(blocks, y, 5, seed=1).scheme == validation.FORWARD


def test_more_folds_than_blocks_validate_every_block_but_the_first_and_say_so():
    """A day that holds many leads can leave a block empty: the nightly still trains, on fewer
    folds, and says why; under three blocks there is nothing to validate forward on."""
    blocks, y = dated(blocks=4)
    v = validation.choose(blocks, y, 5, seed=1)
    assert len(v.folds) == 3 and [int(blocks[val].iloc[0]) for _, val in v.folds] == [1, 2, 3]
    assert v.notes and "5 forward-in-time folds need 6 time blocks" in v.notes[0] and "validation_time_blocks" in v.notes[0]
    assert not validation.forward(*dated(blocks=6), 5).notes
    two, y2 = dated(blocks=2)
    with pytest.raises(LeadscoreError, match="at least 3 time blocks, the feature store has 2.*validation_time_blocks"):
        validation.choose(two, y2, 5, seed=1)


def test_f1_by_month_by_hand():
    dates = pd.to_datetime(["2024-01-03", "2024-01-20", "2024-01-31", "2024-02-01", "2024-02-10"])
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.7, 0.2])
    rows = validation.f1_by_month(y, p, 0.5, dates)
    assert rows == [
        {"month": "2024-01", "rows": 3, "positives": 2, "flagged": 2, "f1": 0.5},  # tp 1: 2*1/(2+2)
        {"month": "2024-02", "rows": 2, "positives": 0, "flagged": 1, "f1": 0.0},
    ]


def test_training_on_dated_rows_validates_forward_and_reports_f1_by_month(db_file):
    import json

    import duckdb

    from helpers import add_time_blocks
    from leadscore import registry, train

    _dated_feature_table(db_file)
    add_time_blocks(db_file, blocks=4)
    res = train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
    assert res.validation["scheme"] == validation.FORWARD
    assert 1000 < res.validation["validated_rows"] < 1500  # the first block has no out-of-fold score
    metrics = json.loads((res.report_dir / "metrics.json").read_text())
    months = [m["month"] for m in metrics["validation"]["f1_by_month"]]
    assert months == sorted(months) and len(months) >= 6
    assert (res.report_dir / "f1_by_month.png").is_file()
    con = duckdb.connect(str(db_file))
    try:
        row = registry.model_row(con, res.model_version)
    finally:
        con.close()
    assert json.loads(row["selection"])["validation"]["scheme"] == "forward"
    assert "lead_date" not in [f[0] for f in json.loads(row["feature_list"])]  # a key, never a feature


def _dated_feature_table(db_file, leak: bool = False) -> None:
    """make_feature_table's rows with a lead_date (six leads a day). `leak`: plus
    customer_idx_earlier_conversion_rate, a history column that carries each training lead's own
    label, as a lead's history as of its date carries the labels of its block's earlier leads."""
    import duckdb

    from helpers import make_feature_table

    make_feature_table(db_file, n_train=1500, n_score=100)
    con = duckdb.connect(str(db_file))
    try:
        con.execute(
            "create or replace table main.fct_lead_features as select *, date '2024-01-01' + "
            "cast(row_number() over (order by lead_id) / 6 as integer) as lead_date from main.fct_lead_features")
        if leak:
            con.execute("alter table main.fct_lead_features add column customer_idx_earlier_conversion_rate double")
            con.execute("update main.fct_lead_features set customer_idx_earlier_conversion_rate = "
                        "case when is_converted then 0.9 else 0.1 end")
    finally:
        con.close()


def test_dated_rows_without_their_time_blocks_are_a_clear_error(db_file):
    from leadscore import train

    _dated_feature_table(db_file)
    with pytest.raises(LeadscoreError, match="lead_date but the database has no main.fct_lead_validation_history"
                                             ".*leadscore build"):
        train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)


def test_a_validated_lead_is_scored_on_its_history_as_of_its_blocks_start(db_file):
    """The history column carries the labels a lead's own block holds (here its own, the
    extreme case). A fold's model learns it from its fit rows; a validated lead read as of its
    date hands the fold its label, which no score row's batch does. Read as of its block's start
    (fct_lead_validation_history: the prior, no earlier block of its customer) the out-of-fold
    scores lose that. The model itself, fitted on every row as the table has it, is the same."""
    import duckdb

    from helpers import add_time_blocks
    from leadscore import train

    _dated_feature_table(db_file, leak=True)
    add_time_blocks(db_file, blocks=4)
    as_of_date = train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True,
                                   score_mix=False)
    con = duckdb.connect(str(db_file))
    try:
        con.execute("alter table main.fct_lead_validation_history add column customer_idx_earlier_conversion_rate double")
        con.execute("update main.fct_lead_validation_history set customer_idx_earlier_conversion_rate = 0.08")
    finally:
        con.close()
    as_of_block = train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True,
                                    score_mix=False)
    assert as_of_date.cv_f1 > 0.95  # the label, read back
    assert as_of_block.cv_f1 < 0.6
    base_date, base_block = as_of_date.per_model[train.BASELINE], as_of_block.per_model[train.BASELINE]
    assert base_block["oof_log_loss"] > base_date["oof_log_loss"] + 0.1
    assert as_of_block.validation["validated_rows"] == as_of_date.validation["validated_rows"]
    assert as_of_date.validation["scored_as_of_block_start"] == []
    assert as_of_block.validation["scored_as_of_block_start"] == ["customer_idx_earlier_conversion_rate"]
    assert "scored on its history as of its block's start" in as_of_block.summary()
    fitted = [sorted(p.name for p in r.artifact_dir.glob("*.txt")) for r in (as_of_date, as_of_block)]
    assert fitted[0] == fitted[1] and fitted[0]  # the baseline's LightGBM text model
    for name in fitted[0]:
        assert (as_of_date.artifact_dir / name).read_text() == (as_of_block.artifact_dir / name).read_text()


def test_forward_folds_are_keyed_by_their_cut():
    """dbt var validation_time_blocks moves the forward folds while the rows and features stay: a
    study, or the promotion judge's out-of-fold comparison, must not take one cut for another."""
    six, y = dated(blocks=6)
    v = validation.forward(six, y, 5)
    assert v.key.startswith("forward-") and v.key == validation.forward(six.copy(), y, 5).key
    # another var, the same number of folds: another cut
    assert validation.forward(dated(blocks=7)[0], y, 5).key != v.key
    assert validation.forward(six, y, 4).key != v.key and v.first(2).key != v.key
    assert validation.random_kfold(y, 5, seed=0).key == validation.RANDOM


def test_dated_rows_missing_from_the_time_blocks_are_a_clear_error(db_file):
    """A validation table built before the feature table's newest rows: those rows would have no
    block and be fitted on in every fold, ahead of their time."""
    import duckdb

    from helpers import add_time_blocks
    from leadscore import train

    _dated_feature_table(db_file)
    add_time_blocks(db_file, blocks=4)
    con = duckdb.connect(str(db_file))
    try:
        con.execute("delete from main.fct_lead_validation_history where lead_id in "
                    "(select lead_id from main.fct_lead_validation_history order by lead_id desc limit 7)")
    finally:
        con.close()
    with pytest.raises(LeadscoreError, match="7 dated training rows have no time block.*leadscore build"):
        train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
