-- One row per scored batch (the split = 'score' leads of one load): how far it drifted from
-- the training rows (batch_feature_drift, summarised: the worst feature of each measure and the
-- features over each threshold) and its estimated positive rate, the mean conversion_probability
-- of its current scores, beside the rate the current model's probabilities are calibrated to
-- (its target prevalence, else its training rows' positive rate). Boolean warn flags against the
-- drift_* vars; a batch under var drift_min_batch_leads is reported but never flagged. A view
-- over scored_leads: the scores arrive after dbt build, and the nightly job reads this after
-- scoring.
{%- set min_leads = var('drift_min_batch_leads') %}
{%- set ratio = var('drift_positive_rate_ratio_warn') %}

with feature_drift as (

    select * from {{ ref('batch_feature_drift') }}

),

loads as (

    select
        load_id,
        file_name,
        loaded_at
    from {{ source('raw', 'loads') }}

),

batch_leads as (

    select
        lead_id,
        load_id
    from {{ ref('stg_leads') }}
    where split = 'score'

),

scores as (

    select
        lead_id,
        conversion_probability
    from {{ ref('scored_leads') }}

),

current_model as (

    select
        model_version,
        train_positive_rate,
        coalesce(target_prevalence, train_positive_rate) as expected_positive_rate
    from {{ ref('model_registry') }}
    where is_current

),

batch_scores as (

    select
        batch_leads.load_id,
        count(scores.lead_id) as scored_leads,
        avg(scores.conversion_probability) as estimated_positive_rate
    from batch_leads
    left join scores on batch_leads.lead_id = scores.lead_id
    group by batch_leads.load_id

),

by_batch as (

    select
        load_id,
        cast(max(batch_leads) as bigint) as batch_leads,
        count(psi) as features_compared,
        max(psi) as max_psi,
        max_by(feature_name, psi) as max_psi_feature,
        cast(sum(case when is_psi_warn then 1 else 0 end) as bigint) as features_over_psi,
        {{ drift_string_list(
            "case when is_psi_warn then feature_name || ' ' || cast(round(psi, 3) as " ~ text_type() ~ ") end",
            'psi'
        ) }} as psi_warn_features,
        max(unseen_share) as max_unseen_share,
        max_by(feature_name, unseen_share) as max_unseen_feature,
        {{ drift_string_list(
            "case when is_unseen_warn then feature_name || ' ' || cast(round(unseen_share, 3) as " ~ text_type() ~ ") end",
            'unseen_share'
        ) }} as unseen_warn_features,
        max(abs(missing_rate_change)) as max_missing_rate_change,
        max_by(feature_name, abs(missing_rate_change)) as max_missing_rate_change_feature,
        {{ drift_string_list(
            "case when is_missing_rate_warn then feature_name || ' '
            || cast(round(missing_rate_change, 3) as " ~ text_type() ~ ") end",
            'abs(missing_rate_change)'
        ) }} as missing_rate_warn_features,
        cast(
            sum(case when is_psi_warn or is_unseen_warn or is_missing_rate_warn then 1 else 0 end) as bigint
        ) as features_flagged
    from feature_drift
    group by load_id

),

joined as (

    select
        by_batch.load_id,
        loads.file_name,
        loads.loaded_at,
        by_batch.batch_leads,
        by_batch.batch_leads >= {{ min_leads }} as has_enough_leads,
        by_batch.features_compared,
        by_batch.features_flagged,
        by_batch.max_psi,
        by_batch.max_psi_feature,
        by_batch.features_over_psi,
        by_batch.psi_warn_features,
        by_batch.max_unseen_share,
        by_batch.max_unseen_feature,
        by_batch.unseen_warn_features,
        by_batch.max_missing_rate_change,
        by_batch.max_missing_rate_change_feature,
        by_batch.missing_rate_warn_features,
        coalesce(batch_scores.scored_leads, 0) as scored_leads,
        batch_scores.estimated_positive_rate,
        current_model.model_version,
        current_model.train_positive_rate,
        current_model.expected_positive_rate,
        batch_scores.estimated_positive_rate / nullif(current_model.expected_positive_rate, 0) as positive_rate_ratio
    from by_batch
    left join loads on by_batch.load_id = loads.load_id
    left join batch_scores on by_batch.load_id = batch_scores.load_id
    left join current_model on true

),

final as (

    select
        *,
        features_over_psi > 0 as is_psi_warn,
        unseen_warn_features is not null as is_unseen_warn,
        missing_rate_warn_features is not null as is_missing_rate_warn,
        coalesce(
            scored_leads >= {{ min_leads }}
            and (positive_rate_ratio > {{ ratio }} or positive_rate_ratio < 1.0 / {{ ratio }}),
            false
        ) as is_positive_rate_warn
    from joined

)

select
    *,
    is_psi_warn or is_unseen_warn or is_missing_rate_warn or is_positive_rate_warn as has_warning
from final
