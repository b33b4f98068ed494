{% test between_columns(model, columns, min_value, max_value) %}
    {#- `between` for several columns sharing one range (a model's rates in 0..1), in one scan and
        one dbt node: fails with one row per column holding a non-null value outside
        [min_value, max_value], with how many and the smallest and largest value found. -#}
    with checked as (

        select
            {%- for column in columns %}
            sum(
                case when {{ column }} < {{ min_value }} or {{ column }} > {{ max_value }} then 1 else 0 end
            ) as failing_rows_{{ loop.index }},
            min({{ column }}) as min_value_{{ loop.index }},
            max({{ column }}) as max_value_{{ loop.index }}
            {{- "," if not loop.last }}
            {%- endfor %}
        from {{ model }}

    )

    {% for column in columns %}
    select
        '{{ column }}' as column_name,
        failing_rows_{{ loop.index }} as failing_rows,
        cast(min_value_{{ loop.index }} as double) as min_value,
        cast(max_value_{{ loop.index }} as double) as max_value
    from checked
    where failing_rows_{{ loop.index }} > 0
    {{ "union all" if not loop.last }}
    {% endfor %}
{% endtest %}
