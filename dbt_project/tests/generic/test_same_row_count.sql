{% test same_row_count(model, compare_model) %}
    {#- The model has exactly as many rows as compare_model: no lead lost or duplicated. -#}
    with counts as (

        select
            (select count(*) from {{ model }}) as model_rows,
            (select count(*) from {{ compare_model }}) as compare_rows

    )

    select
        model_rows,
        compare_rows
    from counts
    where model_rows <> compare_rows
{% endtest %}
