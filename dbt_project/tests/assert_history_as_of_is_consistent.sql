-- Point-in-time history (int_lead_history_as_of) in the feature store: present exactly for
-- the leads with a lead_date (when var use_history_as_of is on), and nested: converted <=
-- labeled <= all earlier leads of the value; a day count only after an earlier lead.
{%- set columns = var('history_as_of_columns') %}
select
    lead_id,
    lead_date
from {{ ref('fct_lead_features') }}
where
    false
    {% for column in columns %}
        or ({{ column }}_earlier_leads is null) <> (lead_date is null or not {{ var('use_history_as_of') }})
        or {{ column }}_earlier_training_leads > {{ column }}_earlier_leads
        or {{ column }}_earlier_conversions > {{ column }}_earlier_training_leads
        or ({{ column }}_days_since_last_lead is not null) <> ({{ column }}_earlier_leads > 0)
    {% endfor %}
