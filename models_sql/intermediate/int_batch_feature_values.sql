-- The distinct values of every feature in each population, with the leads that have them, for
-- the drift models: a population is the training rows, or a batch (the split = 'score' leads of
-- one load, raw.loads). The feature list is fct_lead_features' contract (macro
-- drift_feature_columns: the keys and the out-of-fold target rates / evidence counts left out),
-- so a new feature is covered without editing this model.
-- One GROUPING SETS aggregation counts every feature in a single pass over the wide rows, one
-- grouping set (population, feature) per feature; grouping(<feature>) = 0 names the set a row
-- belongs to. The model never holds (leads x features) rows (at 1M leads and 89 features that
-- long form was 89M rows), nor a copy of the wide rows: a UNION ALL of one grouped scan per
-- feature made DuckDB materialize the joined rows once for its ~90 readers (4.3 GB at 5M leads,
-- and spilled and re-read under a memory cap: 10 s -> 301 s). Spark numbers a grouping set's
-- columns in a 64-bit grouping id, so the features go in chunks of at most
-- var('drift_features_per_aggregation'), each chunk its own pass (89 features: two). The wide
-- rows are read inside each chunk, not through a shared CTE, which DuckDB would materialize.
{%- set features = drift_feature_columns() %}
{%- set missing_levels = var('drift_missing_levels') %}
{%- set features_per_aggregation = var('drift_features_per_aggregation') | int %}
{%- if not 1 <= features_per_aggregation <= 62 %}
    {{ exceptions.raise_compiler_error(
        "var drift_features_per_aggregation must be 1..62 (a grouping set's columns, population "
        ~ "and batch included, are numbered in Spark's 64-bit grouping id); got "
        ~ var('drift_features_per_aggregation')) }}
{%- endif %}

{%- set populations %}
        select
            features.*,
            features.split = 'train' as is_training,
            case when features.split = 'score' then leads.load_id end as batch_load_id
        from {{ ref('fct_lead_features') }} as features
        inner join {{ ref('stg_leads') }} as leads on features.lead_id = leads.lead_id
{%- endset %}

with counted as (
{%- for chunk in features | batch(features_per_aggregation) %}

    select
        is_training,
        batch_load_id as load_id,
        case
            {%- for feature in chunk %}
            when grouping({{ feature.name }}) = 0 then '{{ feature.name }}'
            {%- endfor %}
        end as feature_name,
        case
            {%- for feature in chunk %}
            when grouping({{ feature.name }}) = 0 then '{{ feature.kind }}'
            {%- endfor %}
        end as feature_kind,
        {%- set numeric = chunk | selectattr('kind', 'equalto', 'numeric') | list %}
        {%- set categorical = chunk | rejectattr('kind', 'equalto', 'numeric') | list %}
        {%- if numeric %}
        case
            {%- for feature in numeric %}
            when grouping({{ feature.name }}) = 0 then cast({{ feature.name }} as double)
            {%- endfor %}
        end as numeric_value,
        {%- else %}
        cast(null as double) as numeric_value,
        {%- endif %}
        {%- if categorical %}
        case
            {%- for feature in categorical %}
            when grouping({{ feature.name }}) = 0 then cast({{ feature.name }} as {{ text_type() }})
            {%- endfor %}
        end as category_value,
        {%- else %}
        cast(null as {{ text_type() }}) as category_value,
        {%- endif %}
        count(*) as leads
    from ({{ populations }}
    ) as populations
    group by grouping sets (
        {%- for feature in chunk %}
        (is_training, batch_load_id, {{ feature.name }}){{ "," if not loop.last }}
        {%- endfor %}
    )
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
    from ({{ populations }}
    ) as populations
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
