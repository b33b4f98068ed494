"""DDL of every table the Python job writes (dbt owns everything it builds).

Two schemas: `raw` holds what came in (leads, the load log, rejected rows) and `ops` what the
job did (score history, nightly runs, evaluations, the model registry, dbt runs). Both are dbt
sources, so they are documented and tested beside the models that read them; `main` is dbt's
(`main.model_registry` is a dbt view over ops.model_registry). `ensure_schemas` is
idempotent and runs inside the caller's transaction.
"""

from __future__ import annotations

import duckdb

from leadscore import db
from leadscore.input_format import FINAL_COLUMNS, LEAD_COLUMNS

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
    # No primary key on the two tables that take bulk appends (raw.leads, ops.score_history):
    # DuckDB's index made a 1M-row append 3.5x slower, held every key in memory and grew with
    # the table. Their keys are unique by construction (lead_id = md5 of file content and row;
    # a scoring run's own run_id), and dbt checks them every build (unique on
    # raw.leads.lead_id, unique_combination on ops.score_history). `drop_bulk_indexes` rebuilds
    # an older database's tables without them, once.
    "create table if not exists raw.leads (\n"
    "    lead_id varchar not null,\n"
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
    # The final round's optional columns (input_format.FINAL_COLUMNS), added in place to a raw.leads
    # created before them; null for rows from qualifier-format files.
    *(f"alter table raw.leads add column if not exists {db.quote_ident(c.name)} {c.sql_type}" for c in FINAL_COLUMNS),
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

# One scored lead: the columns of ops.score_history and ops.latest_scores (both add the reasons).
_SCORE_COLUMNS = (
    "lead_id varchar not null, model_version varchar not null, run_id varchar not null, "
    "scored_at timestamp not null, conversion_probability double not null, "
    "predicted_converted boolean not null, cutoff double not null, rank_in_run bigint not null, "
    "decile_in_run integer not null"
)

OPS_DDL = [
    "create schema if not exists ops",
    f"create table if not exists ops.score_history ({_SCORE_COLUMNS})",
    # the lead's three reasons (leadscore.reasons: the features with the largest log-odds
    # contributions, as sentences); null in rows written before reasons existed
    *(f"alter table ops.score_history add column if not exists reason_{k} varchar" for k in (1, 2, 3)),
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
    # the lead dates of the leads a run scored (final-round data carries lead_date; else null)
    "alter table ops.nightly_runs add column if not exists scored_from date",
    "alter table ops.nightly_runs add column if not exists scored_to date",
    # drift of the batches the run scored (leadscore.drift, main.batch_drift): how many were
    # checked and flagged, and the WARNING line of each flagged one (null when not checked)
    "alter table ops.nightly_runs add column if not exists drift_batches_checked integer",
    "alter table ops.nightly_runs add column if not exists drift_batches_flagged integer",
    "alter table ops.nightly_runs add column if not exists drift_warnings varchar",
    # champion / challenger history (leadscore.promotion, `leadscore models`): every change of the
    # current model, and every model registered without becoming current, with the reason
    """
    create table if not exists ops.model_events (
        event_at timestamp not null,
        model_version varchar not null,
        action varchar not null,
        previous_current varchar,
        reason varchar not null,
        evidence json
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
    # outcomes of loaded leads learned after scoring (leadscore.outcomes): every labeled id of a
    # `leadscore evaluate` labels file that names a loaded lead; with raw.set_aside_labels what
    # the promotion rule judges a new model on when it was trained on other rows
    """
    create table if not exists ops.outcomes (
        lead_id varchar not null,
        id bigint not null,
        is_converted boolean not null,
        source varchar not null,
        source_ref varchar not null,
        recorded_at timestamp not null
    )
    """,
    # the F1 interval came later: added at the end, as a database from before it gets them
    *(f"alter table ops.evaluations add column if not exists f1_ci95_{end} double" for end in ("low", "high")),
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

# The model registry (leadscore.registry writes it). dbt shows it as the view main.model_registry.
REGISTRY_TABLE = "ops.model_registry"
REGISTRY_DDL = [
    "create schema if not exists ops",
    f"""
    create table if not exists {REGISTRY_TABLE} (
        model_version        varchar primary key,   -- v<UTC yyyymmddThhmmss>Z-<8 hex>
        trained_at           timestamp not null,    -- UTC
        cv_f1                double,                -- out-of-fold F1 at the chosen cutoff
        cv_auc               double,                -- out-of-fold ROC AUC of the ensemble
        cv_average_precision double,
        cutoff               double not null,       -- predicted_converted = probability >= cutoff
        is_current           boolean not null,      -- exactly one true once a model exists
        feature_hash         varchar not null,      -- sha256 of the ordered (name, SQL type) list
        feature_list         json not null,         -- [[name, sql_type], ...] in table order
        train_rows           bigint not null,
        train_positive_rate  double not null,       -- pi: positive rate of the training rows
        target_prevalence    double,                -- P the probabilities are adjusted to (null: none)
        target_prevalence_mode varchar not null,    -- 'none' | 'given' | 'auto'
        ensemble             varchar not null,      -- 'voting' | 'stacking' (an ensemble shipped) or 'single'
        weights              json,                  -- voting weights / meta-model coefficients
        params               json,                  -- best hyper-parameters per base model
        per_model_metrics    json,                  -- out-of-fold f1/auc/ap, trials, imbalance choice
        dbt_invocation_id    varchar,               -- dbt run that built the features, if known
        artifact_dir         varchar not null,
        checksums_sha256     varchar not null,      -- sha256 of checksums.json
        seed                 bigint,
        folds                integer,
        time_budget          double,
        train_seconds        double
    )
    """,
    # Columns added after the first release: added in place to existing registries.
    # what won (baseline, a tuned model or the ensemble), by how much, and the fold noise
    f"alter table {REGISTRY_TABLE} add column if not exists selection json",
    # fingerprint of the training rows (lead ids, labels, feature values)
    f"alter table {REGISTRY_TABLE} add column if not exists data_fingerprint varchar",
]
# Where the registry lived before it moved to ops (a real table then; dbt's view now).
OLD_REGISTRY_TABLE = "main.model_registry"


# (table, the DDL list that creates it and its later columns) of the bulk-append tables
BULK_TABLES = (("raw.leads", RAW_DDL), ("ops.score_history", OPS_DDL))

# The latest score of every (lead, model): the row of ops.score_history with the latest
# (scored_at, run_id) for that lead and model, kept by every scoring run inside the transaction
# that appends the run to the history (update_latest_scores), so main.scored_leads and the serving snapshot read one row per lead
# and model instead of ranking the whole history, whose length grows every night. Same columns
# as ops.score_history; like it, no primary key (one row per (lead_id, model_version) by
# construction, checked by dbt's unique_combination).
LATEST_SCORES = "ops.latest_scores"
LATEST_SCORES_DDL = f"""
    create table if not exists {LATEST_SCORES} (
        {_SCORE_COLUMNS},
        reason_1 varchar,
        reason_2 varchar,
        reason_3 varchar
    )
"""
# history row A is later than B: what "latest" means in update_latest_scores and the backfill
_LATEST_FIRST = "scored_at desc, run_id desc"


# The one rule for "this lead's outcome is known": per lead that is not a training row, the latest
# outcome recorded, from `leadscore evaluate` (ops.outcomes) or from labels a score file carried
# (raw.set_aside_labels, a label that parsed). A view beside the tables it reads, so the Python
# job (leadscore.outcomes, the promotion rule) and dbt (source ops.known_outcomes: call_list
# leaves these leads out) read the same rule; `create or replace`, so a newer rule replaces an
# older database's.
KNOWN_OUTCOMES = "ops.known_outcomes"
KNOWN_OUTCOMES_DDL = f"""
    create or replace view {KNOWN_OUTCOMES} as
    select o.lead_id, arg_max(o.is_converted, o.recorded_at) as is_converted, max(o.recorded_at) as recorded_at
    from (
        select lead_id, is_converted, recorded_at from ops.outcomes
        union all
        select lead_id, is_converted, set_aside_at as recorded_at from raw.set_aside_labels
        where is_converted is not null
    ) as o
    inner join raw.leads as l on o.lead_id = l.lead_id
    where l.is_converted is null
    group by o.lead_id
"""


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in (*RAW_DDL, *OPS_DDL, KNOWN_OUTCOMES_DDL):
        con.execute(ddl)
    drop_bulk_indexes(con)
    ensure_latest_scores(con)
    ensure_registry(con)


def ensure_latest_scores(con: duckdb.DuckDBPyConnection) -> int:
    """Create ops.latest_scores and fill it from the score history when it is empty while the
    history is not: a database from before it existed, migrated by one window over the history,
    once. Every statement is atomic on its own, so inside or outside the caller's transaction a
    failure leaves either no rows (filled again next time) or all of them; afterwards every
    scoring run keeps it (update_latest_scores). Returns the rows filled in (0 when none)."""
    con.execute(LATEST_SCORES_DDL)
    if db.scalar(con, f"select exists (select 1 from {LATEST_SCORES})") or not db.scalar(
            con, "select exists (select 1 from ops.score_history)"):
        return 0
    con.execute(
        f"insert into {LATEST_SCORES} by name select {_history_columns(con)} from ops.score_history "
        f"qualify row_number() over (partition by lead_id, model_version order by {_LATEST_FIRST}) = 1"
    )
    return int(db.scalar(con, f"select count(*) from {LATEST_SCORES}"))


def update_latest_scores(con: duckdb.DuckDBPyConnection, run_rows: str) -> None:
    """Bring ops.latest_scores up to date with one scoring run's rows, which the caller has just
    appended to ops.score_history in its open transaction: `run_rows` names a relation with the
    history's columns holding exactly those rows (a temp table, a registered Arrow table).

    A (lead, model) row is replaced when the run's row is later by (scored_at, run_id), the order
    main.scored_leads always took the latest by; a later row already there is kept. Cost: the
    run's rows and the latest table, never the history."""
    con.execute(
        f"delete from {LATEST_SCORES} as latest using {run_rows} as run "
        "where latest.lead_id = run.lead_id and latest.model_version = run.model_version "
        "and (run.scored_at > latest.scored_at or (run.scored_at = latest.scored_at and run.run_id > latest.run_id))"
    )
    con.execute(
        f"insert into {LATEST_SCORES} by name select {_history_columns(con, 'run')} from {run_rows} as run "
        f"where not exists (select 1 from {LATEST_SCORES} as latest "
        "where latest.lead_id = run.lead_id and latest.model_version = run.model_version)"
    )


def _history_columns(con: duckdb.DuckDBPyConnection, alias: str | None = None) -> str:
    """The columns ops.latest_scores shares with ops.score_history, as a select list."""
    names = [r[0] for r in db.fetch_all(
        con, "select column_name from duckdb_columns() where database_name = current_database() "
        "and schema_name = 'ops' and table_name = 'latest_scores' order by column_index")]
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + db.quote_ident(n) for n in names)


def drop_bulk_indexes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Rebuild raw.leads and ops.score_history without the primary key an older version gave
    them (DuckDB cannot drop a constraint in place): the table is renamed, created again from
    today's DDL, and its rows copied by column name, inside the caller's transaction, so a
    failure leaves it as it was. Returns the tables rebuilt (none, after the first time)."""
    rebuilt = []
    for qualified, ddl in BULK_TABLES:
        schema, name = qualified.split(".")
        indexed = db.scalar(
            con,
            "select count(*) from duckdb_constraints() where database_name = current_database() "
            "and schema_name = ? and table_name = ? and constraint_type = 'PRIMARY KEY'",
            [schema, name],
        )
        if not indexed:
            continue
        old = f"{name}_with_primary_key"
        con.execute(f"alter table {qualified} rename to {old}")
        for statement in ddl:
            if f"{qualified} " in statement or f"{qualified}(" in statement:
                con.execute(statement)
        con.execute(f"insert into {qualified} by name select * from {schema}.{old}")
        con.execute(f"drop table {schema}.{old}")
        rebuilt.append(qualified)
    return rebuilt


def ensure_registry(con: duckdb.DuckDBPyConnection) -> None:
    """Create ops.model_registry (and its later columns), and move the rows of a registry that
    still lives in main (a database from before the move) into it.

    The old table becomes the view dbt builds in its place (models_sql/marts/model_registry.sql),
    so `main.model_registry` answers the same before the next `dbt build` as after it. dbt's
    on-run-start hook (dbt_project/macros/move_model_registry.sql) does the same move for a plain
    `dbt build` on an old database.
    """
    for ddl in REGISTRY_DDL:
        con.execute(ddl)
    old_schema, old_name = OLD_REGISTRY_TABLE.split(".")
    kind = db.scalar(
        con,
        "select table_type from information_schema.tables "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [old_schema, old_name],
    )
    if kind != "BASE TABLE":
        return
    con.execute(
        f"insert into {REGISTRY_TABLE} by name select * from {OLD_REGISTRY_TABLE} "
        f"where model_version not in (select model_version from {REGISTRY_TABLE})"
    )
    con.execute(f"drop table {OLD_REGISTRY_TABLE}")
    con.execute(f"create view {OLD_REGISTRY_TABLE} as select * from {REGISTRY_TABLE}")
