-- The channel a lead came in by (lead_from_channel), normalised like the category columns of
-- int_leads_normalised: each distinct raw value gets its key (macro normalise_key), the key is
-- looked up in the seed channel_synonyms ('Web Form', 'website', 'contact-us' -> 'web form';
-- 'Trade Show', 'expo' -> 'event'; a canonical 'missing' means no channel) and a key without a
-- synonym is kept as it is. Then the levels are fixed like int_leads_bucketed's: no channel ->
-- 'missing'; fewer than var('rare_min_count') TRAINING rows, or never seen in training ->
-- 'other'.
with leads as (

    select
        lead_id,
        split,
        {% if var('use_final_round_columns') %}
            lead_from_channel
        {% else %}
            -- family switched off (var use_final_round_columns): read as a file without the column
            cast(null as varchar) as lead_from_channel
        {% endif %}
    from {{ ref('stg_leads') }}

),

synonyms as (

    select
        raw_key,
        canonical
    from {{ ref('channel_synonyms') }}

),

distinct_values as (

    select distinct lead_from_channel as raw_value
    from leads
    where lead_from_channel is not null

),

keyed as (

    select
        raw_value,
        {{ normalise_key('raw_value') }} as raw_key
    from distinct_values

),

value_map as (

    select
        keyed.raw_value,
        nullif(coalesce(synonyms.canonical, keyed.raw_key), 'missing') as channel
    from keyed
    left join synonyms on keyed.raw_key = synonyms.raw_key

),

normalised as (

    select
        leads.lead_id,
        leads.split,
        value_map.channel
    from leads
    left join value_map on leads.lead_from_channel = value_map.raw_value

),

kept_levels as (

    select channel
    from normalised
    where split = 'train' and channel is not null
    group by channel
    having count(*) >= {{ var('rare_min_count') }}

),

final as (

    select
        normalised.lead_id,
        case
            when normalised.channel is null then 'missing'
            when kept_levels.channel is null then 'other'
            else normalised.channel
        end as lead_from_channel
    from normalised
    left join kept_levels on normalised.channel = kept_levels.channel

)

select * from final
