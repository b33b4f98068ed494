"""DDL of every table the Python job writes (dbt owns everything it builds).

Two schemas: `raw` holds what came in (leads, the load log, rejected rows) and `ops` what the
job did (score history, nightly runs, evaluations, dbt runs). Both are dbt sources, so they are documented and tested
beside the models that read them. `ensure_schemas` is idempotent and runs inside the caller's
transaction.
"""

from __future__ import annotations

import duckdb

from leadscore import db
from leadscore.input_format import LEAD_COLUMNS

RAW_DDL = [
    "create schema if not exists raw",
    """
    create table if not exists raw.loads (
        load_id integer primary key,
        file_name varchar not null,
        file_path varchar not null,
        sha256 varchar not null unique,
        declared_kind varchar not null,
        rows_loaded bigint not null,
        rows_rejected bigint not null,
        train_rows bigint not null,
        score_rows bigint not null,
        extra_columns varchar[],
        loaded_at timestamp not null
    )
    """,
    "create table if not exists raw.leads (\n"
    "    lead_id varchar primary key,\n"
    "    load_id integer not null,\n"
    "    source_row bigint not null,\n"
    "    id bigint,\n"
    + "".join(f"    {db.quote_ident(c.name)} {c.sql_type},\n" for c in LEAD_COLUMNS)
    + "    is_converted boolean,\n"
    "    extra_columns json,\n"
    "    loaded_at timestamp not null\n"
    ")",
    # Files are known by content. status 'refused': the nightly job quarantined a bad file
    # (reason says why); it is not retried until its content changes.
    "alter table raw.loads add column if not exists status varchar default 'loaded'",
    "alter table raw.loads add column if not exists reason varchar",
    # Labels found in a file loaded as a score file (e.g. an earlier export, or the competition's
    # test file after a submission): kept here, never trained on; the lead itself is scored.
    """
    create table if not exists raw.set_aside_labels (
        load_id integer not null,
        lead_id varchar not null,
        id bigint,
        source_row bigint not null,
        raw_value varchar,
        is_converted boolean,
        set_aside_at timestamp not null
    )
    """,
    """
    create table if not exists raw.rejected_rows (
        load_id integer not null,
        file_path varchar not null,
        source_row bigint not null,
        column_name varchar not null,
        raw_value varchar,
        reason varchar not null,
        raw_record json,
        rejected_at timestamp not null
    )
    """,
]

OPS_DDL = [
    "create schema if not exists ops",
    """
    create table if not exists ops.score_history (
        lead_id varchar not null,
        model_version varchar not null,
        run_id varchar not null,
        scored_at timestamp not null,
        conversion_probability double not null,
        predicted_converted boolean not null,
        cutoff double not null,
        rank_in_run bigint not null,
        decile_in_run integer not null,
        primary key (lead_id, model_version, run_id)
    )
    """,
    """
    create table if not exists ops.nightly_runs (
        run_id varchar primary key,
        started_at timestamp not null,
        ended_at timestamp,
        status varchar not null,
        input_dir varchar,
        files_loaded integer,
        rows_ingested bigint,
        rows_rejected bigint,
        trained_model varchar,
        model_version varchar,
        leads_scored bigint,
        error varchar
    )
    """,
    # one row per `leadscore evaluate` (leadscore.evaluate): scores against outcomes known later
    """
    create table if not exists ops.evaluations (
        evaluation_id varchar primary key,
        evaluated_at timestamp not null,
        model_version varchar not null,
        cutoff double not null,
        labels_path varchar not null,
        labels_sha256 varchar not null,
        label_rows bigint not null,
        rows_matched bigint not null,
        rows_unmatched bigint not null,
        positives bigint not null,
        actual_positive_rate double not null,
        flagged bigint not null,
        flagged_share double not null,
        precision_at_cutoff double not null,
        recall_at_cutoff double not null,
        f1_at_cutoff double not null,
        best_f1 double not null,
        best_cutoff double not null,
        auc double,
        average_precision double,
        log_loss double not null,
        brier double not null,
        report_path varchar
    )
    """,
    # one row per dbt invocation against this database, inserted by dbt's on-run-end hook
    # (dbt_project/macros/record_dbt_run.sql), so a registered model can name the dbt build that
    # produced its features
    """
    create table if not exists ops.dbt_runs (
        invocation_id varchar primary key,
        command varchar,
        finished_at timestamp,
        nodes integer,
        failed integer
    )
    """,
]


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in (*RAW_DDL, *OPS_DDL):
        con.execute(ddl)
