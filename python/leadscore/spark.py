"""Apache Spark: the same feature store and the same scoring, distributed (README "Running on Spark").

Why this shape:
- One ingest. `leadscore ingest` validates every row (input_format's rules, in DuckDB) and, with
  `--parquet`, writes what it loaded as Parquet: one folder per table of the raw and ops schemas
  (`export_sources`). The dbt `spark` target makes each folder a table (dialect hooks,
  spark_source_tables), so the sources are the same rows on both engines and no second reader
  has to repeat the rules.
- One session configuration. `session_conf` is what profiles.yml's `spark` output sets (warehouse
  and Derby metastore under spark/ beside the DuckDB file), so `leadscore score --engine spark`
  sees the tables `dbt build --target spark` wrote.
- One model. Spark scoring loads the registered model inside each executor task (`mapInPandas`),
  checksums verified there, and calls the same `LoadedModel.predict_proba` as DuckDB scoring, so
  the probabilities are the same numbers. Rank, decile and the history row are computed as
  score.py does; the rows are appended to the Spark table ops.score_history (Parquet) and, in one
  transaction, to DuckDB's (and its ops.latest_scores), where scored_leads, call_list and the
  serving snapshot read them.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from leadscore import config, db, features, tables
from leadscore.score import ScoreResult
from leadscore.errors import LeadscoreError

SOURCE_SCHEMAS = ("raw", "ops")
FEATURE_TABLE = "main.fct_lead_features"
SETTINGS_TABLE = "main.feature_settings"
SCORE_HISTORY = "ops.score_history"
# reason_1..3 of a lead scored here: the executors predict only (TreeSHAP reasons cost about 80
# predictions per lead, see score.py); DuckDB scoring gives them
NO_REASONS = "not computed: scored with --engine spark (leadscore score --all rescores with reasons)"


def spark_dir() -> Path:
    """Warehouse, metastore and sources of the local Spark target: LEADSCORE_SPARK_DIR, else spark/
    beside the DuckDB file (the same rule as profiles.yml's `spark` output)."""
    env = os.environ.get("LEADSCORE_SPARK_DIR")
    return Path(env).resolve() if env else config.data_dir() / "spark"


def sources_dir() -> Path:
    """One folder per source table, <dir>/<schema>/<table> (macro spark_sources_dir)."""
    env = os.environ.get("LEADSCORE_SPARK_SOURCES")
    return Path(env).resolve() if env else config.data_dir() / "spark" / "sources"


def session_conf() -> dict[str, str]:
    """The Spark settings of profiles.yml's `spark` output, as absolute paths."""
    home = spark_dir()
    return {
        "spark.master": "local[2]",
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.log.level": "ERROR",
        "spark.ui.showConsoleProgress": "false",
    }


def require_pyspark() -> None:
    """pyspark comes with the optional `spark` extra (pyproject.toml), not with leadscore: without
    it, say what to install rather than let an ImportError read as a bug. Called before any
    `from pyspark ...` of this module."""
    try:
        import pyspark.sql  # noqa: F401
    except ImportError as exc:
        raise LeadscoreError(
            "Spark is not installed: install the spark extra, pip install -e '.[spark]' (pyspark 4 and "
            "dbt-spark; Spark also needs a Java 17+ runtime), or score with --engine duckdb, the default "
            f"(import error: {exc})"
        ) from exc


@contextmanager
def session(app_name: str = "leadscore") -> Iterator[Any]:
    """A Spark session configured like the dbt target (Hive catalogue in the local metastore),
    stopped on exit: a local session holds the Derby metastore, which one process opens at a time."""
    require_pyspark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).enableHiveSupport()
    for key, value in session_conf().items():
        builder = builder.config(key, value)
    # the executors' Python is this one, which has leadscore (on a cluster: install it there)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


# ------------------------------------------------------------------------------ raw data on Spark


def _source_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    placeholders = ", ".join("?" for _ in SOURCE_SCHEMAS)
    return [
        (r[0], r[1])
        for r in db.fetch_all(
            con,
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({placeholders}) and table_type in ('BASE TABLE', 'VIEW') order by 1, 2",
            list(SOURCE_SCHEMAS),
        )
    ]


def _export_select(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """Every column as Spark reads it from Parquet: JSON as text (Parquet's JSON annotation is
    not Spark's), the rest as DuckDB writes it."""
    columns = db.fetch_all(
        con,
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    )
    items = []
    for name, dtype in columns:
        quoted = db.quote_ident(name)
        items.append(f"cast({quoted} as varchar) as {quoted}" if dtype == "JSON" else quoted)
    return f"select {', '.join(items)} from {schema}.{db.quote_ident(table)}"


def export_sources(con: duckdb.DuckDBPyConnection, folder: Path | None = None) -> dict[str, int]:
    """Write every table of the raw and ops schemas as Parquet, <folder>/<schema>/<table>/, each
    folder replaced whole (written beside, then renamed), and each view as its rows are now
    (ops.known_outcomes: Spark reads the rule's result, not a second copy of the rule). Returns
    rows per `schema.table`."""
    folder = folder or sources_dir()
    tables.ensure_schemas(con)
    written: dict[str, int] = {}
    for schema, table in _source_tables(con):
        target = folder / schema / table
        staging = target.with_name(f".{table}.{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        part = str(staging / "part-0.parquet").replace("'", "''")
        con.execute(f"copy ({_export_select(con, schema, table)}) to '{part}' (format parquet)")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        written[f"{schema}.{table}"] = int(db.scalar(con, f"select count(*) from {schema}.{db.quote_ident(table)}"))
    return written


# ------------------------------------------------------------------------------ distributed scoring

# Spark's type names as DuckDB's, so a model's (name, DuckDB type) features check against the
# Spark table with features.check_features (the contract types the columns on both engines).
SPARK_TO_DUCKDB_TYPE = {
    "string": "VARCHAR",
    "double": "DOUBLE",
    "float": "FLOAT",
    "bigint": "BIGINT",
    "int": "INTEGER",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
}

HISTORY_SCHEMA = (
    "lead_id string, model_version string, run_id string, scored_at timestamp_ntz, "
    "conversion_probability double, predicted_converted boolean, cutoff double, rank_in_run bigint, "
    "decile_in_run int"
)


class SparkScoreResult(ScoreResult):
    """score.ScoreResult of a Spark run: the same fields, a summary that names both tables."""

    def summary(self) -> str:
        if not self.leads_scored:
            return (f"nothing to score on Spark: every unlabeled lead already has a score from {self.model_version} "
                    "(--all to rescore)")
        rate = self.leads_scored / self.seconds if self.seconds else 0.0
        return (f"scored {self.leads_scored} leads on Spark with model {self.model_version} as run {self.run_id} "
                f"({self.predicted_converted} at or above cutoff {self.cutoff:.4f}; {rate:,.0f} leads/s); "
                f"rows in Spark {SCORE_HISTORY} and DuckDB {SCORE_HISTORY}")


def spark_features(spark: Any, table: str = FEATURE_TABLE) -> list[features.Feature]:
    """The feature list of the Spark table, typed with DuckDB's names (key columns left out)."""
    if not spark.catalog.tableExists(table):
        raise LeadscoreError(f"Spark table {table} does not exist: run `dbt build --target spark` first")
    found = []
    for field in spark.table(table).schema.fields:
        if field.name in features.KEY_COLUMNS:
            continue
        spark_type = field.dataType.simpleString()
        sql_type = SPARK_TO_DUCKDB_TYPE.get(spark_type, spark_type.upper())
        kind = features.feature_kind(field.name, sql_type) or "numeric"
        found.append(features.Feature(field.name, sql_type, kind))
    return features.group_keys_last(found)


def spark_settings(spark: Any, table: str = SETTINGS_TABLE) -> dict[str, Any] | None:
    """The dbt vars the Spark feature table was built with (the same mart as DuckDB's), or None
    where the table does not exist."""
    if not spark.catalog.tableExists(table):
        return None
    return features.parse_settings(table, [r[0] for r in spark.table(table).select("feature_vars").collect()])


def predict_partitions(model_dir: str, checksum: str | None, columns: list[str]) -> Any:
    """The mapInPandas function: in each task, load the registered model from its folder (every
    checksum verified there, where the files are read) and score each Arrow batch with the same
    LoadedModel.predict_proba as DuckDB scoring; yields lead_id and the clipped probability."""

    def score_batches(batches: Iterator[Any]) -> Iterator[Any]:
        import numpy as np
        import pandas as pd

        from leadscore.model import load_model_dir

        model = load_model_dir(Path(model_dir), checksum)
        for frame in batches:
            probs = np.asarray(model.predict_proba(frame[columns]), dtype="float64")
            if probs.shape != (len(frame),) or not np.all(np.isfinite(probs)):
                raise LeadscoreError(f"model {model.version} returned invalid probabilities")
            yield pd.DataFrame({"lead_id": frame["lead_id"].astype(str), "conversion_probability": np.clip(probs, 0.0, 1.0)})

    return score_batches


def _history_table(spark: Any) -> None:
    """ops.score_history in Spark: the source table over its Parquet folder (what dbt's hook
    creates), created here when scoring runs before any Spark build."""
    if spark.catalog.tableExists(SCORE_HISTORY):
        return
    location = sources_dir() / "ops" / "score_history"
    spark.sql("create database if not exists ops")
    if location.is_dir():
        spark.sql(f"create table {SCORE_HISTORY} using parquet location '{location}'")
    else:
        spark.sql(f"create table {SCORE_HISTORY} ({HISTORY_SCHEMA}) using parquet location '{location}'")


def score_leads_spark(
    con: duckdb.DuckDBPyConnection,
    model_version: str | None = None,
    rescore: bool = False,
) -> SparkScoreResult:
    """Score the unlabeled leads of the Spark feature table that the model has not scored (DuckDB's
    ops.score_history is the record), append the rows to the Spark table ops.score_history and,
    in one transaction, to DuckDB's."""
    require_pyspark()  # before the model is loaded: a missing extra is the first thing to say
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from leadscore import registry
    from leadscore.model import load_model

    started = datetime.now(timezone.utc)
    model = load_model(con, model_version)  # checksums verified here too: fail before Spark starts
    row = registry.model_row(con, model.version)
    folder = registry.artifact_folder(row, con).resolve()
    tables.ensure_schemas(con)
    run_id = f"s{started:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    columns = ["lead_id", *[f.name for f in model.encoding.features]]
    with session("leadscore score") as spark:
        features.check_features(model.encoding.features, spark_features(spark))
        features.check_settings(model.version, model.feature_settings, spark_settings(spark))
        leads = spark.table(FEATURE_TABLE).where("split = 'score'")
        if not rescore:
            done = db.fetch_all(con, f"select distinct lead_id from {SCORE_HISTORY} where model_version = ?", [model.version])
            if done:
                scored = spark.createDataFrame([(r[0],) for r in done], "lead_id string")
                leads = leads.join(scored, "lead_id", "left_anti")
        probs = leads.select(*columns).mapInPandas(
            predict_partitions(str(folder), row["checksums_sha256"], columns),
            "lead_id string, conversion_probability double",
        )
        order = Window.orderBy(F.col("conversion_probability").desc(), F.col("lead_id"))
        history = probs.select(
            "lead_id",
            F.lit(model.version).alias("model_version"),
            F.lit(run_id).alias("run_id"),
            # as text: a Python datetime literal would go through the driver's local time zone
            F.lit(f"{started:%Y-%m-%d %H:%M:%S.%f}").cast("timestamp_ntz").alias("scored_at"),
            "conversion_probability",
            (F.col("conversion_probability") >= F.lit(float(model.cutoff))).alias("predicted_converted"),
            F.lit(float(model.cutoff)).alias("cutoff"),
            F.row_number().over(order).cast("bigint").alias("rank_in_run"),
            F.ntile(10).over(order).cast("int").alias("decile_in_run"),
        ).persist()
        try:
            total = history.count()
            if total:
                _history_table(spark)
                # the table's columns in its order; one this run does not fill (a later column of
                # ops.score_history) is null, as DuckDB's insert by name leaves it
                fields = spark.table(SCORE_HISTORY).schema.fields
                history.select(*[
                    F.col(f.name) if f.name in history.columns else F.lit(None).cast(f.dataType).alias(f.name)
                    for f in fields
                ]).write.insertInto(SCORE_HISTORY)
                rows = history.toArrow()
        finally:
            history.unpersist()
    if not total:
        return SparkScoreResult(run_id, model.version, 0, 0, float(model.cutoff), 0.0)
    # the run's rows as DuckDB's history has them; appended there, and kept as the latest score of
    # each lead for this model (ops.latest_scores, which main.scored_leads reads), in one transaction
    run_rows = (
        "(select lead_id, model_version, run_id, cast(scored_at as timestamp) as scored_at, conversion_probability, "
        "predicted_converted, cutoff, rank_in_run, decile_in_run, "
        + ", ".join(f"{db.quote_literal(NO_REASONS)} as reason_{k}" for k in (1, 2, 3))
        + " from _spark_scores)"
    )
    con.register("_spark_scores", rows)
    try:
        with db.transaction(con):
            con.execute(f"insert into {SCORE_HISTORY} by name select * from {run_rows}")
            tables.update_latest_scores(con, run_rows)
    finally:
        con.unregister("_spark_scores")
    positives = int(db.scalar(con, f"select count(*) filter (where predicted_converted) from {SCORE_HISTORY} where run_id = ?", [run_id]))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return SparkScoreResult(run_id, model.version, int(total), positives, float(model.cutoff), seconds)
