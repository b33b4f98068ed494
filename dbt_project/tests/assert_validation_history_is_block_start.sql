-- fct_lead_validation_history holds, for every dated training lead, its labeled history as of
-- its block's start. Rows are the leads that break one of:
--   * never more than fct_lead_features' history as of the lead's date (the block's start comes
--     first), null exactly where that is null, converted <= labeled;
--   * the same for every lead of one value in one block (its own block's labels never count),
--     which a copy of the as-of-date values would break wherever a block holds two leads of a
--     value and the first is labeled;
--   * equal to the as-of-date history for a lead on its block's first day (every training lead
--     of an earlier day is in an earlier block).
{%- set columns = var('history_as_of_columns') %}
with validation as (

    select
        validation.lead_id,
        validation.history_block,
        features.split,
        features.lead_date,
        {% for column in columns %}
            cast(leads.{{ column }} as {{ text_type() }}) as {{ column }}_value,
            validation.{{ column }}_earlier_training_leads as {{ column }}_block_start_leads,
            validation.{{ column }}_earlier_conversions as {{ column }}_block_start_conversions,
            features.{{ column }}_earlier_training_leads as {{ column }}_as_of_date_leads,
            features.{{ column }}_earlier_conversions as {{ column }}_as_of_date_conversions,
        {% endfor %}
        min(features.lead_date) over (partition by validation.history_block) as block_first_day
    from {{ ref('fct_lead_validation_history') }} as validation
    inner join {{ ref('fct_lead_features') }} as features
        on validation.lead_id = features.lead_id
    inner join {{ ref('stg_leads') }} as leads
        on validation.lead_id = leads.lead_id

),

{% for column in columns %}
    {{ column }}_spread as (

        select
            {{ column }}_value,
            history_block
        from validation
        where {{ column }}_value is not null
        group by {{ column }}_value, history_block
        having
            count(distinct {{ column }}_block_start_leads) > 1
            or count(distinct {{ column }}_block_start_conversions) > 1

    ),
{% endfor %}

broken as (

    select
        lead_id,
        history_block
    from validation
    where
        split <> 'train'
        or lead_date is null
        {% for column in columns %}
            or ({{ column }}_block_start_leads is null) <> ({{ column }}_as_of_date_leads is null)
            or {{ column }}_block_start_leads > {{ column }}_as_of_date_leads
            or {{ column }}_block_start_conversions > {{ column }}_as_of_date_conversions
            or {{ column }}_block_start_conversions > {{ column }}_block_start_leads
            or (
                lead_date = block_first_day
                and (
                    {{ column }}_block_start_leads <> {{ column }}_as_of_date_leads
                    or {{ column }}_block_start_conversions <> {{ column }}_as_of_date_conversions
                )
            )
        {% endfor %}
    {% for column in columns %}
        union all
        select
            validation.lead_id,
            validation.history_block
        from validation
        inner join {{ column }}_spread
            on
                validation.{{ column }}_value = {{ column }}_spread.{{ column }}_value
                and validation.history_block = {{ column }}_spread.history_block
    {% endfor %}

)

select * from broken
