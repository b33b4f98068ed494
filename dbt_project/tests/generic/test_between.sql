{% test between(model, column_name, min_value, max_value) %}
    {#- Fails on every non-null value outside [min_value, max_value] (both ends included).
        Rates must lie in 0..1, counts at or above 0, and so on. -#}
    select {{ column_name }} as failing_value
    from {{ model }}
    where
        {{ column_name }} is not null
        and ({{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }})
{% endtest %}
