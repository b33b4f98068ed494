-- Point-in-time history: for a lead with a lead_date, what was known about its customer and its
-- owner (var history_as_of_columns) ON THAT DATE. Only leads created STRICTLY BEFORE the lead's
-- date count (a window per value, ordered by lead_date, with the range frame
-- "unbounded preceding .. 1 day preceding"): a later lead, its label, or a lead of the same
-- day never reaches an earlier lead's features. So the same SQL serves the training rows and
-- tomorrow's score rows, and a feature does not move when newer leads arrive.
-- Per column:
--   <column>_earlier_leads            leads of the value before the date (training and score)
--   <column>_earlier_training_leads   of those, the labeled (training) leads
--   <column>_earlier_conversions      of those, the converted ones
--   <column>_earlier_conversion_rate  (conversions + m * prior) / (training leads + m), m =
--                                     var('history_rate_smoothing'), prior = var('history_rate_prior');
--                                     the prior itself for a value without earlier training leads
--   <column>_days_since_last_lead     days since the value's latest earlier lead; null without one
-- And for forward-in-time validation (python/leadscore/validation.py), per dated training lead:
--   history_block                     its block: the dated training leads cut by date into
--                                     var('validation_time_blocks') blocks of about equal size,
--                                     floor(blocks * training leads of earlier days / all of them),
--                                     so a day is never split
--   <column>_block_start_training_leads, _block_start_conversions, _block_start_conversion_rate
--                                     the labeled history as of the block's start: training leads
--                                     of EARLIER BLOCKS only. A validated lead is scored on these
--                                     (fct_lead_validation_history): its own block's labels are what
--                                     a score row's batch never has, so seeing them would make the
--                                     out-of-fold scores optimistic.
-- A lead without a lead_date (a qualifier-format file) gets null in every column and is never
-- anyone's history; int_lead_target_rates keeps serving such data with out-of-fold rates.
-- One generic pass, like int_lead_target_rates: the dated leads are UNPIVOTed to
-- (column, value), one window per (column, value) counts, and the rows pivot back per lead.
{%- set columns = var('history_as_of_columns') %}
{%- set m = var('history_rate_smoothing') %}
{%- set prior = var('history_rate_prior') %}
{%- set blocks = var('validation_time_blocks') | int %}
{#- the two points in time a labeled history is read at: the lead's date, its block's start #}
{%- set as_of = ['earlier', 'block_start'] %}

with leads as (

    select
        lead_id,
        {% for column in columns %}
            cast({{ column }} as {{ text_type() }}) as {{ column }},
        {% endfor %}
        cast(is_converted as integer) as is_positive,
        -- the validation blocks need the date whether or not the history family is on
        lead_date as block_date,
        {% if var('use_history_as_of') %}
            lead_date
        {% else %}
            -- family switched off (var use_history_as_of): as if no lead had a date
            cast(null as date) as lead_date
        {% endif %}
    from {{ ref('stg_leads') }}

),

dated as (

    select * from leads
    where lead_date is not null

),

dated_long as (

    {{ unpivot_columns('dated', columns, 'column_name', 'column_value') }}

),

blocks as (

    select
        lead_id,
        cast(floor({{ blocks }} * {{ fraction('count(*) over earlier_days', 'count(*) over ()') }}) as integer)
            as history_block
    from leads
    where is_positive is not null and block_date is not null
    window earlier_days as (
        order by block_date
        range between unbounded preceding and interval 1 day preceding
    )

),

block_totals as (

    select
        dated_long.column_name,
        dated_long.column_value,
        blocks.history_block,
        count(*) as training_leads,
        sum(dated_long.is_positive) as conversions
    from dated_long
    inner join blocks on dated_long.lead_id = blocks.lead_id
    group by dated_long.column_name, dated_long.column_value, blocks.history_block

),

-- per value and block: the labeled leads of the value in earlier blocks
block_start as (

    select
        column_name,
        column_value,
        history_block,
        coalesce(sum(training_leads) over earlier_blocks, 0) as training_leads,
        coalesce(sum(conversions) over earlier_blocks, 0) as conversions
    from block_totals
    window earlier_blocks as (
        partition by column_name, column_value
        order by history_block
        rows between unbounded preceding and 1 preceding
    )

),

history as (

    select
        lead_id,
        column_name,
        lead_date,
        column_value,
        count(*) over earlier as earlier_leads,
        -- is_positive is null for a score lead: count() skips it
        count(is_positive) over earlier as earlier_training_leads,
        coalesce(sum(is_positive) over earlier, 0) as earlier_conversions,
        max(lead_date) over earlier as last_lead_date
    from dated_long
    window earlier as (
        partition by column_name, column_value
        order by lead_date
        range between unbounded preceding and interval 1 day preceding
    )

),

history_both as (

    select
        history.lead_id,
        history.column_name,
        history.lead_date,
        history.earlier_leads,
        history.earlier_training_leads,
        history.earlier_conversions,
        history.last_lead_date,
        block_start.training_leads as block_start_training_leads,
        block_start.conversions as block_start_conversions
    from history
    left join blocks on history.lead_id = blocks.lead_id
    left join block_start
        on
            history.column_name = block_start.column_name
            and history.column_value = block_start.column_value
            and blocks.history_block = block_start.history_block

),

final as (

    select
        {% for column in columns %}
            max(history.earlier_leads) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_earlier_leads,
            max(history.earlier_training_leads) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_earlier_training_leads,
            cast(max(history.earlier_conversions) filter (
                where history.column_name = '{{ column }}'
            ) as bigint) as {{ column }}_earlier_conversions,
            max(history.block_start_training_leads) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_block_start_training_leads,
            cast(max(history.block_start_conversions) filter (
                where history.column_name = '{{ column }}'
            ) as bigint) as {{ column }}_block_start_conversions,
            {% for point in as_of %}
                max(
                    {{ fraction(
                        '(history.' ~ point ~ '_conversions + ' ~ m ~ ' * ' ~ prior ~ ')',
                        '(history.' ~ point ~ '_training_leads + ' ~ m ~ ')'
                    ) }}
                ) filter (
                    where history.column_name = '{{ column }}'
                ) as {{ column }}_{{ point }}_conversion_rate,
            {% endfor %}
            max({{ days_between('history.last_lead_date', 'history.lead_date') }}) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_days_since_last_lead,
        {% endfor %}
        leads.lead_id,
        max(blocks.history_block) as history_block
    from leads
    left join history_both as history on leads.lead_id = history.lead_id
    left join blocks on leads.lead_id = blocks.lead_id
    group by leads.lead_id

)

select * from final
