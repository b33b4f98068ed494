"""`generate --schema final`: the final round's six columns, in time order, and a label that depends on them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.cli import main
from leadscore.errors import LeadscoreError
from leadscore.generate import generate
from leadscore.input_format import FINAL_COLUMN_NAMES, FINAL_COLUMNS, ID_COLUMN, LABEL_COLUMN, LEAD_COLUMN_NAMES

TRAIN_ROWS = 20_000
SCORE_ROWS = 2_000
FLAG_SPELLINGS = {"yes", "y", "true", "no", "n", "false"}  # compared lower-cased
TRUE_SPELLINGS = {"yes", "y", "true"}

# md5 of the qualifier files (train_rows=2000, score_rows=300, truth written) as the generator wrote
# them before --schema existed: the qualifier output must never change for a seed.
QUALIFIER_MD5 = {
    0: {"train.csv": "e801e550270724695bf26513f7ca334c", "submission.csv": "1389906b1769166c5c68f5ca4a88bd76",
        "truth.csv": "ce15360be154079c1c66195349388a0f"},
    11: {"train.csv": "eafb8d5bd3ef96be5d5529f36f35c63a", "submission.csv": "47bd0f543779a6564d804daa2215f43a",
         "truth.csv": "e417ce5b7342182e4d9731dd1791ec42"},
}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("final")
    info = generate(out, train_rows=TRAIN_ROWS, score_rows=SCORE_ROWS, seed=7, truth_path=out / "truth.csv",
                    schema="final")
    info["dir"] = out
    info["train"] = _read(out / "train.csv")
    info["score"] = _read(out / "submission.csv")
    info["truth"] = pd.read_csv(out / "truth.csv")
    return info


def _rate(train: pd.DataFrame, mask) -> float:
    return float((train.loc[mask, LABEL_COLUMN] == "True").mean())


def test_final_columns_after_the_28_and_before_the_label(files):
    train_header = (files["dir"] / "train.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    score_header = (files["dir"] / "submission.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert train_header == ",".join([*LEAD_COLUMN_NAMES, *FINAL_COLUMN_NAMES, LABEL_COLUMN])
    assert score_header == ",".join([ID_COLUMN, *LEAD_COLUMN_NAMES, *FINAL_COLUMN_NAMES, LABEL_COLUMN])
    assert len(files["train"]) == TRAIN_ROWS and len(files["score"]) == SCORE_ROWS
    assert set(files["score"][LABEL_COLUMN]) == {""}


def test_values_have_the_types_input_format_declares(files):
    for frame in (files["train"], files["score"]):
        for column in FINAL_COLUMNS:
            values = frame[column.name]
            if column.sql_type == "DATE":
                assert values.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
                assert pd.to_datetime(values, format="%Y-%m-%d").notna().all()
            elif column.sql_type == "BOOLEAN":
                given = values[values != ""]
                assert set(given.str.lower()) <= FLAG_SPELLINGS, column.name
                assert len(given) > 0.9 * len(values)
            else:
                assert column.sql_type == "VARCHAR"
    assert set(files["train"]["customer_history"]) == {"yes", "no"}
    transfer = set(files["train"]["transfer_agreement"])
    assert {"yes", "no", "Y", "N", "true", "false", ""} <= transfer


def test_dates_in_arrival_order_and_score_leads_come_after(files):
    train_dates = pd.to_datetime(files["train"]["lead_date"])
    score_dates = pd.to_datetime(files["score"]["lead_date"])
    assert train_dates.is_monotonic_increasing and score_dates.is_monotonic_increasing
    assert (train_dates.max() - train_dates.min()).days >= 700  # about two years
    assert score_dates.min() > train_dates.max()
    assert (score_dates.max() - train_dates.max()).days <= 62  # the next one to two months
    assert (score_dates.min() - train_dates.max()).days <= 3
    weekend = train_dates.dt.day_of_week >= 5
    assert 0.03 < weekend.mean() < 0.2  # fewer leads at the weekend


def test_customer_history_agrees_with_earlier_leads(files):
    leads = pd.concat([files["train"][["customer_idx", "customer_history"]],
                       files["score"][["customer_idx", "customer_history"]]], ignore_index=True)
    repeat = leads.duplicated("customer_idx")  # the customer has an earlier lead in the files
    assert repeat.sum() > 1_000
    assert (leads.loc[repeat, "customer_history"] == "yes").all()
    first = leads.loc[~repeat, "customer_history"]
    assert 0.05 < (first == "yes").mean() < 0.6  # records from before the files, for some


def test_channels_budgets_and_descriptions_look_typed_by_people(files):
    train = files["train"]
    channels = set(train["lead_from_channel"])
    assert {"Web Form", "web_form", "Trade Show", "Partner Referral", "Email Campaign", "Chat", ""} <= channels
    budgets = set(train["expected_budget"])
    assert {"$10,000 - $50,000", "Less than $10K", "10k-50k USD", "More than $1M", "TBD", ""} <= budgets
    assert any("억" in b for b in budgets) and any(b.startswith("€") for b in budgets)
    text = train["lead_description"]
    assert (text == "").mean() > 0.05
    assert text.str.contains(r"@example\.(?:com|org|net)", regex=True).mean() > 0.05
    assert text.str.contains(r"\d{3}[ -]\d{3,4}", regex=True).mean() > 0.05  # phone numbers
    assert text.str.contains("brochure", case=False).any() and text.str.contains("quote", case=False).any()
    assert text.str.contains(r"[áãçéíóú]", regex=True).any()  # some Spanish / Portuguese
    has_text = train["lead_desc_length"] != "3"
    assert (train.loc[has_text, "lead_desc_length"].astype(int) == text[has_text].str.len()).all()
    assert (text[~has_text].str.len() <= 3).all()
    assert text.str.len().max() > 300


def test_label_depends_on_the_new_columns(files):
    train = files["train"]
    assert 0.075 <= files["train_positive_rate"] <= 0.09
    budget = train["expected_budget"]
    big = budget.str.contains(r"1M|1,000,000|million|500,000|\$100,000 - |100k-500k|억", regex=True)
    vague = budget.isin(["", "TBD", "tbd", "Not sure", "To be decided", "N/A", "unknown", "Not decided yet", "TBC"])
    assert _rate(train, big) > 1.3 * _rate(train, vague)
    channel = train["lead_from_channel"].str.lower()
    partner = channel.str.contains("partner")
    social = channel.isin(["social media", "social_media", "linkedin", "facebook"])
    assert _rate(train, partner) > _rate(train, social) + 0.015
    text = train["lead_description"].str.lower()
    project = text.str.contains(r"need \d+|\d+ units|\d+ pcs|tender", regex=True)
    brochure = text.str.contains("brochure|catalog|information about", regex=True) & ~project
    assert _rate(train, project) > 1.5 * _rate(train, brochure)
    history = train["customer_history"] == "yes"
    assert _rate(train, history) > _rate(train, ~history) + 0.02


def test_options_still_work_with_final(tmp_path: Path):
    info = generate(tmp_path, train_rows=3_000, score_rows=400, seed=5, truth_path=tmp_path / "truth.csv",
                    score_prevalence=0.33, score_drift=True, schema="final")
    score, truth = _read(tmp_path / "submission.csv"), pd.read_csv(tmp_path / "truth.csv")
    assert len(score) == 400 and list(truth[ID_COLUMN]) == list(score[ID_COLUMN].astype(np.int64))
    assert truth[LABEL_COLUMN].mean() == pytest.approx(0.33, abs=0.01)
    assert info["score_positive_rate"] == pytest.approx(truth[LABEL_COLUMN].mean())
    dates = pd.to_datetime(score["lead_date"])
    assert dates.is_monotonic_increasing
    assert dates.min() > pd.to_datetime(_read(tmp_path / "train.csv")["lead_date"]).max()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate(tmp_path / name, train_rows=2_000, score_rows=300, seed=seed, schema="final")
    for name in ("train.csv", "submission.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


@pytest.mark.parametrize("seed", sorted(QUALIFIER_MD5))
def test_qualifier_output_unchanged(tmp_path: Path, seed: int):
    for name, kwargs in (("default", {}), ("explicit", {"schema": "qualifier"})):
        out = tmp_path / name
        generate(out, train_rows=2_000, score_rows=300, seed=seed, truth_path=out / "truth.csv", **kwargs)
        md5 = {f: hashlib.md5((out / f).read_bytes()).hexdigest() for f in QUALIFIER_MD5[seed]}
        assert md5 == QUALIFIER_MD5[seed], name


def test_final_file_holds_the_qualifier_rows(tmp_path: Path):
    """The final columns come from their own random stream: the 28 columns are the qualifier file's rows,
    in date order (lead_desc_length aside: it is the length of the description)."""
    generate(tmp_path / "q", train_rows=2_000, score_rows=300, seed=0)
    generate(tmp_path / "f", train_rows=2_000, score_rows=300, seed=0, schema="final")
    for name in ("train.csv", "submission.csv"):
        cols = [c for c in LEAD_COLUMN_NAMES if c != "lead_desc_length"]
        q, f = _read(tmp_path / "q" / name)[cols], _read(tmp_path / "f" / name)[cols]
        assert sorted(map(tuple, q.to_numpy().tolist())) == sorted(map(tuple, f.to_numpy().tolist()))
        assert not q.equals(f)  # reordered by date


def test_bad_schema_refused(tmp_path: Path):
    with pytest.raises(LeadscoreError, match="schema"):
        generate(tmp_path, train_rows=100, score_rows=10, schema="semi-final")


def test_cli_passes_schema_through(tmp_path: Path):
    assert main(["generate", "--out", str(tmp_path), "--train-rows", "500", "--score-rows", "50", "--seed", "2",
                 "--schema", "final"]) == 0
    header = (tmp_path / "train.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    assert header[len(LEAD_COLUMN_NAMES):-1] == list(FINAL_COLUMN_NAMES)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", _read(tmp_path / "submission.csv")["lead_date"].iloc[0])
