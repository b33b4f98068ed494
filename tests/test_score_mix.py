"""The operating point reweighted to the score rows' customer mix (score_mix.py): the strata,
the weights and the test, by hand; then training reading its cutoff off the reweighted rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from leadscore import score_mix, train
from leadscore.features import CUSTOMER_KEY
from helpers import SMALL_TRAINING as SMALL
from helpers import add_time_blocks
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
    # A holds 10% of the training rows, but 40 score rows would hold only 4 of its leads: too few
    # to test or to weigh by (with A as a stratum its 0 of 40 would give p 0.035 and weight 0)
    (_keys(A=100, other=900), _keys(other=40), "and 5 expected score rows (40 score rows)"),
])
def test_no_mix_to_compare(train_keys, score_keys, why: str) -> None:
    y = np.ones(0 if train_keys is None else len(train_keys), dtype=np.int8)
    mix = score_mix.compare(train_keys, score_keys, y)
    assert not mix.applied and why in mix.reason and mix.weights(_keys(A=2)) is None


@pytest.mark.parametrize("others_converting", [0, 1, 19])
def test_a_mix_that_leaves_too_few_positives_is_not_applied(others_converting: int) -> None:
    """A's leads are nearly all the conversions and the score rows hold no A: the weighted rows
    keep fewer than 20 effective positives, and a cutoff read off those would be noise."""
    train_keys = _keys(A=200, other=800)
    y = np.zeros(1000, dtype=np.int8)
    y[:200] = 1
    y[200:200 + others_converting] = 1
    mix = score_mix.compare(train_keys, _keys(other=300), y)
    assert not mix.applied and "too few positives or negatives" in mix.reason
    y[200:220] = 1  # 20 converting leads of other customers: enough
    assert score_mix.compare(train_keys, _keys(other=300), y).applied


def test_keys_must_be_the_labelled_rows() -> None:
    with pytest.raises(ValueError, match="validated rows"):
        score_mix.compare(_keys(A=10), _keys(A=3), np.zeros(9, dtype=np.int8))


def test_missing_keys_are_one_customer() -> None:
    keys = np.array([None, np.nan, pd.NA, "A"], dtype=object)
    w = score_mix.compare(_keys(A=300, other=700), _keys(A=10, other=290), np.arange(1000) % 5 == 0)
    assert w.applied and w.weights(keys)[:3] == pytest.approx([w.strata[-1].weight] * 3)


def _with_an_all_converting_customer(db_file: Path, dated: bool = False) -> None:
    """Training rows with a customer key; one customer holds 10% of them and all convert, and
    none of the score rows is theirs (the batch is another mix). The trees see the customer
    through cat_b, as the mart's rates and counts show a heavy customer. `dated`: the leads carry
    a lead_date, so training validates forward in time and the first block has no out-of-fold score."""
    make_feature_table(db_file, n_train=2000, n_score=600, seed=5)
    con = duckdb.connect(str(db_file))
    try:
        if dated:
            con.execute("alter table main.fct_lead_features add column lead_date date")
            con.execute("update main.fct_lead_features set lead_date = date '2025-01-01' + "
                        "cast(cast(substr(lead_id, 2) as integer) // 10 as integer)")
        con.execute(f"alter table main.fct_lead_features add column {CUSTOMER_KEY} varchar")
        con.execute(f"update main.fct_lead_features set {CUSTOMER_KEY} = 'c' || (hash(lead_id) % 500)")
        con.execute(f"""update main.fct_lead_features set {CUSTOMER_KEY} = 'all converting', is_converted = true,
                        cat_b = 'their owner'
                        where split = 'train' and hash(lead_id || 'a') % 10 = 0""")
    finally:
        con.close()
    if dated:
        add_time_blocks(db_file)


@pytest.mark.parametrize("dated", [False, True], ids=["random folds", "forward folds"])
def test_training_reads_its_cutoff_off_the_score_rows_mix(db_file: Path, dated: bool) -> None:
    """The easy customer is half the training rows' positives and none of the batch's: the
    reweighted out-of-fold F1 drops it (what the batch can expect), and --no-score-mix keeps the
    training rows' own figures; the model itself is the same. Under forward folds the strata count
    the validated rows only."""
    _with_an_all_converting_customer(db_file, dated)
    on = train.train_model(db_file, time_budget=60, seed=0, baseline_only=True, **SMALL)
    off = train.train_model(db_file, time_budget=60, seed=0, baseline_only=True, score_mix=False, **SMALL)
    assert on.score_mix["applied"] and not off.score_mix["applied"] and "switched off" in off.score_mix["reason"]
    strata = {s["key"]: s for s in on.score_mix["strata"]}
    assert strata["all converting"]["score_rows"] == 0 and strata["all converting"]["weight"] == 0.0
    assert sum(s["train_rows"] for s in strata.values()) == on.validation["validated_rows"]
    assert (on.validation["scheme"] == "forward") == dated and (on.validation["validated_rows"] < 2000) == dated
    assert on.cv_f1 < off.cv_f1 - 0.05
    assert on.cutoff != off.cutoff
    base_on, base_off = on.per_model[train.BASELINE], off.per_model[train.BASELINE]
    assert base_on["oof_log_loss"] == base_off["oof_log_loss"]
    assert base_on["oof_f1"] < base_off["oof_f1"] - 0.05  # each model's figures on the same weights
    assert base_on["oof_average_precision"] < base_off["oof_average_precision"]
    assert on.cv_average_precision < off.cv_average_precision
    assert on.validation["score_mix"] == on.score_mix
    assert "score mix: the operating point is reweighted" in on.summary()


def test_the_cli_reweights_by_default() -> None:
    from leadscore import cli
    from leadscore.commands import training_options

    parser = cli.build_parser()
    assert training_options(parser.parse_args(["train"]))["score_mix"] is True
    assert training_options(parser.parse_args(["train", "--no-score-mix"]))["score_mix"] is False
    assert training_options(parser.parse_args(["nightly", "--no-score-mix"]))["score_mix"] is False


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
