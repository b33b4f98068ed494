{% macro failing_columns(model, columns, failing_when, count_name='failing_rows', details={}) %}
    {#- The body of the column-group tests (not_null_columns, between_columns,
        accepted_values_columns): ONE scan of `model` and one row per column of `columns` that
        fails, with `count_name` (how many rows fail: `failing_when`, a SQL condition with
        `{column}` for the column) and each of `details` (output name -> SQL aggregate of
        `{column}`). Every column checked in one query, as one dbt node. -#}
    with checked as (

        select
            {%- for column in columns %}
            {%- set i = loop.index %}
            sum(case when {{ failing_when | replace('{column}', column) }} then 1 else 0 end) as failing_{{ i }}
            {%- for name, aggregate in details.items() %},
            {{ aggregate | replace('{column}', column) }} as {{ name }}_{{ i }}
            {%- endfor %}
            {{- "," if not loop.last }}
            {%- endfor %}
        from {{ model }}

    )

    {% for column in columns %}
    {%- set i = loop.index %}
    select
        '{{ column }}' as column_name,
        failing_{{ i }} as {{ count_name }}
        {%- for name in details %},
        {{ name }}_{{ i }} as {{ name }}
        {%- endfor %}
    from checked
    where failing_{{ i }} > 0
    {{ "union all" if not loop.last }}
    {% endfor %}
{% endmacro %}
