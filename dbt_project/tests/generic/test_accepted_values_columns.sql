{% test accepted_values_columns(model, columns, values) %}
    {#- dbt's accepted_values for several columns sharing one list of values (a model's rate
        tiers), in one scan and one dbt node: fails with one row per column holding a non-null
        value outside `values`, with how many such rows and one of the values. -#}
    {%- set accepted -%}
        ({% for value in values %}'{{ value }}'{{ ", " if not loop.last }}{% endfor %})
    {%- endset %}
    with checked as (

        select
            {%- for column in columns %}
            sum(case when {{ column }} not in {{ accepted }} then 1 else 0 end) as failing_rows_{{ loop.index }},
            min(case when {{ column }} not in {{ accepted }} then {{ column }} end) as example_{{ loop.index }}
            {{- "," if not loop.last }}
            {%- endfor %}
        from {{ model }}

    )

    {% for column in columns %}
    select
        '{{ column }}' as column_name,
        failing_rows_{{ loop.index }} as failing_rows,
        example_{{ loop.index }} as example_value
    from checked
    where failing_rows_{{ loop.index }} > 0
    {{ "union all" if not loop.last }}
    {% endfor %}
{% endtest %}
