"""features.py at array level: reading the feature list, the encoding, and the read side of a
scoring run (`score_stream`), on small in-memory DuckDB tables; no subprocess, no dbt."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadscore import features as feat
from leadscore import tables
from leadscore.errors import LeadscoreError


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    """A fct_lead_features with every supported type: 4 training rows, 5 score rows."""
    c = duckdb.connect()
    c.execute(
        """
        create table main.fct_lead_features as
        select * from (values
            ('a1', null, 'train', true,  1.5::double, 3::bigint,  true,  'retail'),
            ('a2', null, 'train', false, null,        5::bigint,  false, 'retail'),
            ('a3', null, 'train', false, 4.0,         null,       null,  'hotel'),
            ('a4', null, 'train', true,  2.0,         1::bigint,  true,  null),
            ('s1', 101::bigint, 'score', null, 9.0,   2::bigint,  false, 'hotel'),
            ('s2', 102, 'score', null, null,          7,          true,  'never seen'),
            ('s3', 103, 'score', null, 1.0,           0,          null,  null),
            ('s4', 104, 'score', null, 2.5,           4,          false, 'retail'),
            ('s5', 105, 'score', null, 3.5,           8,          true,  'retail')
        ) as t(lead_id, id, split, is_converted, amount, n_items, flag, segment)
        """
    )
    tables.ensure_schemas(c)
    yield c
    c.close()


def test_read_features_kinds_follow_sql_types(con):
    fl = feat.read_features(con)
    assert [(f.name, f.kind) for f in fl] == [
        ("amount", "numeric"), ("n_items", "numeric"), ("flag", "numeric"), ("segment", "categorical"),
    ]


def test_read_features_refuses_an_unsupported_type(con):
    con.execute("alter table main.fct_lead_features add column seen_at timestamp")
    with pytest.raises(LeadscoreError, match="seen_at .* TIMESTAMP"):
        feat.read_features(con)


def test_encoding_freezes_levels_by_frequency_and_maps_unseen_to_other(con):
    fl = feat.read_features(con)
    train = feat.load_split(con, "train", fl)
    enc = feat.Encoding.fit(train, fl)
    assert enc.categories["segment"] == ["retail", "hotel"]  # 2 rows, then 1
    X = enc.transform(feat.load_split(con, "score", fl))
    seg = X[:, [f.name for f in fl].index("segment")]
    # s1 hotel -> 3, s2 unseen -> 1 (other), s3 missing -> 0, s4/s5 retail -> 2
    assert seg.tolist() == [3.0, feat.OTHER_CODE, feat.MISSING_CODE, 2.0, 2.0]


def test_encoding_fills_missing_numbers_below_the_training_minimum(con):
    fl = feat.read_features(con)
    enc = feat.Encoding.fit(feat.load_split(con, "train", fl), fl)
    X = enc.transform(feat.load_split(con, "score", fl))
    amount = X[:, 0]
    assert amount[1] < 1.5 and enc.fill["amount"] < 1.5  # s2's missing amount sits below every training value
    assert not np.isnan(X).any()
    flag = X[:, 2]  # booleans (with a null) arrive as 0/1 and the fill
    assert flag[[0, 1, 3, 4]].tolist() == [0.0, 1.0, 0.0, 1.0] and flag[2] == enc.fill["flag"]


def test_encoding_round_trips_through_json(con):
    fl = feat.read_features(con)
    train = feat.load_split(con, "train", fl)
    enc = feat.Encoding.fit(train, fl)
    again = feat.Encoding.from_json(enc.to_json())
    score = feat.load_split(con, "score", fl)
    assert np.array_equal(enc.transform(score), again.transform(score))


def test_check_features_names_every_difference():
    model = [feat.Feature("a", "DOUBLE", "numeric"), feat.Feature("b", "VARCHAR", "categorical")]
    table = [feat.Feature("a", "BIGINT", "numeric")]
    with pytest.raises(LeadscoreError, match="a is BIGINT, model expects DOUBLE; b is missing"):
        feat.check_features(model, table)
    feat.check_features(model[:1], [feat.Feature("a", "DOUBLE", "numeric"), *table[1:]])


def _scored(con: duckdb.DuckDBPyConnection, lead_id: str, model_version: str) -> None:
    """A scoring run's write of one lead: its history row and its latest score, as score.py does."""
    con.execute(
        "create or replace temp table run_rows as select ? as lead_id, ? as model_version, 'r0' as run_id, "
        "now()::timestamp as scored_at, 0.5 as conversion_probability, true as predicted_converted, "
        "0.3 as cutoff, 1 as rank_in_run, 1 as decile_in_run, null::varchar as reason_1, "
        "null::varchar as reason_2, null::varchar as reason_3", [lead_id, model_version])
    con.execute("insert into ops.score_history by name select * from run_rows")
    tables.update_latest_scores(con, "run_rows")


def test_streamed_batches_match_one_whole_read(con):
    fl = feat.read_features(con)
    whole = feat.load_split(con, "score", fl).drop(columns=[feat.LABEL])
    stream = feat.score_stream(con, fl, "v1", batch_size=2)
    streamed = pa.Table.from_batches(list(stream.batches)).to_pandas()
    streamed = streamed.sort_values("lead_id", ignore_index=True)
    pd.testing.assert_frame_equal(whole, streamed, check_dtype=False)


def test_score_stream_reads_every_pending_lead_once_with_its_date_range(con):
    fl = feat.read_features(con)
    _scored(con, "s2", "v1")
    stream = feat.score_stream(con, fl, "v1", batch_size=3)
    batches = list(stream.batches)
    assert stream.total == 4 and stream.first_lead_date is None  # this table has no lead_date
    assert max(b.num_rows for b in batches) <= 3
    assert sorted(i for b in batches for i in b.column("lead_id").to_pylist()) == ["s1", "s3", "s4", "s5"]
    assert feat.score_stream(con, fl, "v1", rescore=True).total == 5
    assert feat.score_stream(con, fl, "v2").total == 5  # another model has scored none of them
    con.execute("create table main.dated as select *, date '2026-01-01' + cast(substr(lead_id, 2) as int) "
                "as lead_date from main.fct_lead_features")
    dated = feat.score_stream(con, fl, "v2", table="main.dated")
    assert (dated.total, str(dated.first_lead_date), str(dated.last_lead_date)) == (5, "2026-01-02", "2026-01-06")
    with pytest.raises(LeadscoreError, match="missing"):
        feat.score_stream(con, [*fl, feat.Feature("gone", "DOUBLE", "numeric")], "v1")


def test_transform_arrow_is_transform_bit_for_bit(con):
    """The scoring path encodes Arrow batches directly: every type (doubles with a null, NaN and
    infinities, bigints, booleans with a null, decimals, categoricals seen, unseen and null) must
    give exactly the matrix the pandas path gives, and format-1 missing indicators too."""
    con.execute("alter table main.fct_lead_features add column price decimal(18,3)")
    con.execute("update main.fct_lead_features set price = cast(length(lead_id) as decimal(18,3)) / 7")
    con.execute("update main.fct_lead_features set amount = 'nan'::double where lead_id = 's4'")
    con.execute("update main.fct_lead_features set amount = 'inf'::double where lead_id = 's5'")
    con.execute("update main.fct_lead_features set price = null where lead_id = 's1'")
    fl = feat.read_features(con)
    enc = feat.Encoding.fit(feat.load_split(con, "train", fl), fl)
    enc.indicators = ["amount", "flag"]
    frame = feat.load_split(con, "score", fl)
    arrow = con.execute("select * from main.fct_lead_features where split = 'score' order by lead_id").to_arrow_table()
    expected = enc.transform(frame)
    assert np.array_equal(enc.transform_arrow(arrow), expected)
    assert np.array_equal(enc.transform_arrow(arrow.to_batches()[0]), expected)
    assert expected[:, 5].tolist() == [0, 1, 0, 1, 0]  # amount__missing: null and NaN, not inf
    with pytest.raises(LeadscoreError, match="segment"):
        enc.transform_arrow(arrow.drop_columns(["segment"]))


def test_group_keys_come_last_and_only_the_linear_member_reads_them(con):
    """A VARCHAR <column>_group_key is a group key wherever the table puts it: last in the
    feature list, so the trees' matrix (Encoding.tree_width) is the columns before it; the
    mixed-effects member gets it with the label-derived columns left out."""
    con.execute("alter table main.fct_lead_features add column customer_idx_group_key varchar")
    con.execute("alter table main.fct_lead_features add column segment_target_rate double")
    con.execute("update main.fct_lead_features set customer_idx_group_key = substr(lead_id, 2, 1), "
                "segment_target_rate = 0.1")
    # a table that lists the key before other features: the key still ends up last
    con.execute("create table main.reordered as select lead_id, id, split, is_converted, customer_idx_group_key, "
                "amount, n_items, flag, segment, segment_target_rate from main.fct_lead_features")
    for table in ("main.fct_lead_features", "main.reordered"):
        fl = feat.read_features(con, table)
        assert [(f.name, f.kind) for f in fl][-2:] == [("segment_target_rate", "numeric"),
                                                        ("customer_idx_group_key", "group")]
    enc = feat.Encoding.fit(feat.load_split(con, "train", fl, "main.reordered"), fl)
    assert enc.tree_width == 5 and enc.group_indices == [5]
    assert enc.category_code_indices == [3]  # LightGBM's categorical columns: never the key
    assert enc.mixed_effects_columns() == ([5], [4])
    X = enc.transform(feat.load_split(con, "score", fl, "main.reordered"))
    assert X.shape == (5, 6) and X[:, 5].tolist() == [2, 3, 4, 5, 1]  # '1'..'4' seen in training, '5' not
    # a mart built with use_group_keys false: the key carries nothing, the plain linear member
    con.execute("update main.reordered set customer_idx_group_key = null")
    empty = feat.Encoding.fit(feat.load_split(con, "train", fl, "main.reordered"), fl)
    assert empty.mixed_effects_columns() == ([], []) and empty.tree_width == 5


def test_validation_view_puts_block_start_history_in_place_by_lead():
    """Forward validation scores a validated lead on its history as of its block's start; rows
    the table does not hold (no date, so no block) keep the feature table's own values."""
    train_df = pd.DataFrame({"lead_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0],
                             "customer_idx_earlier_conversions": pd.array([4, 5, 6], dtype="Int64"),
                             "customer_idx_earlier_conversion_rate": [0.4, 0.5, 0.6]})
    history = pd.DataFrame({"lead_id": ["c", "a"], "history_block": [2, 0],
                            "customer_idx_earlier_conversions": [1, 0],
                            "customer_idx_earlier_conversion_rate": [0.1, 0.08],
                            "lead_owner_earlier_conversions": [7, 7]})  # not a column of the table
    view = feat.validation_view(train_df, history)
    assert view.replaced == ("customer_idx_earlier_conversions", "customer_idx_earlier_conversion_rate")
    assert view.blocks.tolist()[0] == 0 and np.isnan(view.blocks[1]) and view.blocks[2] == 2
    assert view.rows["customer_idx_earlier_conversions"].tolist() == [0, 5, 1]
    assert view.rows["customer_idx_earlier_conversion_rate"].tolist() == [0.08, 0.5, 0.1]
    assert view.rows["x"].tolist() == [1.0, 2.0, 3.0] and train_df["customer_idx_earlier_conversions"].tolist() == [4, 5, 6]
    assert feat.validation_view(train_df, None) is None
