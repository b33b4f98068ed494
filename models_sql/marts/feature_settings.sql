{#- The dbt vars that decide what fct_lead_features holds, as one JSON document, built beside
    the features (it depends on fct_lead_features, so `dbt build -s fct_lead_features+` rebuilds
    both). `leadscore train` keeps the document in the model it writes, and scoring refuses a
    feature table built with other settings: a model fitted on one set of rates, buckets or
    crosses scores nonsense on another, while every column keeps its name and type.
    The drift thresholds and score_history_test_days are not here: they change what is checked,
    not the features. A new var that changes the features belongs in this list
    (tests/test_feature_settings.py compares it with dbt_project.yml). -#}
-- depends_on: {{ ref('fct_lead_features') }}
{%- set feature_vars = [
    'rare_min_count', 'feature_crosses', 'use_feature_crosses',
    'target_rate_folds', 'target_rate_columns', 'evidence_count_columns',
    'use_target_rates', 'use_evidence_counts', 'use_history_counts',
    'group_key_columns', 'use_group_keys',
    'target_rate_smoothing', 'target_rate_min_count',
    'target_rate_tier_very_low', 'target_rate_tier_low', 'target_rate_tier_high', 'target_rate_tier_very_high',
    'use_final_round_columns', 'use_history_as_of',
    'budget_default_currency', 'budget_upper_bound_words', 'budget_lower_bound_words',
    'description_keyword_families', 'description_phone_min_digits', 'description_phone_max_digits',
    'description_script_majority',
    'history_as_of_columns', 'history_rate_smoothing', 'history_rate_prior',
    'promoted_extra_columns',
] %}
{%- set settings = {} %}
{%- for name in feature_vars %}
    {%- do settings.update({name: var(name)}) %}
{%- endfor %}
{%- set document = tojson(settings, sort_keys=true) %}
{%- if "'" in document %}
    {{ exceptions.raise_compiler_error("feature_settings: a feature var holds a single quote: " ~ document) }}
{%- endif %}

with final as (

    select
        '{{ document }}' as feature_vars,
        '{{ invocation_id }}' as dbt_invocation_id

)

select * from final
