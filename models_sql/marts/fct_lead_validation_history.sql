-- What forward-in-time validation scores a validated lead on: its labeled history as of the
-- start of its time block (int_lead_history_as_of), one row per dated training lead, under the
-- names and types of the fct_lead_features columns it stands in for. Training fits every model
-- on fct_lead_features; a fold's validated block is scored with these values in place of its
-- *_earlier_training_leads, *_earlier_conversions and *_earlier_conversion_rate, so the block's
-- own labels stay unknown to it, as a batch's labels are to its score rows. history_block is the
-- block the validation folds are cut along (python/leadscore/validation.py). Null values where
-- fct_lead_features has nulls (the history family switched off).
select
    history.lead_id,
    cast(history.history_block as integer) as history_block,
    {% for column in var('history_as_of_columns') %}
        cast(history.{{ column }}_block_start_training_leads as bigint) as {{ column }}_earlier_training_leads,
        cast(history.{{ column }}_block_start_conversions as bigint) as {{ column }}_earlier_conversions,
        cast(history.{{ column }}_block_start_conversion_rate as double) as {{ column }}_earlier_conversion_rate
        {%- if not loop.last %},{% endif %}
    {% endfor %}
from {{ ref('int_lead_history_as_of') }} as history
where history.history_block is not null
