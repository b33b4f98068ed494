-- fct_lead_validation_history holds, for every dated training lead, its labeled history as of
-- its block's start: never more than fct_lead_features' history as of the lead's date (the
-- block's start comes first), null exactly where that is null, and converted <= labeled. Rows
-- are the leads that break it.
{%- set columns = var('history_as_of_columns') %}
select
    validation.lead_id,
    validation.history_block
from {{ ref('fct_lead_validation_history') }} as validation
inner join {{ ref('fct_lead_features') }} as features
    on validation.lead_id = features.lead_id
where
    features.split <> 'train'
    or features.lead_date is null
    {% for column in columns %}
        or (validation.{{ column }}_earlier_training_leads is null)
        <> (features.{{ column }}_earlier_training_leads is null)
        or validation.{{ column }}_earlier_training_leads > features.{{ column }}_earlier_training_leads
        or validation.{{ column }}_earlier_conversions > features.{{ column }}_earlier_conversions
        or validation.{{ column }}_earlier_conversions > validation.{{ column }}_earlier_training_leads
    {% endfor %}
