{#- The column lists the generic intermediate models loop over, in one place. Adding a column to
    a list adds it to the model (and the mart picks it up where listed there too). -#}

{% macro normalised_text_columns() -%}
    {{ return([
        'business_unit', 'customer_type', 'enterprise', 'customer_job', 'inquiry_type',
        'product_category', 'product_subcategory', 'product_modelname', 'customer_position',
        'expected_timeline', 'business_area', 'business_subarea'
    ]) }}
{%- endmacro %}


{% macro bucketed_columns() -%}
    {#- Categorical features that get rare-value buckets (int_leads_bucketed). -#}
    {{ return([
        'business_unit', 'customer_type', 'enterprise', 'customer_job', 'inquiry_type',
        'product_category', 'product_subcategory', 'product_modelname', 'customer_position',
        'expected_timeline', 'business_area', 'business_subarea', 'country', 'region',
        'response_corporate'
    ]) }}
{%- endmacro %}


{% macro target_rate_columns() -%}
    {#- High-cardinality columns that get an out-of-fold smoothed conversion rate and a tier
        (int_lead_target_rates). Values are taken as text, so ids work as well as names. -#}
    {{ return([
        'customer_idx', 'lead_owner', 'product_modelname', 'product_category', 'country',
        'response_corporate', 'customer_job', 'customer_position', 'inquiry_type',
        'business_subarea', 'customer_type'
    ]) }}
{%- endmacro %}
