"""Helpers shared by several test modules (fixtures live in conftest.py): competition-format CSV
files to ingest, running the CLI in process, comparing the raw schema before and after a failed
command, and a synthetic feature table to train on."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from leadscore import cli
from leadscore import features as feat
from leadscore import model as model_mod
from leadscore.input_format import LEAD_COLUMN_NAMES

REPO = Path(__file__).resolve().parents[1]

# -- input files ------------------------------------------------------------------------------

BASE_ROW = {
    "bant_submit": "0.5",
    "customer_country": "/Lima/Peru",
    "business_unit": "ID",
    "com_reg_ver_win_rate": "0.05",
    "customer_idx": "1234",
    "customer_type": "End-Customer",
    "enterprise": "SMB",
    "historical_existing_cnt": "",
    "id_strategic_ver": "",
    "it_strategic_ver": "",
    "idit_strategic_ver": "",
    "customer_job": "engineering",
    "lead_desc_length": "42",
    "inquiry_type": "Quotation or purchase consultation",
    "product_category": "interactive digital board, video wall",
    "product_subcategory": "",
    "product_modelname": "",
    "customer_country.1": "/Lima/Peru",
    "customer_position": "manager",
    "response_corporate": "LGEPR",
    "expected_timeline": "less than 3 months",
    "ver_cus": "1",
    "ver_pro": "0",
    "ver_win_rate_x": "0.003",
    "ver_win_ratio_per_bu": "0.02",
    "business_area": "retail",
    "business_subarea": "",
    "lead_owner": "7",
}


def write_csv(path: Path, rows: list[dict], with_id: bool = False, label: bool = True,
              drop: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> Path:
    header = (["id"] if with_id else []) + [c for c in LEAD_COLUMN_NAMES if c not in drop]
    header += (["is_converted"] if label else []) + list(extra)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**BASE_ROW, **r})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def train_rows(n: int = 5, start: int = 100) -> list[dict]:
    return [{"customer_idx": str(start + i), "is_converted": "True" if i % 3 == 0 else "False"} for i in range(n)]


def score_rows(n: int = 4, start: int = 1001) -> list[dict]:
    return [{"id": str(start + 7 * i), "is_converted": ""} for i in range(n)]


# -- the CLI and the database -------------------------------------------------------------------

def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`leadscore <argv>` in process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run whose database (and models, serving) live in `data_dir`."""
    return dict(os.environ, LEADSCORE_DB=str(data_dir / "leadscore.duckdb"), LEADSCORE_HOME=str(REPO), **extra)


def leadscore_cli(data_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """`leadscore ARGS` in a subprocess, with its database (and models, serving) in `data_dir`
    and any extra environment variables."""
    return subprocess.run([sys.executable, "-m", "leadscore.cli", *args], env=cli_env(data_dir, **extra_env),
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=False)


def copy_pipeline(template: Path, dest: Path) -> Path:
    """A private copy of conftest's pipeline_template in `dest`: data/ (database, models,
    serving snapshot) and incoming/ (the generated files it ingested)."""
    shutil.copytree(template / "data", dest / "data")
    shutil.copytree(template / "incoming", dest / "incoming")
    return dest


@contextmanager
def feature_database(tmp_path_factory: pytest.TempPathFactory, name: str, **table: Any) -> Iterator[Path]:
    """A module's own folder with a synthetic feature table (make_feature_table(**table)) in its
    database, LEADSCORE_DB/LEADSCORE_HOME pointing at it while the block runs: for module
    fixtures that train once (their models/ lands beside the database)."""
    db_file = tmp_path_factory.mktemp(name) / "leadscore.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEADSCORE_DB", str(db_file))
        mp.setenv("LEADSCORE_HOME", str(REPO))
        make_feature_table(db_file, **table)
        yield db_file


def copy_data_dir(src: Path, dest: Path) -> Path:
    """Everything in `src` (a database file, models/ and the rest beside it) into `dest`, which
    may exist already (a test's tmp_path): a private copy of a module's trained database."""
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest


def rows_of(db_file: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def snapshot(db_file: Path) -> dict:
    """Everything in the raw schema, to compare before/after a failed command."""
    if not db_file.exists():
        return {}
    con = duckdb.connect(str(db_file), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
        ).fetchall()]
        return {t: con.execute(f"select * from raw.{t} order by all").fetchall() for t in tables}
    finally:
        con.close()


def assert_fails_unchanged(db_file, capsys, argv, *fragments):
    """The command fails with a one-line error holding every fragment, and the raw schema is as it was."""
    before = snapshot(db_file)
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert err.count("\n") == 1, f"expected a one-line error, got {err!r}"
    for fragment in fragments:
        assert fragment in err, err
    assert snapshot(db_file) == before


# -- a feature table to train on ------------------------------------------------------------------

def make_feature_table(path: Path, n_train: int = 1500, n_score: int = 500, seed: int = 0,
                       shuffle_labels: bool = False, signal: float = 1.0, intercept: float = -3.6) -> pd.DataFrame:
    """Write a synthetic main.fct_lead_features (all supported column types, nulls, a category
    that only appears in score rows) into the DuckDB file at `path`. Returns the score rows'
    true labels (lead_id, is_converted)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_score
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    x3 = rng.exponential(size=n)
    cat_a = rng.choice(["retail", "education", "hotel", "office", "government", "other"], size=n)
    cat_b = rng.choice([f"owner{i}" for i in range(30)], size=n)
    flag = rng.random(n) < 0.3
    effect_a = pd.Series(cat_a).map({"retail": 1.0, "education": 0.5, "hotel": 0.0, "office": -0.5,
                                     "government": -1.0, "other": 0.0}).to_numpy()
    z = signal * (1.3 * x1 + 0.9 * np.sin(2 * x2) + 0.8 * effect_a + 0.9 * flag + 0.8 * (x1 > 1) * (x3 > 1)) + intercept
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    if shuffle_labels:
        y = rng.permutation(y)
    x1_obs = np.where(rng.random(n) < 0.15, np.nan, x1)
    cat_b_obs = np.where(rng.random(n) < 0.1, None, cat_b).astype(object)
    split = np.array(["train"] * n_train + ["score"] * n_score)
    cat_a = cat_a.astype(object)
    cat_a[n_train:][rng.random(n_score) < 0.05] = "never seen in training"
    df = pd.DataFrame({
        "lead_id": [f"L{i:06d}" for i in range(n)],
        "id": np.where(split == "score", np.arange(n), -1),
        "split": split,
        "is_converted": np.where(split == "train", y, None),
        "x1": x1_obs, "x2": x2.astype(np.float32), "x3": x3,
        "n_items": rng.integers(0, 50, size=n),
        "flag": flag,
        "cat_a": cat_a, "cat_b": cat_b_obs,
    })
    con = duckdb.connect(str(path))
    try:
        con.register("synthetic", df)
        con.execute(
            "create or replace table main.fct_lead_features as select lead_id, "
            "case when id >= 0 then id end::bigint as id, split, is_converted::boolean as is_converted, "
            "x1::double as x1, x2::float as x2, x3::decimal(12,4) as x3, n_items::integer as n_items, "
            "flag::boolean as flag, cat_a::varchar as cat_a, cat_b::varchar as cat_b from synthetic"
        )
        con.unregister("synthetic")
    finally:
        con.close()
    return pd.DataFrame({"lead_id": df["lead_id"][n_train:].to_numpy(), "is_converted": y[n_train:]})


def add_time_blocks(path: Path, blocks: int = 6) -> None:
    """What `dbt build` adds beside a feature table whose training rows carry a lead_date:
    main.fct_lead_validation_history, each dated training lead's time block (blocks of about
    equal size, a day never split), here with no history column to stand in for (a hand-built
    table has none)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "create or replace table main.fct_lead_validation_history as select lead_id, "
            f"cast(floor({blocks} * (count(*) over (order by lead_date range between unbounded preceding "
            "and interval 1 day preceding)) / count(*) over ()) as integer) as history_block "
            "from main.fct_lead_features where split = 'train' and lead_date is not null")
    finally:
        con.close()


# -- training ---------------------------------------------------------------------------------------

# small budgets for train.train_model in test_train and test_train_studies
SMALL_TRAINING = {"trials": 2, "folds": 3, "progress": False}


def score_with_current_model(db_file: Path) -> pd.DataFrame:
    """The score rows of main.fct_lead_features with the current model's probability (p) and
    decision at its cutoff (pred): test_train's and test_train_studies' check of a trained model."""
    con = duckdb.connect(str(db_file))
    try:
        model = model_mod.load_model(con)
        df = feat.load_split(con, "score").drop(columns=[feat.LABEL])  # null on score rows
    finally:
        con.close()
    df["p"] = model.predict_proba(df)
    df["pred"] = df["p"] >= model.cutoff
    return df
