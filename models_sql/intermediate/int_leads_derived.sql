-- Derived numeric features, computed from the normalised and filled columns. None uses the label.
--   timeline_months: midpoint of the canonical expected_timeline in months (seed
--     timeline_months); null when the timeline is missing or not one of the buckets
--   bant_answered_count: how many of Budget, Title, Needs, Timeline were answered (0..4)
--   log_desc_length: ln(1 + lead_desc_length); is_placeholder_desc: lead_desc_length = 3, the
--     placeholder value of an empty description
--   leads_per_customer, leads_per_owner, leads_per_customer_owner: rows (training and scoring)
--     sharing the customer_idx / lead_owner / both; a count, not the label
--   customer_share_of_owner: leads_per_customer_owner / leads_per_owner
--   product_count: number of products in a comma-joined product_category list (0 if missing)
--   country_matches_subsidiary: the parsed country is the responding subsidiary's country
--     (seed subsidiary_countries); null when either is unknown
--   strategic_flag_count: id_ + it_ + idit_strategic_ver
--   missing_field_count: how many of the optional fields were missing in the file
with leads as (

    select * from {{ ref('int_leads_filled') }}

),

timeline_months as (

    select
        expected_timeline,
        months
    from {{ ref('timeline_months') }}

),

subsidiaries as (

    select
        response_corporate,
        country
    from {{ ref('subsidiary_countries') }}

),

final as (

    select
        leads.lead_id,
        timeline_months.months as timeline_months,
        cast(round(leads.bant_submit * 4) as integer) as bant_answered_count,
        cast(leads.id_strategic_ver + leads.it_strategic_ver + leads.idit_strategic_ver as integer)
            as strategic_flag_count,
        ln(1 + greatest(leads.lead_desc_length, 0)) as log_desc_length,
        leads.lead_desc_length = 3 as is_placeholder_desc,
        {% if var('use_history_counts') %}
            count(*) over (partition by leads.customer_idx) as leads_per_customer,
            count(*) over (partition by leads.lead_owner) as leads_per_owner,
            count(*) over (partition by leads.customer_idx, leads.lead_owner) as leads_per_customer_owner,
            cast(count(*) over (partition by leads.customer_idx, leads.lead_owner) as double)
            / count(*) over (partition by leads.lead_owner) as customer_share_of_owner,
        {% else %}
            -- family switched off (var use_history_counts): same columns, no information
            cast(0 as bigint) as leads_per_customer,
            cast(0 as bigint) as leads_per_owner,
            cast(0 as bigint) as leads_per_customer_owner,
            cast(0 as double) as customer_share_of_owner,
        {% endif %}
        case
            when leads.product_category = 'missing' then 0
            else {{ split_count('leads.product_category', "','") }}
        end as product_count,
        case
            when leads.country = 'unknown' or subsidiaries.country is null then null
            else leads.country = subsidiaries.country
        end as country_matches_subsidiary,
        cast(leads.is_missing_customer_type as integer)
        + cast(leads.is_missing_customer_job as integer)
        + cast(leads.is_missing_inquiry_type as integer)
        + cast(leads.is_missing_product_category as integer)
        + cast(leads.is_missing_product_modelname as integer)
        + cast(leads.is_missing_expected_timeline as integer)
        + cast(leads.is_missing_business_area as integer)
        + cast(leads.is_missing_business_subarea as integer)
        + cast(leads.is_missing_historical_existing_cnt as integer)
        + cast(leads.is_missing_com_reg_ver_win_rate as integer)
        + cast(leads.is_missing_country as integer) as missing_field_count
    from leads
    left join timeline_months on leads.expected_timeline = timeline_months.expected_timeline
    left join subsidiaries on leads.response_corporate = subsidiaries.response_corporate

)

select * from final
