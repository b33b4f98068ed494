-- Leakage-safe target-rate categories for the high-cardinality columns (macro
-- target_rate_columns). For each (column, value) a smoothed conversion rate, the m-estimate
--     rate = (positives + m * prior) / (rows + m),   m = var('target_rate_smoothing'),
-- shrunk toward the training prior, and the prior itself when the value has fewer than
-- var('target_rate_min_count') rows behind it.
--   * training rows: OUT OF FOLD. fold = md5_number(lead_id) % var('target_rate_folds'); the
--     statistics of a training row come from the training rows of the OTHER folds only
--     (value total minus the row's own fold), and so does its prior. A training row's own label
--     never reaches its own rate.
--   * score rows: all training rows. A value never seen in training gets the prior.
-- Plus a tier by rate / prior: very_low, low, medium, high, very_high (thresholds are vars),
-- and 'unknown' when the value has too few rows behind it.
-- One generic pass: UNPIVOT to (lead, column, value), aggregate, PIVOT back by conditional
-- aggregation.
{%- set columns = target_rate_columns() %}
{%- set m = var('target_rate_smoothing') %}

with leads as (

    select
        lead_id,
        split,
        cast(is_converted as integer) as is_positive,
        -- score rows get fold -1, which matches no training fold: nothing is held out for them
        case when split = 'train' then {{ stable_fold('lead_id') }} else -1 end as fold_id,
        {{ column_list(columns, 'cast({c} as varchar) as {c}') }}
    from {{ ref('int_leads_filled') }}

),

leads_long as (

    unpivot leads
    on {{ columns | join(', ') }}
    into name column_name value column_value

),

training_long as (

    select * from leads_long
    where split = 'train'

),

overall as (

    select
        count(*) as rows_total,
        sum(is_positive) as positives_total
    from leads
    where split = 'train'

),

per_fold as (

    select
        fold_id,
        count(*) as rows_fold,
        sum(is_positive) as positives_fold
    from leads
    where split = 'train'
    group by fold_id

),

value_totals as (

    select
        column_name,
        column_value,
        count(*) as rows_total,
        sum(is_positive) as positives_total
    from training_long
    group by column_name, column_value

),

value_folds as (

    select
        column_name,
        column_value,
        fold_id,
        count(*) as rows_fold,
        sum(is_positive) as positives_fold
    from training_long
    group by column_name, column_value, fold_id

),

evidence as (

    select
        leads_long.lead_id,
        leads_long.column_name,
        case
            when leads_long.split = 'train'
                then coalesce(value_totals.rows_total, 0) - coalesce(value_folds.rows_fold, 0)
            else coalesce(value_totals.rows_total, 0)
        end as value_rows,
        case
            when leads_long.split = 'train'
                then coalesce(value_totals.positives_total, 0) - coalesce(value_folds.positives_fold, 0)
            else coalesce(value_totals.positives_total, 0)
        end as value_positives,
        case
            when leads_long.split = 'train'
                then
                    (overall.positives_total - per_fold.positives_fold)
                    / nullif(overall.rows_total - per_fold.rows_fold, 0)
            else overall.positives_total / nullif(overall.rows_total, 0)
        end as prior_rate
    from leads_long
    cross join overall
    left join per_fold on leads_long.fold_id = per_fold.fold_id
    left join value_totals
        on
            leads_long.column_name = value_totals.column_name
            and leads_long.column_value = value_totals.column_value
    left join value_folds
        on
            leads_long.column_name = value_folds.column_name
            and leads_long.column_value = value_folds.column_value
            and leads_long.fold_id = value_folds.fold_id

),

rated as (

    select
        lead_id,
        column_name,
        value_rows,
        prior_rate,
        case
            when value_rows < {{ var('target_rate_min_count') }} then prior_rate
            else (value_positives + {{ m }} * prior_rate) / (value_rows + {{ m }})
        end as target_rate
    from evidence

),

tiered as (

    select
        lead_id,
        column_name,
        coalesce(target_rate, 0) as target_rate,
        case
            when value_rows < {{ var('target_rate_min_count') }} or coalesce(prior_rate, 0) <= 0 then 'unknown'
            when target_rate < {{ var('target_rate_tier_very_low') }} * prior_rate then 'very_low'
            when target_rate < {{ var('target_rate_tier_low') }} * prior_rate then 'low'
            when target_rate < {{ var('target_rate_tier_high') }} * prior_rate then 'medium'
            when target_rate < {{ var('target_rate_tier_very_high') }} * prior_rate then 'high'
            else 'very_high'
        end as rate_tier
    from rated

)

select
    lead_id,
    {{ column_list(
        columns,
        "max(target_rate) filter (where column_name = '{c}') as {c}_target_rate,\n    "
        ~ "max(rate_tier) filter (where column_name = '{c}') as {c}_rate_tier",
        ',\n    '
    ) }}
from tiered
group by lead_id
