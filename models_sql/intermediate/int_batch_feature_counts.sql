-- Leads per (population, feature, bucket): the training rows (is_training) and each scored
-- batch (the split = 'score' leads of one load, load_id), the only input the PSI needs.
-- A numeric feature's buckets are the training deciles (var drift_numeric_bins bins, edges the
-- training rows' percentile_disc values, so a lumpy or binary feature has fewer non-empty bins);
-- a categorical feature's buckets are its values. A missing value (null, or a fill level of var
-- drift_missing_levels) has bucket null: it counts for the missing rate, not the distribution.
-- The input holds each distinct value once with its leads, so an edge is percentile_disc over
-- the rows those counts stand for: the first value whose running share of the training leads
-- reaches i / bins (compared in whole numbers: leads up to it * bins >= all leads * i).
{%- set bins = var('drift_numeric_bins') | int %}

with feature_values as (

    select * from {{ ref('int_batch_feature_values') }}

),

training_numeric as (

    select
        feature_name,
        numeric_value,
        sum(leads) over (
            partition by feature_name order by numeric_value
            rows between unbounded preceding and current row
        ) as leads_up_to,
        sum(leads) over (partition by feature_name) as leads_total
    from feature_values
    where is_training and feature_kind = 'numeric' and not is_missing

),

numeric_edges as (

    select
        {% for i in range(1, bins) %}
            min(numeric_value) filter (
                where leads_up_to * {{ bins }} >= leads_total * {{ i }}
            ) as edge_{{ i }},
        {% endfor %}
        feature_name
    from training_numeric
    group by feature_name

),

bucketed as (

    select
        feature_values.is_training,
        feature_values.load_id,
        feature_values.feature_name,
        feature_values.feature_kind,
        feature_values.leads,
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
        cast(sum(leads) as bigint) as leads
    from bucketed
    group by is_training, load_id, feature_name, feature_kind, bucket

)

select * from final
