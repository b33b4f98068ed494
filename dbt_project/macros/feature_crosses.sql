{% macro feature_cross_columns() -%}
    {#- The feature columns of var('feature_crosses'): one name per pair of columns, the two
        names joined by '_x_' (['business_unit', 'enterprise'] -> business_unit_x_enterprise).
        int_leads_crossed makes them, int_leads_bucketed buckets them, fct_lead_features carries
        them: all three read the names here. -#}
    {%- set names = [] -%}
    {%- for pair in var('feature_crosses') -%}
        {%- if pair | length != 2 -%}
            {{ exceptions.raise_compiler_error(
                "var feature_crosses: each entry is a pair of column names, got " ~ pair) }}
        {%- endif -%}
        {%- do names.append(pair | join('_x_')) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}
