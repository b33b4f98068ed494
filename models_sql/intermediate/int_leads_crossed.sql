-- Feature crosses: for each pair of categorical columns in var('feature_crosses'), one column
-- holding both filled values, '<first> | <second>' (business_unit_x_enterprise: 'ID | SMB').
-- Why a column of its own: the linear member is additive in log-odds, so it cannot represent a
-- crossover (a business unit that converts enterprises better and another that converts SMBs
-- better), and the trees find one only by splitting both columns in sequence. The levels are
-- bucketed like every other categorical by int_leads_bucketed (a pair with fewer than
-- var('rare_min_count') training rows -> 'other'). Var use_feature_crosses false: the same
-- columns, each one level ('off'), no information. No label is read.
{%- set names = feature_cross_columns() %}

with leads as (

    select * from {{ ref('int_leads_filled') }}

),

final as (

    select
        {% for pair in var('feature_crosses') %}
            {% if var('use_feature_crosses') -%}
                concat(leads.{{ pair[0] }}, ' | ', leads.{{ pair[1] }})
            {%- else -%}
                cast('off' as {{ text_type() }})
            {%- endif %} as {{ names[loop.index0] }},
        {% endfor %}
        leads.*
    from leads

)

select * from final
