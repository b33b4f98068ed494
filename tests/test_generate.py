"""The demo-data generator writes files in the competition format with the real files' quirks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore.errors import LeadscoreError
from leadscore.generate import END_CUSTOMER_SPELLINGS, STRATEGIC_AREAS, VER_CUS_AREAS, generate
from leadscore.input_format import ID_COLUMN, LABEL_COLUMN, LEAD_COLUMN_NAMES

TRAIN_ROWS = 20_000
SCORE_ROWS = 3_000


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gen")
    info = generate(out, train_rows=TRAIN_ROWS, score_rows=SCORE_ROWS, seed=7, truth_path=out / "truth.csv")
    info["dir"] = out
    info["train"] = pd.read_csv(out / "train.csv", low_memory=False)
    info["score"] = pd.read_csv(out / "submission.csv", low_memory=False)
    info["truth"] = pd.read_csv(out / "truth.csv")
    return info


def test_headers_exactly_per_spec(files):
    train_header = (files["dir"] / "train.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    score_header = (files["dir"] / "submission.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert train_header == ",".join([*LEAD_COLUMN_NAMES, LABEL_COLUMN])
    assert score_header == ",".join([ID_COLUMN, *LEAD_COLUMN_NAMES, LABEL_COLUMN])
    assert "customer_country.1" in train_header
    assert len(files["train"]) == TRAIN_ROWS and len(files["score"]) == SCORE_ROWS
    for key in ("train_path", "score_path", "train_rows", "score_rows", "train_positive_rate", "seconds"):
        assert key in files


def test_label_format_and_rate(files):
    raw = pd.read_csv(files["dir"] / "train.csv", dtype=str, keep_default_na=False)
    assert set(raw[LABEL_COLUMN]) == {"True", "False"}
    rate = (raw[LABEL_COLUMN] == "True").mean()
    assert 0.07 <= rate <= 0.095
    assert files["train_positive_rate"] == pytest.approx(rate)
    # the score file's label column exists and is empty on every row
    assert files["score"][LABEL_COLUMN].isna().all()


def test_integer_columns_written_as_ints(files):
    raw = pd.read_csv(files["dir"] / "train.csv", dtype=str, keep_default_na=False)
    for col in ("customer_idx", "lead_owner", "lead_desc_length", "ver_cus", "ver_pro"):
        assert raw[col].str.fullmatch(r"\d+").all(), col
    assert set(raw["bant_submit"]) <= {"0.0", "0.25", "0.5", "0.75", "1.0"}


def test_ids_unique_and_not_contiguous(files):
    ids = files["score"][ID_COLUMN]
    assert ids.is_unique
    assert ids.dtype.kind == "i"
    span = ids.max() - ids.min() + 1
    assert span > len(ids)  # not 0..n-1 or any other contiguous block
    assert set(files["truth"][ID_COLUMN]) == set(ids)
    assert len(files["truth"]) == len(ids)
    assert set(files["truth"][LABEL_COLUMN].unique()) <= {0, 1}


def test_deterministic_by_seed(tmp_path: Path):
    a = generate(tmp_path / "a", train_rows=2_000, score_rows=300, seed=3)
    b = generate(tmp_path / "b", train_rows=2_000, score_rows=300, seed=3)
    c = generate(tmp_path / "c", train_rows=2_000, score_rows=300, seed=4)
    for name in ("train.csv", "submission.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert a["train_positive_rate"] == b["train_positive_rate"]
    assert c["train_rows"] == 2_000


@pytest.mark.parametrize("column, train_rate, test_rate", [
    ("customer_type", 0.74, 0.28),
    ("business_area", 0.69, 0.55),
    ("expected_timeline", 0.52, 0.46),
    ("inquiry_type", 0.016, 0.25),
    ("customer_job", 0.32, 0.27),
    ("historical_existing_cnt", 0.77, 0.76),
])
def test_missing_rates_near_spec(files, column, train_rate, test_rate):
    assert files["train"][column].isna().mean() == pytest.approx(train_rate, abs=0.03)
    assert files["score"][column].isna().mean() == pytest.approx(test_rate, abs=0.05)


def test_placeholder_description_length(files):
    assert (files["train"]["lead_desc_length"] == 3).mean() == pytest.approx(0.18, abs=0.02)
    assert (files["score"]["lead_desc_length"] == 3).mean() == pytest.approx(0.31, abs=0.04)


def test_column_rules(files):
    for df in (files["train"], files["score"]):
        a, b = df["customer_country"], df["customer_country.1"]
        assert ((a == b) | (a.isna() & b.isna())).all()
        # ver_win_rate_x: a function of business_area, missing iff business_area missing
        assert (df["ver_win_rate_x"].isna() == df["business_area"].isna()).all()
        assert (df.groupby("business_area")["ver_win_rate_x"].nunique() == 1).all()
        # ver_win_ratio_per_bu: a function of (area, unit); missing for IT
        assert (df.groupby(["business_area", "business_unit"])["ver_win_ratio_per_bu"].nunique(dropna=False) == 1).all()
        assert df.loc[df["business_unit"] == "IT", "ver_win_ratio_per_bu"].isna().all()
        assert df.loc[df["business_area"].isna(), "ver_win_ratio_per_bu"].isna().all()
        # com_reg_ver_win_rate: a function of (area, unit, corporate) where present
        present = df.dropna(subset=["com_reg_ver_win_rate"])
        assert present["business_area"].notna().all()
        assert (present.groupby(["business_area", "business_unit", "response_corporate"])
                ["com_reg_ver_win_rate"].nunique() == 1).all()
        # subarea only with an area
        assert df.loc[df["business_area"].isna(), "business_subarea"].isna().all()
        # strategic flags: 1 or missing, exactly for the right pairs
        strategic = df["business_area"].isin(STRATEGIC_AREAS)
        for col, unit in (("id_strategic_ver", "ID"), ("it_strategic_ver", "IT")):
            assert set(df[col].dropna().unique()) == {1.0}
            assert (df[col].notna() == (strategic & (df["business_unit"] == unit))).all()
        either = df["id_strategic_ver"].notna() | df["it_strategic_ver"].notna()
        assert (df["idit_strategic_ver"].notna() == either).all()
        assert set(df["idit_strategic_ver"].dropna().unique()) == {1.0}
        # ver_cus
        expected = df["customer_type"].isin(END_CUSTOMER_SPELLINGS) & df["business_area"].isin(VER_CUS_AREAS)
        assert (df["ver_cus"] == expected.astype(int)).all()
        assert df["ver_cus"].sum() > 0
        assert set(df["ver_pro"].unique()) <= {0, 1}
        assert set(df["bant_submit"].unique()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
        assert set(df["enterprise"].unique()) == {"Enterprise", "SMB"}


def test_business_units_and_cardinalities(files):
    train, score = files["train"], files["score"]
    assert set(train["business_unit"].unique()) >= {"ID", "AS", "IT"}
    assert set(score["business_unit"].unique()) <= {"ID", "AS", "IT"}
    assert train["business_area"].nunique() == 12
    assert train["customer_country"].nunique() > 0.15 * TRAIN_ROWS
    assert 25 <= train["customer_type"].nunique() <= 35
    assert 40 <= train["response_corporate"].nunique() <= 53
    # response_corporate is nearly a function of the parsed country
    country = train["customer_country"].str.split("/").str[-1].str.strip()
    top = train.assign(c=country).groupby("c")["response_corporate"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert top[country.value_counts().index[:5]].min() > 0.9


def test_customer_repeaters(files):
    train = files["train"]
    counts = train["customer_idx"].value_counts()
    # catch-all id with ~13% of rows at ~1% conversion; another id ~4% of rows all converted
    catch_all, all_converted = counts.index[0], counts.index[1]
    assert counts.iloc[0] / len(train) == pytest.approx(0.13, abs=0.02)
    assert train.loc[train["customer_idx"] == catch_all, LABEL_COLUMN].mean() < 0.03
    assert counts.iloc[1] / len(train) == pytest.approx(0.041, abs=0.01)
    assert train.loc[train["customer_idx"] == all_converted, LABEL_COLUMN].all()
    assert train["customer_idx"].nunique() / len(train) == pytest.approx(35_112 / 59_299, abs=0.05)


def test_messy_spellings_present(files):
    train = files["train"]
    types = set(train["customer_type"].dropna())
    assert {"End-Customer", "End Customer", "End-user", "Homeowner", "Home Owner", "Etc.", "Others"} <= types
    assert {"Specifier / Influencer", "Specifier/ Influencer"} <= types
    inquiries = set(train["inquiry_type"].dropna())
    assert "quotation_or_purchase_consultation" in inquiries
    assert {"Etc.", "ETC."} & inquiries
    timelines = set(train["expected_timeline"].dropna())
    assert {"less than 3 months", "less_than_3_months", "less then 6 months", "9 months - 1 year"} <= timelines
    positions = set(train["customer_position"])
    assert {"none", "others", "other"} <= positions
    countries = train["customer_country"].dropna()
    assert countries.str.startswith("//").any()
    assert countries.str.contains(r"^/  / ", regex=True).any()
    assert (countries == "Corporate /  /").any()
    assert countries.str.isupper().any()
    slashes = countries.str.count("/")
    assert {0, 1, 2, 3, 4} <= set(slashes.unique())


def test_multi_product_lists_round_trip(files):
    raw_text = (files["dir"] / "train.csv").read_text(encoding="utf-8")
    train = files["train"]
    multi = train["product_category"].dropna()
    multi = multi[multi.str.contains(",")]
    assert len(multi) > 20
    # quoted in the file, read back as one field by pandas
    assert f'"{multi.iloc[0]}"' in raw_text
    assert train.shape[1] == len(LEAD_COLUMN_NAMES) + 1


def test_duckdb_reads_both_files(files):
    con = duckdb.connect()
    train_path = str(files["dir"] / "train.csv")
    score_path = str(files["dir"] / "submission.csv")
    cols = con.execute(f"select * from read_csv('{train_path}', header=true) limit 1").description
    assert len(cols) == len(LEAD_COLUMN_NAMES) + 1
    assert [c[0] for c in cols] == [*LEAD_COLUMN_NAMES, LABEL_COLUMN]
    n, n_multi = con.execute(
        f"select count(*), count(*) filter (where product_category like '%,%') "
        f"from read_csv('{train_path}', header=true)").fetchone()
    assert n == TRAIN_ROWS and n_multi == files["train"]["product_category"].str.contains(",", na=False).sum()
    cols = con.execute(f"select * from read_csv('{score_path}', header=true) limit 1").description
    assert len(cols) == len(LEAD_COLUMN_NAMES) + 2


def test_score_rows_have_unseen_values(files):
    train, score = files["train"], files["score"]
    cust = pd.Series(score["customer_idx"].unique())
    assert (~cust.isin(train["customer_idx"])).mean() > 0.5
    owners = pd.Series(score["lead_owner"].unique())
    assert 0.25 < (~owners.isin(train["lead_owner"])).mean() < 0.6
    models = pd.Series(score["product_modelname"].dropna().unique())
    assert (~models.isin(train["product_modelname"])).any()


def test_default_score_prevalence_is_train_like(files):
    assert files["truth"][LABEL_COLUMN].mean() == pytest.approx(0.082, abs=0.02)


def test_score_prevalence_rebalances(tmp_path: Path):
    generate(tmp_path, train_rows=2_000, score_rows=1_500, seed=1, truth_path=tmp_path / "truth.csv",
             score_prevalence=0.33)
    truth = pd.read_csv(tmp_path / "truth.csv")
    score = pd.read_csv(tmp_path / "submission.csv")
    assert len(truth) == len(score) == 1_500
    assert truth[LABEL_COLUMN].mean() == pytest.approx(0.33, abs=0.01)
    assert list(truth[ID_COLUMN]) == list(score[ID_COLUMN])


def test_rejects_bad_arguments(tmp_path: Path):
    with pytest.raises(LeadscoreError):
        generate(tmp_path, train_rows=0)
    with pytest.raises(LeadscoreError):
        generate(tmp_path, train_rows=100, score_rows=10, score_prevalence=1.5)


def test_label_depends_on_cleaned_meaning(files):
    """Spelling variants of one category convert alike: the label follows meaning, not spelling."""
    train = files["train"]
    y = train[LABEL_COLUMN].astype(float)
    timeline = train["expected_timeline"].str.lower().str.replace("_", " ")
    short = y[timeline == "less than 3 months"].mean()
    long = y[timeline == "more than a year"].mean()
    assert short > long
    bant = train.groupby("bant_submit")[LABEL_COLUMN].mean()
    assert bant.loc[1.0] > bant.loc[0.0]
    # placeholder description length converts less
    assert y[train["lead_desc_length"] == 3].mean() < y[train["lead_desc_length"] != 3].mean()
    # owners range widely (ids carry signal)
    owners = train.groupby("lead_owner")[LABEL_COLUMN].agg(["mean", "size"])
    big = owners[owners["size"] >= 20]["mean"]
    assert big.max() - big.min() > 0.2
    assert np.isfinite(big).all()


SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"


def test_spelling_families_are_spread(files):
    """No single spelling dominates its family, so label-encoding raw spellings splits the signal."""
    train = files["train"]
    types = train["customer_type"].value_counts(normalize=True)
    end_customer = types[[s for s in END_CUSTOMER_SPELLINGS if s in types.index]]
    assert end_customer.max() / end_customer.sum() < 0.6
    jobs = train["customer_job"].dropna()
    engineering = jobs[jobs.str.lower().str.strip().isin({"engineering", "engineer", "engineers"})]
    assert engineering.value_counts(normalize=True).iloc[0] < 0.6
    inquiries = train["inquiry_type"].dropna().str.lower().str.replace("_", " ")
    quotation = train.loc[inquiries.index[inquiries == "quotation or purchase consultation"], "inquiry_type"]
    assert quotation.value_counts(normalize=True).iloc[0] < 0.7


def test_score_drift_brings_later_form_spellings(tmp_path):
    """With score_drift the score file brings spellings training never saw (capitals from a later
    form version) and the all-converting id is rarer; without it, neither."""
    for drift in (True, False):
        out = tmp_path / str(drift)
        generate(out, train_rows=TRAIN_ROWS, score_rows=SCORE_ROWS, seed=7, score_drift=drift)
        train = pd.read_csv(out / "train.csv", low_memory=False)
        score = pd.read_csv(out / "submission.csv", low_memory=False)
        capitals = [
            any(v.isupper() for v in set(score[col].dropna()) - set(train[col].dropna()))
            for col in ("customer_type", "inquiry_type", "expected_timeline")
        ]
        all_converted = train["customer_idx"].value_counts().index[1]
        share = (score["customer_idx"] == all_converted).mean()
        if drift:
            assert all(capitals) and share < 0.02
        else:
            assert not any(capitals) and share > 0.025


def test_subsidiary_outside_home_country_converts_less(files):
    """A lead answered by a subsidiary other than its country's own converts less (needs the parsed country)."""
    train = files["train"]
    counts = train["customer_idx"].value_counts()
    train = train[~train["customer_idx"].isin(counts.index[:2])]
    country = train["customer_country"].str.split("/").str[-1].str.strip()
    home = train.assign(c=country).groupby("c")["response_corporate"].agg(lambda s: s.value_counts().index[0])
    known = country.isin(home.index[train.assign(c=country).groupby("c").size().reindex(home.index) >= 200])
    stray = known & (train["response_corporate"] != country.map(home))
    y = train[LABEL_COLUMN].astype(float)
    assert stray.sum() > 100
    assert y[stray].mean() < 0.6 * y[known & ~stray].mean()


def test_dbt_seeds_cover_what_the_generator_emits():
    """Every subsidiary code has its home country in subsidiary_countries; every country has a region."""
    from leadscore.generate import COUNTRIES, COUNTRY_REGION
    subsidiaries = pd.read_csv(SEEDS / "subsidiary_countries.csv").set_index("response_corporate")["country"]
    regions = pd.read_csv(SEEDS / "country_regions.csv").set_index("country")["region"]
    for code in {c[2] for c in COUNTRIES}:
        home = next(c[0] for c in COUNTRIES if c[2] == code)
        assert subsidiaries.get(code) == home.lower(), code
    for name, *_ in COUNTRIES:
        assert regions.get(name.lower()) == COUNTRY_REGION[name], name
