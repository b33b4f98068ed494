{% test split_label_consistent(model, column_name, label_column='is_converted') %}
    {#- `split` is 'train' exactly when the label is present and 'score' exactly when it is not. -#}
    select
        {{ column_name }} as split_value,
        {{ label_column }} as label_value
    from {{ model }}
    where
        not (
            ({{ column_name }} = 'train' and {{ label_column }} is not null)
            or ({{ column_name }} = 'score' and {{ label_column }} is null)
        )
{% endtest %}
