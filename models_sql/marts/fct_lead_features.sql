-- One row per lead (training and scoring) with every feature the training job uses.
-- Contract enforced: the Python job treats every column but the keys lead_id, id, split,
-- is_converted, lead_date and rate_fold as a feature (numeric types numeric, VARCHAR
-- categorical), so only features belong here. lead_date (null for a qualifier-format file)
-- orders the leads in time for validation and is never a feature; rate_fold (the fold a
-- training row's out-of-fold rates leave out) is what random validation folds are made of.
-- The final round's features (int_leads_final_round) and the point-in-time history
-- (int_lead_history_as_of) come last; they are null or 'missing' for rows from a
-- qualifier-format file. The group keys (<column>_group_key, var group_key_columns)
-- are the one exception to "only features": raw identifiers that the training job hands to its
-- mixed-effects member only (the trees read the same identifiers' rates and counts). The
-- contract orders the table's columns as _models.yml lists them, whatever the order of this
-- select (the loops come first here).
{%- set rate_columns = var('target_rate_columns') %}
{#- Features counted over every lead whatever its date (out-of-fold target rates, evidence
    counts, lead counts per customer / owner) would let a dated lead see later leads: for a row
    with a lead_date they are null, and the point-in-time *_earlier_* columns carry that history
    as of the lead's date. Rows without a date (qualifier files) keep them. #}
{%- set undated = 'final_round.lead_date is null' %}

with bucketed as (

    select * from {{ ref('int_leads_bucketed') }}

),

target_rates as (

    select * from {{ ref('int_lead_target_rates') }}

),

derived as (

    select * from {{ ref('int_leads_derived') }}

),

final_round as (

    select * from {{ ref('int_leads_final_round') }}

),

history as (

    select * from {{ ref('int_lead_history_as_of') }}

),

final as (

    select
        bucketed.lead_id,
        bucketed.id,
        bucketed.split,
        bucketed.is_converted,
        final_round.lead_date,
        target_rates.rate_fold,
        bucketed.business_unit,
        bucketed.enterprise,
        bucketed.customer_type,
        bucketed.customer_job,
        bucketed.inquiry_type,
        bucketed.product_category,
        bucketed.product_subcategory,
        bucketed.product_modelname,
        bucketed.customer_position,
        bucketed.expected_timeline,
        bucketed.business_area,
        bucketed.business_subarea,
        bucketed.country,
        bucketed.region,
        bucketed.response_corporate,
        {% for column in feature_cross_columns() %}
            bucketed.{{ column }},
        {% endfor %}
        cast(bucketed.bant_submit as double) as bant_submit,
        cast(bucketed.lead_desc_length as double) as lead_desc_length,
        cast(bucketed.ver_cus as double) as ver_cus,
        cast(bucketed.ver_pro as double) as ver_pro,
        cast(bucketed.id_strategic_ver as double) as id_strategic_ver,
        cast(bucketed.it_strategic_ver as double) as it_strategic_ver,
        cast(bucketed.idit_strategic_ver as double) as idit_strategic_ver,
        cast(bucketed.ver_win_rate_x as double) as ver_win_rate_x,
        cast(bucketed.ver_win_ratio_per_bu as double) as ver_win_ratio_per_bu,
        cast(bucketed.com_reg_ver_win_rate as double) as com_reg_ver_win_rate,
        cast(bucketed.historical_existing_cnt as double) as historical_existing_cnt,
        bucketed.is_missing_customer_type,
        bucketed.is_missing_customer_job,
        bucketed.is_missing_inquiry_type,
        bucketed.is_missing_product_category,
        bucketed.is_missing_product_modelname,
        bucketed.is_missing_expected_timeline,
        bucketed.is_missing_business_area,
        bucketed.is_missing_business_subarea,
        bucketed.is_missing_historical_existing_cnt,
        bucketed.is_missing_com_reg_ver_win_rate,
        bucketed.is_missing_ver_win_ratio_per_bu,
        bucketed.is_missing_country,
        {% for column in rate_columns %}
            case when {{ undated }} then target_rates.{{ column }}_target_rate end as {{ column }}_target_rate,
            case when {{ undated }} then target_rates.{{ column }}_rate_tier end as {{ column }}_rate_tier,
        {% endfor %}
        {% for column in var('evidence_count_columns') %}
            case
                when {{ undated }} then target_rates.{{ column }}_evidence_rows
            end as {{ column }}_evidence_rows,
            case
                when {{ undated }} then target_rates.{{ column }}_evidence_conversions
            end as {{ column }}_evidence_conversions,
        {% endfor %}
        derived.timeline_months,
        derived.bant_answered_count,
        derived.log_desc_length,
        derived.is_placeholder_desc,
        case when {{ undated }} then derived.leads_per_customer end as leads_per_customer,
        case when {{ undated }} then derived.leads_per_owner end as leads_per_owner,
        case when {{ undated }} then derived.leads_per_customer_owner end as leads_per_customer_owner,
        case when {{ undated }} then derived.customer_share_of_owner end as customer_share_of_owner,
        derived.product_count,
        derived.country_matches_subsidiary,
        bucketed.has_street_address,
        bucketed.has_city,
        derived.strategic_flag_count,
        derived.missing_field_count,
        {% for column in var('history_as_of_columns') %}
            cast(history.{{ column }}_earlier_leads as bigint) as {{ column }}_earlier_leads,
            cast(history.{{ column }}_earlier_training_leads as bigint) as {{ column }}_earlier_training_leads,
            cast(history.{{ column }}_earlier_conversions as bigint) as {{ column }}_earlier_conversions,
            cast(history.{{ column }}_earlier_conversion_rate as double) as {{ column }}_earlier_conversion_rate,
            cast(history.{{ column }}_days_since_last_lead as bigint) as {{ column }}_days_since_last_lead,
        {% endfor %}
        {% for name in var('promoted_extra_columns') %}
            final_round.{{ promoted_column_name(name) }},
        {% endfor %}
        {% for family in var('description_keyword_families') %}
            cast(final_round.description_{{ family }}_keywords as bigint) as description_{{ family }}_keywords,
        {% endfor %}
        final_round.customer_history,
        final_round.transfer_agreement,
        final_round.lead_from_channel,
        final_round.budget_status,
        final_round.budget_currency,
        cast(final_round.budget_low_usd as double) as budget_low_usd,
        cast(final_round.budget_high_usd as double) as budget_high_usd,
        cast(final_round.description_length as bigint) as description_length,
        cast(final_round.description_word_count as bigint) as description_word_count,
        final_round.description_has_phone,
        final_round.description_has_email,
        cast(final_round.description_ascii_share as double) as description_ascii_share,
        {#- group keys: the raw identifiers themselves, never bucketed, for the mixed-effects
            member's one shrunk intercept per customer / owner (a family that is off: nulls) #}
        {% for column in var('group_key_columns') %}
            cast({{ 'bucketed.' ~ column if var('use_group_keys') else 'null' }} as {{ text_type() }})
                as {{ column }}_group_key,
        {% endfor %}
        final_round.description_script
    from bucketed
    inner join target_rates on bucketed.lead_id = target_rates.lead_id
    inner join derived on bucketed.lead_id = derived.lead_id
    inner join final_round on bucketed.lead_id = final_round.lead_id
    inner join history on bucketed.lead_id = history.lead_id

)

select * from final
