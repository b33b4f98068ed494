-- The final round's seeds hold what the models can read:
--   amount_multipliers.word: ASCII lower-case letters, or Korean units written with 십 백 천 만 억
--     (int_leads_budget's amount pattern reads the word after a number as exactly that)
--   currency_markers.marker, description_keywords.keyword: lower case, trimmed, not empty
--     (the texts are lower-cased before the lookup)
select
    'amount_multipliers' as seed_name,
    word as seed_value
from {{ ref('amount_multipliers') }}
where not {{ regex_matches('word', "'^([a-z]+|[십백천만억]+)$'") }}

union all

select
    'currency_markers' as seed_name,
    marker as seed_value
from {{ ref('currency_markers') }}
where marker is distinct from lower(trim(marker)) or marker = ''

union all

select
    'description_keywords' as seed_name,
    keyword as seed_value
from {{ ref('description_keywords') }}
where keyword is distinct from lower(trim(keyword)) or keyword = ''
