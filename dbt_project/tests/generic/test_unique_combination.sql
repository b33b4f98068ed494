{% test unique_combination(model, columns) %}
    {#- No two rows share the values of all `columns`: the key of a table that carries no
        primary key index (DuckDB's index makes bulk appends several times slower). -#}
    select
        {{ columns | join(', ') }},
        count(*) as rows_with_key
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
