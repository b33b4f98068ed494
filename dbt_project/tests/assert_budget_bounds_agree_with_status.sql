-- A budget's bounds say what its status says: low <= high; a range or a point has both ends,
-- an upper bound low = 0 and a high end, a lower bound a low end and no high end, an undecided
-- or missing budget neither.
select
    lead_id,
    budget_status,
    budget_low_usd,
    budget_high_usd
from {{ ref('fct_lead_features') }}
where
    budget_low_usd > budget_high_usd
    or case budget_status
        when 'range' then budget_low_usd is null or budget_high_usd is null
        when 'point' then budget_low_usd is distinct from budget_high_usd or budget_low_usd is null
        when 'upper_bound' then budget_low_usd is distinct from 0 or budget_high_usd is null
        when 'lower_bound' then budget_low_usd is null or budget_high_usd is not null
        else budget_low_usd is not null or budget_high_usd is not null
    end
