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
-- Plus a tier by rate / prior: very_low, low, medium, high, very_high (thresholds are vars),
-- and 'unknown' when the value has too few rows behind it.
-- Evidence counts (var evidence_count_columns, switched by var use_evidence_counts): the rows
-- and conversions behind the rate, on the same out-of-fold basis. A rate of 0.15 from 2 leads
-- and from 200 leads are different facts; the counts let the model tell them apart.
-- One generic pass: the training rows are UNPIVOTed to (column, value) and aggregated once into
-- totals and per-fold lists; each column then needs one equality join against that small table,
-- and "out of fold" is total minus the row's own fold element.
{%- set columns = var('target_rate_columns') %}
{%- set evidence_columns = var('evidence_count_columns') if var('use_evidence_counts') else [] %}
{%- set use_rates = var('use_target_rates') %}
{%- set m = var('target_rate_smoothing') %}
{%- set min_rows = var('target_rate_min_count') %}
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
        {% for column in columns %}
            {%- set stats -%} stats_{{ column }} {%- endset %}
            coalesce({{ out_of_fold(stats, 'rows') }}, 0) as {{ column }}_rows,
            coalesce({{ out_of_fold(stats, 'positives') }}, 0) as {{ column }}_positives,
        {% endfor %}
        {{ out_of_fold('overall', 'positives') }}
        / nullif({{ out_of_fold('overall', 'rows') }}, 0) as prior_rate
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
                cast({{ column }}_rows as double) as {{ column }}_evidence_rows,
                cast({{ column }}_positives as double) as {{ column }}_evidence_conversions,
            {% else %}
                -- family switched off (var use_evidence_counts): same columns, no information
                cast(0 as double) as {{ column }}_evidence_rows,
                cast(0 as double) as {{ column }}_evidence_conversions,
            {% endif %}
        {% endfor %}
        prior_rate as target_rate_prior
    from rated

)

select * from final
