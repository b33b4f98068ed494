-- Every feature value of every lead in long form, one row per (lead, feature), for the drift
-- models: a batch is the split = 'score' leads of one load (raw.loads), compared with the
-- training rows. The feature list is fct_lead_features' contract (macro drift_feature_columns:
-- the keys and the out-of-fold target rates / evidence counts left out), so a new feature is
-- covered without editing this model. A view: it only feeds the counts of
-- int_batch_feature_counts, and a table would hold (leads x features) rows.
{{ config(materialized='view') }}
{%- set features = drift_feature_columns() %}
{%- set missing_levels = var('drift_missing_levels') %}

with features as (

    select * from {{ ref('fct_lead_features') }}

),

leads as (

    select
        lead_id,
        load_id
    from {{ ref('stg_leads') }}

),

long_values as (
{%- for feature in features %}

    select
        lead_id,
        split,
        '{{ feature.name }}' as feature_name,
        '{{ feature.kind }}' as feature_kind,
        {%- if feature.kind == 'numeric' %}
        cast({{ feature.name }} as double) as numeric_value,
        cast(null as {{ text_type() }}) as category_value
        {%- else %}
        cast(null as double) as numeric_value,
        cast({{ feature.name }} as {{ text_type() }}) as category_value
        {%- endif %}
    from features
    {%- if not loop.last %}

    union all
    {%- endif %}
{%- else %}

    -- no feature list (dbt parses before the graph is filled): the columns, no rows
    select
        lead_id,
        split,
        cast(null as {{ text_type() }}) as feature_name,
        cast(null as {{ text_type() }}) as feature_kind,
        cast(null as double) as numeric_value,
        cast(null as {{ text_type() }}) as category_value
    from features
    where false
{%- endfor %}

),

final as (

    select
        long_values.lead_id,
        leads.load_id,
        long_values.split,
        long_values.feature_name,
        long_values.feature_kind,
        long_values.numeric_value,
        long_values.category_value,
        coalesce(
            long_values.numeric_value is null
            and (
                long_values.category_value is null
                {%- if missing_levels %}
                or long_values.category_value in ('{{ missing_levels | join("', '") }}')
                {%- endif %}
            ),
            true
        ) as is_missing
    from long_values
    inner join leads on long_values.lead_id = leads.lead_id

)

select * from final
