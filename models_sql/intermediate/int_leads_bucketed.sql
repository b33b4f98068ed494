-- Rare-value buckets for the categorical features: a value with fewer than
-- var('rare_min_count') TRAINING rows, or never seen in training (a new value at scoring time),
-- becomes 'other'. Counts come from training rows only, so scoring rows never change the levels.
-- One long count table (UNPIVOT) serves every column; one equality join per column applies it.
-- The feature crosses (int_leads_crossed, var feature_crosses) are bucketed the same way.
{%- set columns = [
    'business_unit', 'customer_type', 'enterprise', 'customer_job', 'inquiry_type',
    'product_category', 'product_subcategory', 'product_modelname', 'customer_position',
    'expected_timeline', 'business_area', 'business_subarea', 'country', 'region',
    'response_corporate'
] + feature_cross_columns() %}

with leads as (

    select * from {{ ref('int_leads_crossed') }}

),

training_long as (

    {{ unpivot_columns(
        "(select " ~ columns | join(', ') ~ " from leads where split = 'train')",
        columns, 'column_name', 'column_value'
    ) }}

),

level_counts as (

    select
        column_name,
        column_value,
        count(*) as training_rows
    from training_long
    group by column_name, column_value

),

kept_levels as (

    select
        column_name,
        column_value
    from level_counts
    where training_rows >= {{ var('rare_min_count') }}

),

final as (

    select
        {{ star_replace('leads', columns, "coalesce(kept_{column}.column_value, 'other')") }}
    from leads
    {% for column in columns %}
        left join kept_levels as kept_{{ column }}
            on
                kept_{{ column }}.column_name = '{{ column }}'
                and leads.{{ column }} = kept_{{ column }}.column_value
    {% endfor %}

)

select * from final
