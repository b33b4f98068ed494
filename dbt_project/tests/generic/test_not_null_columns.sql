{% test not_null_columns(model, columns) %}
    {#- No null in any of `columns`; fails with one row per column that has nulls, and how many.
        Every column is checked in one scan, as one dbt node (failing_columns): a not_null test
        per column cost dbt about 45 ms of its own work per node against a few ms of query, which
        made the 210 per-column tests a fifth of the nightly build at 64,570 leads. -#}
    {{ failing_columns(model, columns, '{column} is null', count_name='null_rows') }}
{% endtest %}
