{#
    on-run-end hook: record each dbt invocation in ops.dbt_runs of the database it ran against,
    so a model in the registry can name the dbt build that produced its features
    (run_results.json lives in the checkout and may describe a run against another database).
    The table is the Python job's (DDL in python/leadscore/tables.py, created by every leadscore
    command that writes); where it does not exist yet, nothing is recorded.
    The insert runs here, in its own committed transaction (looking the table up may already
    have opened one on this connection), so the hook itself has no SQL left to run.
#}
{% macro record_dbt_run(results) %}
    {% if execute %}
        {% set runs = adapter.get_relation(database=target.database, schema='ops', identifier='dbt_runs') %}
        {% if runs is not none %}
            {% set failed = results | selectattr('status', 'in', ['error', 'fail']) | list | length %}
            {% call statement('record_dbt_run', auto_begin=True) %}
                insert or replace into {{ runs }} (invocation_id, command, finished_at, nodes, failed)
                values (
                    '{{ invocation_id }}',
                    '{{ flags.WHICH }}',
                    now()::timestamp,
                    {{ results | length }},
                    {{ failed }}
                )
            {% endcall %}
            {% do adapter.commit() %}
        {% endif %}
    {% endif %}
{% endmacro %}
