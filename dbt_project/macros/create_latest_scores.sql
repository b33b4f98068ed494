{#
    on-run-start hook. main.scored_leads reads ops.latest_scores, the latest row of
    ops.score_history per (lead_id, model_version), which every scoring run keeps and which
    python/leadscore/tables.py (ensure_latest_scores) creates and fills for the leadscore commands.
    In a database whose last leadscore command predates that table, a plain `dbt build` would fail
    at scored_leads: so here, in one committed transaction, the table is created with the
    history's own columns (duckdb_tables().sql, so the columns are declared once, in Python) and
    filled with the latest row per lead and model by (scored_at, run_id), the order scored_leads
    always took the latest by. Does nothing when the table exists or there is no history yet.
#}
{% macro create_latest_scores() %}
    {% if execute %}
        {% set history = adapter.get_relation(database=target.database, schema='ops', identifier='score_history') %}
        {% set latest = adapter.get_relation(database=target.database, schema='ops', identifier='latest_scores') %}
        {% if history is not none and latest is none %}
            {% set history_ddl_query %}
                select sql from duckdb_tables()
                where database_name = '{{ target.database }}' and schema_name = 'ops' and table_name = 'score_history'
            {% endset %}
            {% set history_ddl = run_query(history_ddl_query).columns[0].values()[0] %}
            {{ log('creating ops.latest_scores from ops.score_history (the latest score per lead and model)', info=True) }}
            {% call statement('create_latest_scores', auto_begin=True) %}
                {{ modules.re.sub('^\s*create\s+table\s+[^(]+\(', 'create table ops.latest_scores(', history_ddl, count=1, flags=modules.re.IGNORECASE) }};
                insert into ops.latest_scores by name
                select * from ops.score_history
                qualify row_number() over (partition by lead_id, model_version order by scored_at desc, run_id desc) = 1;
            {% endcall %}
            {% do adapter.commit() %}
        {% endif %}
    {% endif %}
{% endmacro %}
