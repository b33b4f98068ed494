-- Leakage-safe target-rate categories for the high-cardinality columns (var
-- target_rate_columns). For each (column, value) a smoothed conversion rate, the m-estimate
--     rate = (positives + m * prior) / (rows + m),   m = var('target_rate_smoothing'),
-- shrunk toward the training prior, and the prior itself when the value has fewer than
-- var('target_rate_min_count') rows behind it.
--   * training rows: OUT OF FOLD. fold = md5_number(lead_id) % var('target_rate_folds'); the
--     statistics of a training row come from the training rows of the OTHER folds only
--     (value total minus the row's own fold), and so does its prior. A training row's own label
--     never reaches its own rate.
--   * score rows: all training rows. A value never seen in training gets the prior.
--   * rate_fold: a training row's fold, which the training job's validation keeps whole. Leads
--     of one value in one fold share their rate to the last digit, so a tree can single such a
--     group out; were the group split between a validation fold and the rows its model fits on,
--     the model would learn the validated leads' group from their fold mates' labels, which a
--     score row (whose rate matches no training row's) never offers: an optimistic out-of-fold
--     score.
-- Plus a tier by rate / prior: very_low, low, medium, high, very_high (thresholds are vars),
-- and 'unknown' when the value has too few rows behind it.
-- Evidence counts (var evidence_count_columns, switched by var use_evidence_counts): the rows
-- and conversions behind the rate, on the same out-of-fold basis. A rate of 0.15 from 2 leads
-- and from 200 leads are different facts; the counts let the model tell them apart. A score
-- row's counts (all training rows) are multiplied by (K - 1) / K, the share of them a training
-- row's counts hold: without it a customer's score rows show 1.25x the evidence its training
-- rows taught the model, and a model that reads counts in steps (the linear member's bins)
-- moves them into another customer's step (demo world: the linear member's score-row AUC
-- 0.937 instead of 0.967). The rate itself keeps every row.
-- One generic pass: the training rows are UNPIVOTed to (column, value) and counted once per
-- (column, value, fold); "out of fold" is the value's total minus its count in the lead's own
-- fold, kept as a small long table with one row per (column, value, fold) (fold -1: score rows,
-- the whole total). Each column then needs one equality join on (column, value, fold) that
-- brings back two numbers, instead of carrying K-element lists through every join.
{%- set columns = var('target_rate_columns') %}
{%- set evidence_columns = var('evidence_count_columns') if var('use_evidence_counts') else [] %}
{%- set use_rates = var('use_target_rates') %}
{%- set m = var('target_rate_smoothing') %}
{%- set min_rows = var('target_rate_min_count') %}
{%- set k = var('target_rate_folds') | int %}
{#- score rows' evidence comes from every training row, a training row's from K - 1 folds of
    them: score rows' counts are put on the training rows' scale, (K - 1) / K of their own -#}
{%- set evidence_scale = "cast(case when split = 'train' then 1 else " ~ (k - 1) / k ~ " end as double)" %}
{%- set tiers = [
    ('very_low', var('target_rate_tier_very_low')),
    ('low', var('target_rate_tier_low')),
    ('medium', var('target_rate_tier_high')),
    ('high', var('target_rate_tier_very_high')),
] %}

with leads as (

    select
        {% for column in columns %}
            cast({{ column }} as {{ text_type() }}) as {{ column }},
        {% endfor %}
        lead_id,
        split,
        cast(is_converted as integer) as is_positive,
        -- score rows get fold -1: they hold nothing out
        case when split = 'train' then {{ stable_fold('lead_id') }} else -1 end as fold_id
    from {{ ref('int_leads_filled') }}

),

training as (

    select * from leads
    where split = 'train'

),

training_long as (

    {{ unpivot_columns('training', columns, 'column_name', 'column_value') }}

),

-- every fold a lead can have: -1 (score rows) and 0 .. K-1
folds as (

    {% for fold in range(-1, var('target_rate_folds') | int) %}
        select {{ fold }} as fold_id
        {{ "union all" if not loop.last }}
    {% endfor %}

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

value_fold_counts as (

    select
        column_name,
        column_value,
        fold_id,
        count(*) as rows_in_fold,
        sum(is_positive) as positives_in_fold
    from training_long
    group by column_name, column_value, fold_id

),

-- per (column, value) seen in training and per fold: the training rows of the value outside
-- that fold (fold -1 holds nothing out), and how many of them converted
value_stats as (

    select
        value_totals.column_name,
        value_totals.column_value,
        folds.fold_id,
        value_totals.rows_total - coalesce(value_fold_counts.rows_in_fold, 0) as rows_out_of_fold,
        value_totals.positives_total
        - coalesce(value_fold_counts.positives_in_fold, 0) as positives_out_of_fold
    from value_totals
    cross join folds
    left join value_fold_counts
        on
            value_totals.column_name = value_fold_counts.column_name
            and value_totals.column_value = value_fold_counts.column_value
            and folds.fold_id = value_fold_counts.fold_id

),

-- the same over all training rows: the prior each fold's rows are shrunk toward
overall_totals as (

    select
        count(*) as rows_total,
        sum(is_positive) as positives_total
    from training

),

overall_fold_counts as (

    select
        fold_id,
        count(*) as rows_in_fold,
        sum(is_positive) as positives_in_fold
    from training
    group by fold_id

),

overall as (

    select
        folds.fold_id,
        overall_totals.rows_total - coalesce(overall_fold_counts.rows_in_fold, 0) as rows_out_of_fold,
        overall_totals.positives_total
        - coalesce(overall_fold_counts.positives_in_fold, 0) as positives_out_of_fold
    from overall_totals
    cross join folds
    left join overall_fold_counts
        on folds.fold_id = overall_fold_counts.fold_id

),

-- per lead and column: training rows and positives behind the rate (out of fold for training
-- rows) and the prior they are shrunk toward
evidence as (

    select
        leads.lead_id,
        leads.split,
        leads.fold_id,
        {% for column in columns %}
            coalesce(stats_{{ column }}.rows_out_of_fold, 0) as {{ column }}_rows,
            coalesce(stats_{{ column }}.positives_out_of_fold, 0) as {{ column }}_positives,
        {% endfor %}
        overall.positives_out_of_fold / nullif(overall.rows_out_of_fold, 0) as prior_rate
    from leads
    inner join overall
        on leads.fold_id = overall.fold_id
    {% for column in columns %}
        left join value_stats as stats_{{ column }}
            on
                stats_{{ column }}.column_name = '{{ column }}'
                and leads.{{ column }} = stats_{{ column }}.column_value
                and leads.fold_id = stats_{{ column }}.fold_id
    {% endfor %}

),

rated as (

    select
        {% for column in columns %}
            case
                when {{ column }}_rows < {{ min_rows }} then prior_rate
                else ({{ column }}_positives + {{ m }} * prior_rate) / ({{ column }}_rows + {{ m }})
            end as {{ column }}_target_rate,
        {% endfor %}
        *
    from evidence

),

final as (

    select
        lead_id,
        {% for column in columns %}
            {% if use_rates %}
                coalesce({{ column }}_target_rate, 0) as {{ column }}_target_rate,
                case
                    when {{ column }}_rows < {{ min_rows }} or coalesce(prior_rate, 0) <= 0 then 'unknown'
                    {% for tier, ratio in tiers %}
                        when {{ column }}_target_rate < {{ ratio }} * prior_rate then '{{ tier }}'
                    {% endfor %}
                    else 'very_high'
                end as {{ column }}_rate_tier,
            {% else %}
                -- family switched off (var use_target_rates): same columns, no information
                cast(0 as double) as {{ column }}_target_rate,
                'unknown' as {{ column }}_rate_tier,
            {% endif %}
        {% endfor %}
        {% for column in var('evidence_count_columns') %}
            {% if column in evidence_columns %}
                cast({{ column }}_rows as double) * {{ evidence_scale }} as {{ column }}_evidence_rows,
                cast({{ column }}_positives as double) * {{ evidence_scale }} as {{ column }}_evidence_conversions,
            {% else %}
                -- family switched off (var use_evidence_counts): same columns, no information
                cast(0 as double) as {{ column }}_evidence_rows,
                cast(0 as double) as {{ column }}_evidence_conversions,
            {% endif %}
        {% endfor %}
        prior_rate as target_rate_prior,
        -- the fold a training row's rates leave out (null for score rows): validation keeps
        -- each fold whole (python/leadscore/validation.py)
        case when fold_id >= 0 then fold_id end as rate_fold
    from rated

)

select * from final
