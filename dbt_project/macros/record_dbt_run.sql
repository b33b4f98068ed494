{#
    on-run-end hook: record each dbt invocation in the database it ran against, so a model in
    the registry can name the dbt build that produced its features (run_results.json lives in
    the checkout and may describe a run against another database).
#}
{% macro record_dbt_run(results) %}
    {% if execute %}
        {% set failed = results | selectattr('status', 'in', ['error', 'fail']) | list | length %}
        create schema if not exists ops;
        create table if not exists ops.dbt_runs (
            invocation_id varchar primary key,
            command varchar,
            finished_at timestamp,
            nodes integer,
            failed integer
        );
        insert or replace into ops.dbt_runs values (
            '{{ invocation_id }}',
            '{{ flags.WHICH }}',
            now()::timestamp,
            {{ results | length }},
            {{ failed }}
        );
    {% endif %}
{% endmacro %}
