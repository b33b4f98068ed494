-- Country and region parsed from the free-text customer_country (`ADDRESS / CITY / COUNTRY`).
-- Rule: split on '/', trim each field, take the LAST non-empty field ('/ / Peru', '//India',
-- '/Delhi/India/', 'India' with no slash all give the country); normalise it like every other
-- key; map aliases, US state codes and cities through the seed country_aliases
-- ('TX' -> united states, 'Mumbai' -> india, 'Corporate' -> unknown); a missing or empty string
-- ('Corporate /  /' has no country field but 'Corporate', '' or '/ /' has none at all) is
-- 'unknown'. customer_country_1 is a duplicate and only stands in when customer_country is
-- missing. Region comes from the seed country_regions ('other' for a country not listed).
with leads as (

    select
        {{ star_except(['customer_country', 'customer_country_1']) }},
        coalesce(customer_country, customer_country_1) as country_text
    from {{ ref('int_leads_normalised') }}

),

aliases as (

    select
        raw_key,
        country
    from {{ ref('country_aliases') }}

),

regions as (

    select
        country,
        region
    from {{ ref('country_regions') }}

),

distinct_strings as (

    select distinct country_text
    from leads

),

parsed as (

    select
        country_text,
        {{ normalise_key(last_nonempty_field('country_text', "'/'")) }} as country_key
    from distinct_strings

),

country_map as (

    select
        parsed.country_text,
        coalesce(aliases.country, parsed.country_key, 'unknown') as country
    from parsed
    left join aliases on parsed.country_key = aliases.raw_key

),

located as (

    select
        leads.*,
        country_map.country,
        coalesce(regions.region, 'other') as region
    from leads
    left join country_map
        on leads.country_text is not distinct from country_map.country_text
    left join regions on country_map.country = regions.country

),

final as (

    select {{ star_except(['country_text']) }}
    from located

)

select * from final
