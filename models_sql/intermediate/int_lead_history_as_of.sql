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
-- A lead without a lead_date (a qualifier-format file) gets null in every column and is never
-- anyone's history; int_lead_target_rates keeps serving such data with out-of-fold rates.
-- One generic pass, like int_lead_target_rates: the dated leads are UNPIVOTed to
-- (column, value), one window per (column, value) counts, and the rows pivot back per lead.
{%- set columns = var('history_as_of_columns') %}
{%- set m = var('history_rate_smoothing') %}
{%- set prior = var('history_rate_prior') %}

with leads as (

    select
        lead_id,
        {% for column in columns %}
            cast({{ column }} as {{ text_type() }}) as {{ column }},
        {% endfor %}
        cast(is_converted as integer) as is_positive,
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

history as (

    select
        lead_id,
        column_name,
        lead_date,
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
            max(
                {{ fraction(
                    '(history.earlier_conversions + ' ~ m ~ ' * ' ~ prior ~ ')',
                    '(history.earlier_training_leads + ' ~ m ~ ')'
                ) }}
            ) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_earlier_conversion_rate,
            max({{ days_between('history.last_lead_date', 'history.lead_date') }}) filter (
                where history.column_name = '{{ column }}'
            ) as {{ column }}_days_since_last_lead,
        {% endfor %}
        leads.lead_id
    from leads
    left join history on leads.lead_id = history.lead_id
    group by leads.lead_id

)

select * from final
