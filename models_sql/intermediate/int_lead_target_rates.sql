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
-- One generic pass: the training rows are UNPIVOTed to (column, value) and aggregated once into
-- totals and per-fold lists; each column then needs one equality join against that small table,
-- and "out of fold" is total minus the row's own fold element.
{%- set columns = target_rate_columns() %}
{%- set m = var('target_rate_smoothing') %}
{%- set min_rows = var('target_rate_min_count') %}

with leads as (

    select
        lead_id,
        split,
        cast(is_converted as integer) as is_positive,
        -- score rows get fold -1: they hold nothing out
        case when split = 'train' then {{ stable_fold('lead_id') }} else -1 end as fold_id,
        {{ column_list(columns, 'cast({c} as varchar) as {c}') }}
    from {{ ref('int_leads_filled') }}

),

training as (

    select * from leads
    where split = 'train'

),

training_long as (

    unpivot training
    on {{ columns | join(', ') }}
    into name column_name value column_value

),

value_stats as (

    select
        column_name,
        column_value,
        count(*) as rows_total,
        sum(is_positive) as positives_total,
        {{ per_fold_list('count(*)') }} as rows_by_fold,
        {{ per_fold_list('sum(is_positive)') }} as positives_by_fold
    from training_long
    group by column_name, column_value

),

overall as (

    select
        count(*) as rows_total,
        sum(is_positive) as positives_total,
        {{ per_fold_list('count(*)') }} as rows_by_fold,
        {{ per_fold_list('sum(is_positive)') }} as positives_by_fold
    from training

),

-- per lead and column: training rows and positives behind the rate (out of fold for training
-- rows) and the prior they are shrunk toward
evidence as (

    select
        leads.lead_id,
        case
            when leads.split = 'train'
                then
                    (overall.positives_total - overall.positives_by_fold[leads.fold_id + 1])
                    / nullif(overall.rows_total - overall.rows_by_fold[leads.fold_id + 1], 0)
            else overall.positives_total / nullif(overall.rows_total, 0)
        end as prior_rate,
        {{ column_list(
            columns,
            "coalesce(case when leads.split = 'train' then stats_{c}.rows_total - stats_{c}.rows_by_fold[leads.fold_id + 1]"
            ~ " else stats_{c}.rows_total end, 0) as {c}_rows,\n        "
            ~ "coalesce(case when leads.split = 'train'"
            ~ " then stats_{c}.positives_total - stats_{c}.positives_by_fold[leads.fold_id + 1]"
            ~ " else stats_{c}.positives_total end, 0) as {c}_positives",
            ',\n        '
        ) }}
    from leads
    cross join overall
    {% for column in columns %}
        left join value_stats as stats_{{ column }}
            on
                stats_{{ column }}.column_name = '{{ column }}'
                and leads.{{ column }} = stats_{{ column }}.column_value
    {% endfor %}

),

rated as (

    select
        lead_id,
        prior_rate,
        {{ column_list(
            columns,
            "{c}_rows,\n        "
            ~ "case when {c}_rows < " ~ min_rows ~ " then prior_rate"
            ~ " else ({c}_positives + " ~ m ~ " * prior_rate) / ({c}_rows + " ~ m ~ ") end as {c}_target_rate",
            ',\n        '
        ) }}
    from evidence

)

select
    lead_id,
    {{ column_list(
        columns,
        "coalesce({c}_target_rate, 0) as {c}_target_rate,\n    "
        ~ "case"
        ~ " when {c}_rows < " ~ min_rows ~ " or coalesce(prior_rate, 0) <= 0 then 'unknown'"
        ~ " when {c}_target_rate < " ~ var('target_rate_tier_very_low') ~ " * prior_rate then 'very_low'"
        ~ " when {c}_target_rate < " ~ var('target_rate_tier_low') ~ " * prior_rate then 'low'"
        ~ " when {c}_target_rate < " ~ var('target_rate_tier_high') ~ " * prior_rate then 'medium'"
        ~ " when {c}_target_rate < " ~ var('target_rate_tier_very_high') ~ " * prior_rate then 'high'"
        ~ " else 'very_high' end as {c}_rate_tier",
        ',\n    '
    ) }}
from rated
