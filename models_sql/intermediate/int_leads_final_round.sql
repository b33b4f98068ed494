-- The final round's columns as features, one row per lead: the two yes/no flags as they were
-- typed at ingest, the normalised channel (int_leads_channel), the budget in USD
-- (int_leads_budget), the description features (int_leads_description) and any promoted extra
-- column (int_leads_promoted_columns, var promoted_extra_columns; listed before the last four
-- description columns). lead_date passes through as a key, never a feature. For rows from a
-- qualifier-format file every feature is null or 'missing'.
with leads as (

    select
        lead_id,
        lead_date,
        {% if var('use_final_round_columns') %}
            customer_history,
            transfer_agreement
        {% else %}
            -- family switched off (var use_final_round_columns): read as a file without the columns
            cast(null as boolean) as customer_history,
            cast(null as boolean) as transfer_agreement
        {% endif %}
    from {{ ref('stg_leads') }}

),

channel as (

    select * from {{ ref('int_leads_channel') }}

),

budget as (

    select * from {{ ref('int_leads_budget') }}

),

description as (

    select * from {{ ref('int_leads_description') }}

),

promoted as (

    select * from {{ ref('int_leads_promoted_columns') }}

),

final as (

    select
        leads.lead_id,
        leads.lead_date,
        leads.customer_history,
        leads.transfer_agreement,
        channel.lead_from_channel,
        budget.budget_status,
        budget.budget_currency,
        budget.budget_low_usd,
        budget.budget_high_usd,
        description.description_length,
        description.description_word_count,
        {% for family in var('description_keyword_families') %}
            description.description_{{ family }}_keywords,
        {% endfor %}
        {% for name in var('promoted_extra_columns') %}
            promoted.{{ promoted_column_name(name) }},
        {% endfor %}
        description.description_has_phone,
        description.description_has_email,
        description.description_ascii_share,
        description.description_script
    from leads
    inner join channel on leads.lead_id = channel.lead_id
    inner join budget on leads.lead_id = budget.lead_id
    inner join description on leads.lead_id = description.lead_id
    inner join promoted on leads.lead_id = promoted.lead_id

)

select * from final
