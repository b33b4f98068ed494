-- The distinct values of every feature in each population, with the leads that have them, for
-- the drift models: a population is the training rows, or a batch (the split = 'score' leads of
-- one load, raw.loads). The feature list is fct_lead_features' contract (macro
-- drift_feature_columns: the keys and the out-of-fold target rates / evidence counts left out),
-- so a new feature is covered without editing this model.
-- Each feature is counted in its own grouped scan of the wide rows before the union, so the
-- model never holds (leads x features) rows: at 1M leads and 89 features that long form was 89M
-- rows and the most expensive step of dbt build; grouped, it is the features' distinct values.
{%- set features = drift_feature_columns() %}
{%- set missing_levels = var('drift_missing_levels') %}

with leads as (

    select
        lead_id,
        load_id
    from {{ ref('stg_leads') }}

),

populations as (

    select
        features.*,
        features.split = 'train' as is_training,
        case when features.split = 'score' then leads.load_id end as batch_load_id
    from {{ ref('fct_lead_features') }} as features
    inner join leads on features.lead_id = leads.lead_id

),

counted as (
{%- for feature in features %}

    select
        is_training,
        batch_load_id as load_id,
        '{{ feature.name }}' as feature_name,
        '{{ feature.kind }}' as feature_kind,
        {%- if feature.kind == 'numeric' %}
        cast({{ feature.name }} as double) as numeric_value,
        cast(null as {{ text_type() }}) as category_value,
        {%- else %}
        cast(null as double) as numeric_value,
        cast({{ feature.name }} as {{ text_type() }}) as category_value,
        {%- endif %}
        count(*) as leads
    from populations
    group by is_training, batch_load_id, {{ feature.name }}
    {%- if not loop.last %}

    union all
    {%- endif %}
{%- else %}

    select
        is_training,
        batch_load_id as load_id,
        cast(null as {{ text_type() }}) as feature_name,
        cast(null as {{ text_type() }}) as feature_kind,
        cast(null as double) as numeric_value,
        cast(null as {{ text_type() }}) as category_value,
        count(*) as leads
    from populations
    where false
    group by is_training, batch_load_id
{%- endfor %}

),

final as (

    select
        is_training,
        load_id,
        feature_name,
        feature_kind,
        numeric_value,
        category_value,
        coalesce(
            numeric_value is null
            and (
                category_value is null
                {%- if missing_levels %}
                or category_value in ('{{ missing_levels | join("', '") }}')
                {%- endif %}
            ),
            true
        ) as is_missing,
        leads
    from counted

)

select * from final
