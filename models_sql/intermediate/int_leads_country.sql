-- Country and region parsed from the free-text customer_country (`ADDRESS / CITY / COUNTRY`).
-- Rule: split on '/', trim each field, take the LAST non-empty field ('/ / Peru', '//India',
-- '/Delhi/India/', 'India' with no slash all give the country); normalise it like every other
-- key; map aliases, US state codes and cities through the seed country_aliases
-- ('TX' -> united states, 'Mumbai' -> india, 'Corporate' -> unknown); a missing or empty string
-- ('Corporate /  /' has no country field but 'Corporate', '' or '/ /' has none at all) is
-- 'unknown'. customer_country_1 is a duplicate and only stands in when customer_country is
-- missing. Region comes from the seed country_regions ('other' for a country not listed).
-- How much of the address was given, from the '/' fields of the text as it came:
--   has_street_address: two separators or more (ADDRESS / CITY / COUNTRY) and the first field
--     holds text ('1234 Main St / Austin / TX', 'Corporate /  /')
--   has_city: the field before the country holds text: the second of two separators or more
--     ('/Delhi/India/', '/ Chicago / IL / United States'), the first of exactly one
--     ('Chennai / India'); no separator ('India') gives no city
-- A missing text gives false for both. Why: on data with street addresses, leads that give one
-- convert apart from those of the same country that do not, which the country alone cannot hold.
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
        {{ normalise_key(last_nonempty_field('country_text', "'/'")) }} as country_key,
        length(country_text) - length(replace(country_text, '/', '')) as separators,
        trim(split_part(country_text, '/', 1)) <> '' as first_field_given,
        trim(split_part(country_text, '/', 2)) <> '' as second_field_given
    from distinct_strings

),

country_map as (

    select
        parsed.country_text,
        coalesce(aliases.country, parsed.country_key, 'unknown') as country,
        coalesce(parsed.separators >= 2 and parsed.first_field_given, false) as has_street_address,
        coalesce(
            (parsed.separators >= 2 and parsed.second_field_given)
            or (parsed.separators = 1 and parsed.first_field_given),
            false
        ) as has_city
    from parsed
    left join aliases on parsed.country_key = aliases.raw_key

),

located as (

    select
        leads.*,
        country_map.country,
        country_map.has_street_address,
        country_map.has_city,
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
