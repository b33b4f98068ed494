-- Spelling normalisation of the free-text category columns.
-- Each distinct raw value gets a key (macro normalise_key: case, '_'/'-', slash and comma spacing,
-- punctuation, whitespace), the key is looked up in the seed spelling_synonyms (column-specific
-- rows win over the '*' rows that apply to every column) and a key without a synonym is kept as
-- is. Work happens on distinct values, then one equality join per column brings them back.
{%- set text_columns = [
    'business_unit', 'customer_type', 'enterprise', 'customer_job', 'inquiry_type',
    'product_category', 'product_subcategory', 'product_modelname', 'customer_position',
    'expected_timeline', 'business_area', 'business_subarea'
] %}

with leads as {{ materialized_cte() }} (

    -- the final round's columns and the file's extra columns take their own models
    -- (int_leads_budget, int_leads_channel, int_leads_description, int_leads_promoted_columns)
    select
        {{ star_except([
            'lead_date', 'lead_description', 'customer_history', 'lead_from_channel', 'transfer_agreement',
            'expected_budget', 'extra_columns'
        ]) }}
    from {{ ref('stg_leads') }}

),

synonyms as (

    select
        column_name,
        raw_key,
        canonical
    from {{ ref('spelling_synonyms') }}

),

target_columns as (

    select {{ rows_of_values(text_columns) }} as column_name

),

-- '*' rows apply to every column unless that column has its own row for the key
effective_synonyms as (

    select
        column_name,
        raw_key,
        canonical
    from synonyms
    where column_name <> '*'

    union all

    select
        target_columns.column_name,
        synonyms.raw_key,
        synonyms.canonical
    from synonyms
    cross join target_columns
    where
        synonyms.column_name = '*'
        and not exists (
            select 1 as found
            from synonyms as specific
            where
                specific.column_name = target_columns.column_name
                and specific.raw_key = synonyms.raw_key
        )

),

-- read from stg_leads itself, not from the materialized `leads`: DuckDB then estimates the
-- distinct counts from the table's statistics, about right, instead of as the whole input
-- (12M at 1M leads), which made it build one join's hash table on the leads (1M rows, every
-- column) instead of on the few hundred values (3.9-5.5 s -> 2.8 s at 1M, the same rows)
distinct_values as (

    {% for column in text_columns %}
        select distinct
            '{{ column }}' as column_name,
            {{ column }} as raw_value
        from {{ ref('stg_leads') }}
        where {{ column }} is not null
        {{ "union all" if not loop.last }}
    {% endfor %}

),

keyed as (

    select
        column_name,
        raw_value,
        {{ normalise_key('raw_value') }} as raw_key
    from distinct_values

),

value_map as (

    select
        keyed.column_name,
        keyed.raw_value,
        -- the canonical value 'missing' (seed rows for 'n / a', 'nan', ...) means a missing value
        nullif(coalesce(effective_synonyms.canonical, keyed.raw_key), 'missing') as canonical
    from keyed
    left join effective_synonyms
        on
            keyed.column_name = effective_synonyms.column_name
            and keyed.raw_key = effective_synonyms.raw_key

),

final as (

    select
        {{ star_replace('leads', text_columns, 'map_{column}.canonical') }}
    from leads
    {% for column in text_columns %}
        left join value_map as map_{{ column }}
            on
                map_{{ column }}.column_name = '{{ column }}'
                and leads.{{ column }} = map_{{ column }}.raw_value
    {% endfor %}

)

select * from final
