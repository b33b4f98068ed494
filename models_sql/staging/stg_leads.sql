-- Training and scoring leads in one relation: renamed, typed and trimmed, plus `split`.
-- Nothing else happens here; every interpretation of the values is an intermediate model.
with source as (

    select * from {{ source('raw', 'leads') }}

)

select
    cast(lead_id as varchar) as lead_id,
    cast(id as bigint) as id,
    cast(load_id as integer) as load_id,
    cast(source_row as bigint) as source_row,
    case when is_converted is null then 'score' else 'train' end as split,
    cast(is_converted as boolean) as is_converted,
    cast(bant_submit as double) as bant_submit,
    {{ clean_text('customer_country') }} as customer_country,
    {{ clean_text('business_unit') }} as business_unit,
    cast(com_reg_ver_win_rate as double) as com_reg_ver_win_rate,
    cast(customer_idx as bigint) as customer_idx,
    {{ clean_text('customer_type') }} as customer_type,
    {{ clean_text('enterprise') }} as enterprise,
    cast(historical_existing_cnt as double) as historical_existing_cnt,
    cast(id_strategic_ver as double) as id_strategic_ver,
    cast(it_strategic_ver as double) as it_strategic_ver,
    cast(idit_strategic_ver as double) as idit_strategic_ver,
    {{ clean_text('customer_job') }} as customer_job,
    cast(lead_desc_length as bigint) as lead_desc_length,
    {{ clean_text('inquiry_type') }} as inquiry_type,
    {{ clean_text('product_category') }} as product_category,
    {{ clean_text('product_subcategory') }} as product_subcategory,
    {{ clean_text('product_modelname') }} as product_modelname,
    {{ clean_text('"customer_country.1"') }} as customer_country_1,
    {{ clean_text('customer_position') }} as customer_position,
    {{ clean_text('response_corporate') }} as response_corporate,
    {{ clean_text('expected_timeline') }} as expected_timeline,
    cast(ver_cus as bigint) as ver_cus,
    cast(ver_pro as bigint) as ver_pro,
    cast(ver_win_rate_x as double) as ver_win_rate_x,
    cast(ver_win_ratio_per_bu as double) as ver_win_ratio_per_bu,
    {{ clean_text('business_area') }} as business_area,
    {{ clean_text('business_subarea') }} as business_subarea,
    cast(lead_owner as bigint) as lead_owner
from source
