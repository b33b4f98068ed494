-- Missing-value fills, one rule per column, plus is_missing_* indicators where missingness
-- carries signal (the indicators are taken BEFORE the fill). Every lookup is learned on
-- training rows only (split = 'train') and applied to every row.
--   id_strategic_ver, it_strategic_ver, idit_strategic_ver: 1 or missing, never 0 -> missing = 0
--   ver_win_rate_x: a function of business_area -> rebuilt from business_area (mode of the
--     training rows' values for that area); still missing (no area, or an area never seen with
--     a value) -> 0
--   ver_win_ratio_per_bu: a function of (business_area, business_unit) -> rebuilt the same way;
--     else 0
--   com_reg_ver_win_rate: a function of (business_area, business_unit, response_corporate)
--     where present -> rebuilt the same way; else 0
--   historical_existing_cnt: earlier conversions of the customer -> the largest value the
--     training rows of the same customer_idx have; else 0 (a customer with no history)
--   bant_submit, lead_desc_length, ver_cus, ver_pro: never missing in the files -> 0
--   category text columns: missing -> the level 'missing'; country: already 'unknown'
with leads as (

    select * from {{ ref('int_leads_country') }}

),

training as (

    select * from leads
    where split = 'train'

),

ver_win_rate_x_lookup as (

    select
        business_area,
        mode(ver_win_rate_x) as ver_win_rate_x
    from training
    where business_area is not null and ver_win_rate_x is not null
    group by business_area

),

ver_win_ratio_per_bu_lookup as (

    select
        business_area,
        business_unit,
        mode(ver_win_ratio_per_bu) as ver_win_ratio_per_bu
    from training
    where business_area is not null and ver_win_ratio_per_bu is not null
    group by business_area, business_unit

),

com_reg_ver_win_rate_lookup as (

    select
        business_area,
        business_unit,
        response_corporate,
        mode(com_reg_ver_win_rate) as com_reg_ver_win_rate
    from training
    where business_area is not null and com_reg_ver_win_rate is not null
    group by business_area, business_unit, response_corporate

),

customer_history_lookup as (

    select
        customer_idx,
        max(historical_existing_cnt) as historical_existing_cnt
    from training
    where historical_existing_cnt is not null
    group by customer_idx

),

final as (

    select
        leads.lead_id,
        leads.id,
        leads.split,
        leads.is_converted,
        leads.customer_idx,
        leads.lead_owner,
        leads.has_street_address,
        leads.has_city,
        coalesce(leads.bant_submit, 0) as bant_submit,
        coalesce(leads.lead_desc_length, 0) as lead_desc_length,
        coalesce(leads.ver_cus, 0) as ver_cus,
        coalesce(leads.ver_pro, 0) as ver_pro,
        coalesce(leads.id_strategic_ver, 0) as id_strategic_ver,
        coalesce(leads.it_strategic_ver, 0) as it_strategic_ver,
        coalesce(leads.idit_strategic_ver, 0) as idit_strategic_ver,
        coalesce(leads.ver_win_rate_x, ver_win_rate_x_lookup.ver_win_rate_x, 0) as ver_win_rate_x,
        coalesce(
            leads.ver_win_ratio_per_bu, ver_win_ratio_per_bu_lookup.ver_win_ratio_per_bu, 0
        ) as ver_win_ratio_per_bu,
        coalesce(
            leads.com_reg_ver_win_rate, com_reg_ver_win_rate_lookup.com_reg_ver_win_rate, 0
        ) as com_reg_ver_win_rate,
        coalesce(
            leads.historical_existing_cnt, customer_history_lookup.historical_existing_cnt, 0
        ) as historical_existing_cnt,
        coalesce(leads.business_unit, 'missing') as business_unit,
        coalesce(leads.enterprise, 'missing') as enterprise,
        coalesce(leads.customer_type, 'missing') as customer_type,
        coalesce(leads.customer_job, 'missing') as customer_job,
        coalesce(leads.inquiry_type, 'missing') as inquiry_type,
        coalesce(leads.product_category, 'missing') as product_category,
        coalesce(leads.product_subcategory, 'missing') as product_subcategory,
        coalesce(leads.product_modelname, 'missing') as product_modelname,
        coalesce(leads.customer_position, 'missing') as customer_position,
        coalesce(leads.response_corporate, 'missing') as response_corporate,
        coalesce(leads.expected_timeline, 'missing') as expected_timeline,
        coalesce(leads.business_area, 'missing') as business_area,
        coalesce(leads.business_subarea, 'missing') as business_subarea,
        coalesce(leads.country, 'unknown') as country,
        coalesce(leads.region, 'unknown') as region,
        leads.customer_type is null as is_missing_customer_type,
        leads.customer_job is null as is_missing_customer_job,
        leads.inquiry_type is null as is_missing_inquiry_type,
        leads.product_category is null as is_missing_product_category,
        leads.product_modelname is null as is_missing_product_modelname,
        leads.expected_timeline is null as is_missing_expected_timeline,
        leads.business_area is null as is_missing_business_area,
        leads.business_subarea is null as is_missing_business_subarea,
        leads.historical_existing_cnt is null as is_missing_historical_existing_cnt,
        leads.com_reg_ver_win_rate is null as is_missing_com_reg_ver_win_rate,
        leads.ver_win_ratio_per_bu is null as is_missing_ver_win_ratio_per_bu,
        coalesce(leads.country, 'unknown') = 'unknown' as is_missing_country
    from leads
    left join ver_win_rate_x_lookup
        on leads.business_area = ver_win_rate_x_lookup.business_area
    left join ver_win_ratio_per_bu_lookup
        on
            leads.business_area = ver_win_ratio_per_bu_lookup.business_area
            and leads.business_unit = ver_win_ratio_per_bu_lookup.business_unit
    left join com_reg_ver_win_rate_lookup
        on
            leads.business_area = com_reg_ver_win_rate_lookup.business_area
            and leads.business_unit = com_reg_ver_win_rate_lookup.business_unit
            and leads.response_corporate = com_reg_ver_win_rate_lookup.response_corporate
    left join customer_history_lookup
        on leads.customer_idx = customer_history_lookup.customer_idx

)

select * from final
