{% test accepted_values_columns(model, columns, values) %}
    {#- dbt's accepted_values for several columns sharing one list of values (a model's rate
        tiers), in one scan and one dbt node (failing_columns): fails with one row per column
        holding a non-null value outside `values`, with how many such rows and one of the values. -#}
    {%- set outside -%}
        {column} not in ({% for value in values %}'{{ value }}'{{ ", " if not loop.last }}{% endfor %})
    {%- endset %}
    {{ failing_columns(
        model, columns, outside,
        details={'example_value': 'min(case when ' ~ outside ~ ' then {column} end)'}
    ) }}
{% endtest %}
