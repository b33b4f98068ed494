{% test between_columns(model, columns, min_value, max_value) %}
    {#- `between` for several columns sharing one range (a model's rates in 0..1), in one scan and
        one dbt node (failing_columns): fails with one row per column holding a non-null value
        outside [min_value, max_value], with how many and the smallest and largest value found. -#}
    {{ failing_columns(
        model, columns,
        '{column} < ' ~ min_value ~ ' or {column} > ' ~ max_value,
        details={'min_value': 'cast(min({column}) as double)', 'max_value': 'cast(max({column}) as double)'}
    ) }}
{% endtest %}
