"""validation.py: forward-in-time folds never judge a lead by a model that saw a later lead;
without dates, K random folds over every row, each a union of whole rate folds when the rows
have them (stratified K-fold when they do not)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadscore import validation
from leadscore.errors import LeadscoreError


def dated(n: int = 600, days: int = 120, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    dates = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, days, n), unit="D"))
    y = (rng.random(n) < 0.2).astype(np.int8)
    return dates, y


def test_forward_folds_fit_only_on_earlier_days():
    dates, y = dated()
    v = validation.forward(dates, y, 4)
    assert v.scheme == validation.FORWARD and len(v.folds) == 4
    for fit, val in v.folds:
        assert dates[fit].max() < dates[val].min()  # strictly earlier: a day is never split


def test_forward_folds_expand_and_leave_the_first_block_unvalidated():
    dates, y = dated()
    v = validation.forward(dates, y, 4)
    sizes = [len(fit) for fit, _ in v.folds]
    assert sizes == sorted(sizes) and sizes[0] > 0
    vals = np.concatenate([val for _, val in v.folds])
    assert len(vals) == len(set(vals)) == len(v.validated)
    first = set(range(len(y))) - set(vals)
    assert dates[list(first)].max() < dates[v.validated].min()
    assert 0.15 < len(first) / len(y) < 0.25  # about 1 / (k + 1)


def test_view_folds_point_at_the_same_rows():
    dates, y = dated()
    v = validation.forward(dates, y, 3)
    ids = np.arange(len(y)) * 10
    viewed = v.view(ids)
    for (fit, val), (vfit, vval) in zip(v.folds, v.view_folds(), strict=True):
        assert np.array_equal(viewed[vval], ids[val])
        assert len(vfit) + len(vval) == len(viewed) and not set(vfit) & set(vval)


def test_first_k_folds_validate_only_their_rows():
    """What train.py keeps when the time budget ends the baseline's cross-validation early."""
    dates, y = dated()
    for v in (validation.random_kfold(y, 5, seed=0), validation.forward(dates, y, 4)):
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

    dates, y = dated()
    v = validation.forward(dates, y, 4).first(1)
    data = Data(X=np.zeros((len(y), 1), dtype=np.float32), y=y, pi=float(y.mean()), folds=v.folds, cat_idx=[],
                code_idx=[], seed=0, n_threads=1)
    out = train._random_kfold_baseline(v, data, Clock(budget=600.0), reserve=0.0, fold_seconds=0.01)
    assert out == {"skipped": "the time budget ended the baseline's validation after one fold"}


def test_without_dates_it_is_stratified_k_fold_over_every_row():
    _, y = dated()
    for dates in (None, pd.Series([pd.NaT] * len(y))):
        v = validation.choose(dates, y, 5, seed=1)
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


def test_with_dates_choose_goes_forward():
    dates, y = dated()
    assert validation.choose(dates, y, 5, seed=1).scheme == validation.FORWARD


def test_too_few_days_for_the_folds_is_a_clear_error():
    dates, y = dated(n=50, days=3)
    with pytest.raises(LeadscoreError, match="too few distinct lead dates"):
        validation.forward(dates, y, 5)


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

    from helpers import make_feature_table
    from leadscore import registry, train

    make_feature_table(db_file, n_train=1500, n_score=100)
    con = duckdb.connect(str(db_file))
    con.execute(
        "create or replace table main.fct_lead_features as select *, date '2024-01-01' + "
        "cast(row_number() over (order by lead_id) / 6 as integer) as lead_date from main.fct_lead_features"
    )
    con.close()
    res = train.train_model(db_file, time_budget=60, seed=0, folds=3, progress=False, baseline_only=True)
    assert res.validation["scheme"] == validation.FORWARD
    assert res.validation["validated_rows"] < 1500  # the first block has no out-of-fold score
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
