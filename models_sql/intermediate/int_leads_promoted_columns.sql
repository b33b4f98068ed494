-- Extra input columns promoted to features. Ingest keeps every column a file has beyond the
-- known ones in raw.leads.extra_columns (JSON keyed by the file's header name); each name in
-- var('promoted_extra_columns') becomes the VARCHAR column extra_<name> (macro
-- promoted_column_name: lower case, other characters than a-z 0-9 as '_'), read with
-- json_extract_string(extra_columns, '$."<name>"'), trimmed, and bucketed like
-- int_leads_bucketed: empty or absent -> 'missing'; fewer than var('rare_min_count') TRAINING
-- rows, or never seen in training -> 'other'. Columns: lead_id, the promoted columns, split;
-- with the default [] just lead_id and split.
{%- set names = var('promoted_extra_columns') %}

with leads as (

    select
        lead_id,
        split,
        extra_columns
    from {{ ref('stg_leads') }}

),

extracted as (

    select
        lead_id,
        {% for name in names %}
            nullif(trim({{ json_member_text('extra_columns', name) }}), '')
                as {{ promoted_column_name(name) }},
        {% endfor %}
        split
    from leads

),

{% for name in names %}
    {%- set column = promoted_column_name(name) %}
    kept_{{ column }} as (

        select
            {{ column }} as kept_value
        from extracted
        where split = 'train' and {{ column }} is not null
        group by {{ column }}
        having count(*) >= {{ var('rare_min_count') }}

    ),

{% endfor %}

final as (

    select
        extracted.lead_id,
        {% for name in names %}
            case
                when extracted.{{ promoted_column_name(name) }} is null then 'missing'
                when kept_{{ promoted_column_name(name) }}.kept_value is null then 'other'
                else extracted.{{ promoted_column_name(name) }}
            end as {{ promoted_column_name(name) }},
        {% endfor %}
        extracted.split
    from extracted
    {% for name in names %}
        {%- set column = promoted_column_name(name) %}
        left join kept_{{ column }} on extracted.{{ column }} = kept_{{ column }}.kept_value
    {% endfor %}

)

select * from final
