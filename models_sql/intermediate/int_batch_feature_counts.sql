-- Leads per (population, feature, bucket): the training rows (is_training) and each scored
-- batch (the split = 'score' leads of one load, load_id), the only input the PSI needs.
-- A numeric feature's buckets are the training deciles (var drift_numeric_bins bins, edges the
-- training rows' percentile_disc values, so a lumpy or binary feature has fewer non-empty bins);
-- a categorical feature's buckets are its values. A missing value (null, or a fill level of var
-- drift_missing_levels) has bucket null: it counts for the missing rate, not the distribution.
-- A table: the long values are read once per build, the marts read only these counts.
{%- set bins = var('drift_numeric_bins') | int %}

with feature_values as (

    select * from {{ ref('int_batch_feature_values') }}

),

numeric_edges as (

    select
        {% for i in range(1, bins) %}
            percentile_disc({{ i / bins }}) within group (order by numeric_value) as edge_{{ i }},
        {% endfor %}
        feature_name
    from feature_values
    where split = 'train' and feature_kind = 'numeric' and not is_missing
    group by feature_name

),

bucketed as (

    select
        feature_values.feature_name,
        feature_values.feature_kind,
        feature_values.split = 'train' as is_training,
        case when feature_values.split = 'score' then feature_values.load_id end as load_id,
        case
            when feature_values.is_missing then null
            when feature_values.feature_kind = 'numeric'
                then {{ drift_numeric_bucket('feature_values.numeric_value', 'numeric_edges') }}
            else feature_values.category_value
        end as bucket
    from feature_values
    left join numeric_edges on feature_values.feature_name = numeric_edges.feature_name

),

final as (

    select
        is_training,
        load_id,
        feature_name,
        feature_kind,
        bucket,
        count(*) as leads
    from bucketed
    group by is_training, load_id, feature_name, feature_kind, bucket

)

select * from final
