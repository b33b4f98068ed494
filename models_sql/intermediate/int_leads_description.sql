-- Features of lead_description, the customer's own text, computed in SQL. Redaction: phone
-- numbers and e-mail addresses are found, flagged and cut out first; no output column holds
-- any of the text, only counts, flags and shares.
--   e-mail: name@domain.tld; phone: a run of var('description_phone_min_digits') to
--     var('description_phone_max_digits') digits with at most two of ' ().-' between digits
--     and an optional leading '+', not part of a longer digit run ('+82 10-1234-5678',
--     '(02) 123-4567'; a date '2024-01-15' has too few digits)
--   description_length / description_word_count: characters and space-separated words of the
--     text with the contacts cut out and whitespace collapsed
--   description_<family>_keywords, one per var('description_keyword_families'): how many of
--     the family's keywords (seed description_keywords) the text holds, case and accents aside;
--     a keyword of Latin letters must start a word ('quote' matches 'quotes' and 'quotation',
--     not 'misquote'; 'cotiza' matches 'Cotización'), a Korean one may sit anywhere (particles
--     attach to the word)
--   description_ascii_share: share of the non-space characters that are ASCII
--   description_script: the language hint: 'hangul' or 'latin' when that script has at least
--     var('description_script_majority') of the letters, 'mixed' when the two together do,
--     'other' for another script, 'none' for a text without letters
-- No description (a qualifier-format file, an empty cell): every count, flag and share null,
-- description_script 'missing'.
{%- set families = var('description_keyword_families') %}
{%- set email_pattern = '[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}' %}
{%- set phone_pattern = '(^|[^\d])\+?\(?\d([ ().\-]{0,2}\d){'
    ~ (var('description_phone_min_digits') - 1) ~ ',' ~ (var('description_phone_max_digits') - 1)
    ~ '}($|[^\d])' %}
{%- set majority = var('description_script_majority') %}
{%- set email = "'" ~ email_pattern ~ "'" %}
{%- set phone = "'" ~ phone_pattern ~ "'" %}
{%- set non_ascii_or_space -%} '[^\x00-\x7F]|\s' {%- endset %}

with leads as (

    select
        lead_id,
        {% if var('use_final_round_columns') %}
            lead_description
        {% else %}
            -- family switched off (var use_final_round_columns): read as a file without the column
            cast(null as varchar) as lead_description
        {% endif %}
    from {{ ref('stg_leads') }}

),

keywords as (

    select
        family,
        keyword,
        -- what to look for in the text prepared below (lower case, accents stripped): ' quote'
        -- (the start of a word) for a keyword of Latin letters, the keyword itself for any other
        case
            when {{ regex_matches('keyword', "'^[\p{Latin}0-9 ]+$'") }}
                then ' ' || {{ strip_accents('lower(keyword)') }}
            else lower(keyword)
        end as needle
    from {{ ref('description_keywords') }}

),

without_emails as (

    select
        lead_id,
        {{ regex_matches('lead_description', email) }} as has_email,
        {{ regex_replace_all('lead_description', email, "' '") }} as description_text
    from leads
    where lead_description is not null

),

redacted as (

    select
        lead_id,
        has_email,
        {{ regex_matches('description_text', phone) }} as has_phone,
        trim({{ regex_replace_all(
            regex_replace_all('description_text', phone, "' '"), "'\s+'", "' '"
        ) }}) as description_text
    from without_emails

),

measured as (

    select
        lead_id,
        has_email,
        has_phone,
        length(description_text) as text_length,
        case when description_text = '' then 0 else {{ split_count('description_text', "' '") }} end as word_count,
        -- lower case, accents stripped, every run of other characters than letters and digits as
        -- one space, a space at each end: ' need 40 units for the cotizacion '
        ' ' || trim({{ regex_replace_all(strip_accents('lower(description_text)'), "'[^\p{L}\p{N}]+'", "' '") }})
        || ' ' as match_text,
        length({{ regex_replace_all('description_text', "'\s'", "''") }}) as non_space_chars,
        length({{ regex_replace_all('description_text', non_ascii_or_space, "''") }}) as ascii_chars,
        length({{ regex_replace_all('description_text', "'[^\p{L}]'", "''") }}) as letters,
        length({{ regex_replace_all('description_text', "'[^\p{Hangul}]'", "''") }}) as hangul_letters,
        length({{ regex_replace_all('description_text', "'[^\p{Latin}]'", "''") }}) as latin_letters
    from redacted

),

keyword_hits as (

    select
        measured.lead_id,
        keywords.family,
        keywords.keyword
    from measured
    inner join keywords on contains(measured.match_text, keywords.needle)

),

family_counts as (

    select
        {% for family in families %}
            count(distinct keyword) filter (where family = '{{ family }}') as {{ family }}_keywords,
        {% endfor %}
        lead_id
    from keyword_hits
    group by lead_id

),

final as (

    select
        leads.lead_id,
        measured.text_length as description_length,
        measured.word_count as description_word_count,
        {% for family in families %}
            case
                when measured.lead_id is not null then coalesce(family_counts.{{ family }}_keywords, 0)
            end as description_{{ family }}_keywords,
        {% endfor %}
        measured.has_phone as description_has_phone,
        measured.has_email as description_has_email,
        measured.ascii_chars / nullif(measured.non_space_chars, 0) as description_ascii_share,
        case
            when measured.lead_id is null then 'missing'
            when measured.letters = 0 then 'none'
            when measured.hangul_letters >= {{ majority }} * measured.letters then 'hangul'
            when measured.latin_letters >= {{ majority }} * measured.letters then 'latin'
            when measured.hangul_letters + measured.latin_letters >= {{ majority }} * measured.letters then 'mixed'
            else 'other'
        end as description_script
    from leads
    left join measured on leads.lead_id = measured.lead_id
    left join family_counts on leads.lead_id = family_counts.lead_id

)

select * from final
