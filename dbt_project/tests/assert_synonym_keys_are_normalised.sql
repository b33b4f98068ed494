-- Every raw_key in the synonym, channel and country seeds must already be in normalised form, or the
-- row could never match (normalise_key is applied to the data before the lookup).
select
    'spelling_synonyms' as seed_name,
    raw_key
from {{ ref('spelling_synonyms') }}
where raw_key is distinct from {{ normalise_key('raw_key') }}

union all

select
    'country_aliases' as seed_name,
    raw_key
from {{ ref('country_aliases') }}
where raw_key is distinct from {{ normalise_key('raw_key') }}

union all

select
    'channel_synonyms' as seed_name,
    raw_key
from {{ ref('channel_synonyms') }}
where raw_key is distinct from {{ normalise_key('raw_key') }}
