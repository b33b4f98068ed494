-- Budget amounts parsed from expected_budget, the range a customer typed, in one currency (USD).
-- Rule, on each distinct text lower-cased ('X억 Y천만', a compound Korean amount, read as 'X.Y억'):
--   * amounts: every number ('10,000', '1.5', '10.000' with dot groups of three = 10000) with
--     the word right after it as a multiplier when seed amount_multipliers lists it ('k', 'm',
--     'million', 'lakh', '만', '억', ...; Korean units written with 십 백 천 만 억). In a range the
--     first amount borrows the second's multiplier when it has none and is the smaller number
--     ('$10-50K' = 10,000 to 50,000).
--   * currency: the longest marker of seed currency_markers found in the text ('r$' before '$';
--     a marker of letters counts as a whole word); none -> var('budget_default_currency').
--     Amounts become USD by seed currency_rates.
--   * budget_status and the bounds:
--       two or more amounts          'range'        low = the smaller, high = the larger
--       one amount and an upper-bound word (var budget_upper_bound_words: 'less than', 'under',
--                                    'upper_bound'  low = 0, high = the amount
--       one amount and a lower-bound word (var budget_lower_bound_words: 'more than', '+', ...)
--                                    'lower_bound'  low = the amount, high = null
--       one amount                   'point'        low = high = the amount
--       text without a number        'undecided'    ('TBD', 'not sure', 'n/a'): no amount
--       no text                      'missing'      (qualifier-format files, empty cells)
--   'Less than $10K' -> upper_bound (0, 10000); '$10,000 - $50,000' -> range (10000, 50000);
--   '1억' -> point, KRW 100,000,000 in USD.
{%- set amount_pattern = '(\d[\d,.]*)\s*([a-z]+|[십백천만억]+)?' %}
{%- set amount = "'" ~ amount_pattern ~ "'" %}
{%- set korean_compound -%} '(\d+)\s*억\s*(\d)\s*천\s*만' {%- endset %}
{%- set korean_compound_as_decimal -%} '\1.\2억' {%- endset %}
{%- set grouped_by_dots -%} '^\d{1,3}(\.\d{3})+$' {%- endset %}

with leads as (

    select
        lead_id,
        {% if var('use_final_round_columns') %}
            expected_budget
        {% else %}
            -- family switched off (var use_final_round_columns): read as a file without the column
            cast(null as varchar) as expected_budget
        {% endif %}
    from {{ ref('stg_leads') }}

),

rates as (

    select
        currency,
        usd_per_unit
    from {{ ref('currency_rates') }}

),

markers as (

    select
        marker,
        currency
    from {{ ref('currency_markers') }}

),

multipliers as (

    select
        word,
        multiplier
    from {{ ref('amount_multipliers') }}

),

budget_texts as (

    select distinct
        expected_budget as budget_text,
        {{ regex_replace_all(
            regex_replace_all('lower(expected_budget)', "'\s+'", "' '"),
            korean_compound, korean_compound_as_decimal
        ) }} as budget_key
    from leads
    where expected_budget is not null

),

-- every currency marker the text holds; the longest wins (ties: the currency code's order)
found_markers as (

    select
        budget_texts.budget_text,
        markers.currency,
        length(markers.marker) as marker_length
    from budget_texts
    inner join markers
        on
            case
                when {{ regex_matches('markers.marker', "'^[a-z]+$'") }}
                    then {{ regex_matches(
                        'budget_texts.budget_key', "'(^|[^a-z])' || markers.marker || '($|[^a-z])'"
                    ) }}
                else contains(budget_texts.budget_key, markers.marker)
            end

),

currencies as (

    select
        budget_text,
        currency
    from found_markers
    qualify row_number() over (partition by budget_text order by marker_length desc, currency asc) = 1

),

tokens as (

    select
        budget_text,
        {{ unnest_with_position([
            (regex_extract_all('budget_key', amount, 1), 'number_text'),
            (regex_extract_all('budget_key', amount, 2), 'unit_word'),
        ], 'token_position') }}
    from budget_texts

),

amounts as (

    select
        tokens.budget_text,
        multipliers.multiplier,
        tokens.token_position,
        try_cast(
            case
                when {{ regex_matches(rtrim_chars('tokens.number_text', "',.'"), grouped_by_dots) }}
                    then replace({{ rtrim_chars('tokens.number_text', "',.'") }}, '.', '')
                else replace({{ rtrim_chars('tokens.number_text', "',.'") }}, ',', '')
            end as double
        ) as number_value
    from tokens
    left join multipliers on tokens.unit_word = multipliers.word

),

-- the amounts that read as numbers, numbered again in the order they appear
numbered as (

    select
        budget_text,
        number_value,
        multiplier,
        row_number() over (partition by budget_text order by token_position) as amount_position
    from amounts
    where number_value is not null

),

first_two as (

    select
        budget_text,
        count(*) as amount_count,
        max(number_value) filter (where amount_position = 1) as first_number,
        max(multiplier) filter (where amount_position = 1) as first_multiplier,
        max(number_value) filter (where amount_position = 2) as second_number,
        max(multiplier) filter (where amount_position = 2) as second_multiplier
    from numbered
    group by budget_text

),

parsed as (

    select
        budget_texts.budget_text,
        first_two.second_number * coalesce(first_two.second_multiplier, 1) as second_amount,
        coalesce(currencies.currency, '{{ var("budget_default_currency") }}') as currency,
        first_two.first_number * coalesce(
            first_two.first_multiplier,
            case when first_two.first_number < first_two.second_number then first_two.second_multiplier end,
            1
        ) as first_amount,
        case
            when first_two.amount_count is null then 'undecided'
            when first_two.amount_count >= 2 then 'range'
            when {{ regex_matches('budget_texts.budget_key', any_word_pattern(var('budget_upper_bound_words'))) }}
                then 'upper_bound'
            when {{ regex_matches('budget_texts.budget_key', any_word_pattern(var('budget_lower_bound_words'))) }}
                then 'lower_bound'
            else 'point'
        end as budget_status
    from budget_texts
    left join first_two on budget_texts.budget_text = first_two.budget_text
    left join currencies on budget_texts.budget_text = currencies.budget_text

),

bounds as (

    select
        parsed.budget_text,
        parsed.budget_status,
        case when parsed.budget_status <> 'undecided' then parsed.currency end as budget_currency,
        {%- set low_usd -%}
            rates.usd_per_unit * case parsed.budget_status
                when 'range' then least(parsed.first_amount, parsed.second_amount)
                when 'upper_bound' then 0
                when 'lower_bound' then parsed.first_amount
                when 'point' then parsed.first_amount
            end
        {%- endset %}
        {%- set high_usd -%}
            rates.usd_per_unit * case parsed.budget_status
                when 'range' then greatest(parsed.first_amount, parsed.second_amount)
                when 'upper_bound' then parsed.first_amount
                when 'point' then parsed.first_amount
            end
        {%- endset %}
        {{ round_to(low_usd, 2) }} as budget_low_usd,
        {{ round_to(high_usd, 2) }} as budget_high_usd
    from parsed
    left join rates on parsed.currency = rates.currency

),

final as (

    select
        leads.lead_id,
        bounds.budget_low_usd,
        bounds.budget_high_usd,
        coalesce(bounds.budget_status, 'missing') as budget_status,
        coalesce(bounds.budget_currency, 'missing') as budget_currency
    from leads
    left join bounds on leads.expected_budget = bounds.budget_text

)

select * from final
