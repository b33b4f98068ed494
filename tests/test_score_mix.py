"""The operating point reweighted to the score rows' customer mix (score_mix.py): the strata,
the weights and the test, by hand; then training reading its cutoff off the reweighted rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy.stats import chi2_contingency

from leadscore import score_mix, train
from leadscore.features import CUSTOMER_KEY
from helpers import SMALL_TRAINING as SMALL
from helpers import make_feature_table


def _keys(**counts: int) -> np.ndarray:
    """'A'/'B' repeated as given; `other` rows each a customer of its own."""
    out = [k for k, n in counts.items() if k != "other" for _ in range(n)]
    return np.array(out + [f"c{i}" for i in range(counts.get("other", 0))], dtype=object)


def test_a_moved_mix_weights_each_stratum_by_its_share_ratio() -> None:
    train_keys = _keys(A=100, B=50, other=850)  # A 10%, B 5%: strata; every other customer 1 row
    score_keys = _keys(A=100, B=5, other=395)  # A 20%, B 1%
    y = np.zeros(len(train_keys), dtype=np.int8)
    y[::7] = 1
    mix = score_mix.compare(train_keys, score_keys, y)
    assert mix.applied
    assert [(s.key, s.train_rows, s.score_rows) for s in mix.strata] == [
        ("A", 100, 100), ("B", 50, 5), (score_mix.OTHER, 850, 395)]
    assert [s.weight for s in mix.strata] == pytest.approx([0.2 / 0.1, 0.01 / 0.05, 0.79 / 0.85])
    expected = chi2_contingency([[100, 50, 850], [100, 5, 395]], correction=False)
    assert mix.chi2 == pytest.approx(expected.statistic) and mix.p_value == pytest.approx(expected.pvalue)
    assert mix.df == 2
    w = mix.weights(np.array(["A", "B", "c3", "never seen", None], dtype=object))
    assert w == pytest.approx([2.0, 0.2, 0.79 / 0.85, 0.79 / 0.85, 0.79 / 0.85])
    all_w = mix.weights(train_keys)
    assert mix.effective_rows == pytest.approx(all_w.sum() ** 2 / (all_w ** 2).sum())
    assert "reweighted" in mix.describe() and "A 100->100 rows (x2.00)" in mix.describe()


def test_a_mix_within_chance_leaves_the_rows_unweighted() -> None:
    train_keys = _keys(A=100, B=50, other=850)
    y = (np.arange(len(train_keys)) % 9 == 0).astype(np.int8)
    same = score_mix.compare(train_keys, _keys(A=52, B=24, other=424), y)
    assert not same.applied and same.p_value > score_mix.ALPHA and same.weights(train_keys) is None
    assert "within chance" in same.reason


@pytest.mark.parametrize(("train_keys", "score_keys", "why"), [
    (None, _keys(A=3), "no customer_idx_group_key column"),
    (_keys(A=100), np.array([], dtype=object), "no score rows"),
    (_keys(other=500), _keys(other=20), "no customer holds 1% of the training rows"),
])
def test_no_mix_to_compare(train_keys, score_keys, why: str) -> None:
    y = np.ones(0 if train_keys is None else len(train_keys), dtype=np.int8)
    mix = score_mix.compare(train_keys, score_keys, y)
    assert not mix.applied and why in mix.reason and mix.weights(_keys(A=2)) is None


def test_a_mix_that_leaves_no_positive_is_not_applied() -> None:
    train_keys = _keys(A=200, other=800)
    y = np.zeros(1000, dtype=np.int8)
    y[:200] = 1  # only A's leads convert, and the score rows hold no A
    mix = score_mix.compare(train_keys, _keys(other=300), y)
    assert not mix.applied and "no positive" in mix.reason


def _with_an_all_converting_customer(db_file: Path) -> None:
    """Training rows with a customer key; one customer holds 10% of them and all convert, and
    none of the score rows is theirs (the batch is another mix). The trees see the customer
    through cat_b, as the mart's rates and counts show a heavy customer."""
    make_feature_table(db_file, n_train=2000, n_score=600, seed=5)
    con = duckdb.connect(str(db_file))
    try:
        con.execute(f"alter table main.fct_lead_features add column {CUSTOMER_KEY} varchar")
        con.execute(f"update main.fct_lead_features set {CUSTOMER_KEY} = 'c' || (hash(lead_id) % 500)")
        con.execute(f"""update main.fct_lead_features set {CUSTOMER_KEY} = 'all converting', is_converted = true,
                        cat_b = 'their owner'
                        where split = 'train' and hash(lead_id || 'a') % 10 = 0""")
    finally:
        con.close()


def test_training_reads_its_cutoff_off_the_score_rows_mix(db_file: Path) -> None:
    """The easy customer is half the training rows' positives and none of the batch's: the
    reweighted out-of-fold F1 drops it (what the batch can expect), and --no-score-mix keeps the
    training rows' own figures; the model itself is the same."""
    _with_an_all_converting_customer(db_file)
    on = train.train_model(db_file, time_budget=60, seed=0, baseline_only=True, **SMALL)
    off = train.train_model(db_file, time_budget=60, seed=0, baseline_only=True, score_mix=False, **SMALL)
    assert on.score_mix["applied"] and not off.score_mix["applied"] and "switched off" in off.score_mix["reason"]
    strata = {s["key"]: s for s in on.score_mix["strata"]}
    assert strata["all converting"]["score_rows"] == 0 and strata["all converting"]["weight"] == 0.0
    assert on.cv_f1 < off.cv_f1 - 0.05
    assert on.cutoff != off.cutoff
    assert on.per_model[train.BASELINE]["oof_log_loss"] == off.per_model[train.BASELINE]["oof_log_loss"]
    assert on.validation["score_mix"] == on.score_mix
    assert "score mix: the operating point is reweighted" in on.summary()


def test_a_target_prevalence_is_never_combined_with_the_mix(db_file: Path) -> None:
    _with_an_all_converting_customer(db_file)
    given = train.train_model(db_file, time_budget=60, seed=0, baseline_only=True, target_prevalence=0.3, **SMALL)
    assert not given.score_mix["applied"] and "target prevalence" in given.score_mix["reason"]


def test_the_report_says_when_its_counts_are_reweighted_to_the_mix() -> None:
    from leadscore import report

    mix = score_mix.compare(_keys(A=100, B=50, other=850), _keys(A=100, B=5, other=395),
                            (np.arange(1000) % 7 == 0).astype(np.int8))
    metrics = {"model_version": "v1", "train_positive_rate": 0.08, "target_prevalence": None,
               "validation": {"scheme": "random", "folds": 5, "score_mix": mix.to_dict()}}
    assert "reweighted to the score rows' customer mix" in report.plot_subtitle(metrics)
    metrics["validation"]["score_mix"] = score_mix.ScoreMix(False, "switched off").to_dict()
    assert "reweighted" not in report.plot_subtitle(metrics)
    assert score_mix.ScoreMix.from_dict(mix.to_dict()) == mix
