-- Training and scoring leads in one relation, plus `split`. Renames only: `leadscore ingest`
-- already typed the columns (python/leadscore/input_format.py) and trimmed the text, empty = null.
-- The final round's six columns (input_format.FINAL_COLUMNS) are null for rows from a
-- qualifier-format file; extra_columns holds any other column of the file as JSON.
-- Every interpretation of the values is an intermediate model.
with source as (

    select
        *,
        case when is_converted is null then 'score' else 'train' end as split
    from {{ source('raw', 'leads') }}

),

final as (

    select
        lead_id,
        id,
        load_id,
        source_row,
        split,
        is_converted,
        bant_submit,
        customer_country,
        business_unit,
        com_reg_ver_win_rate,
        customer_idx,
        customer_type,
        enterprise,
        historical_existing_cnt,
        id_strategic_ver,
        it_strategic_ver,
        idit_strategic_ver,
        customer_job,
        lead_desc_length,
        inquiry_type,
        product_category,
        product_subcategory,
        product_modelname,
        {{ adapter.quote('customer_country.1') }} as customer_country_1,
        customer_position,
        response_corporate,
        expected_timeline,
        ver_cus,
        ver_pro,
        ver_win_rate_x,
        ver_win_ratio_per_bu,
        business_area,
        business_subarea,
        lead_owner,
        lead_date,
        lead_description,
        customer_history,
        lead_from_channel,
        transfer_agreement,
        expected_budget,
        extra_columns
    from source

)

select * from final
