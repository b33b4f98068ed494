-- Drift and data quality of each scored batch, one row per (batch, feature): the population
-- stability index against the training rows, the share of values training never saw and the
-- change of the missing rate, each flagged against its var. A batch is the split = 'score'
-- leads of one load. PSI = sum over buckets of (b - t) * ln(b / t), b and t the batch's and the
-- training rows' shares of the non-missing values, each at least var drift_psi_epsilon (an
-- empty bucket on one side stays finite). Numeric buckets are the training deciles
-- (int_batch_feature_counts); categories with a training share under
-- var drift_min_category_share, and values training never saw, are pooled into one bucket, so a
-- batch is not judged on categories too small to expect a few of its leads (an empty bucket
-- costs PSI the most). PSI and unseen share are flagged from var drift_min_batch_leads
-- non-missing values, the missing-rate change from as many leads.
{%- set eps = var('drift_psi_epsilon') %}
{%- set min_leads = var('drift_min_batch_leads') %}
{%- set pooled = "'(rare or unseen)'" %}

with counts as (

    select * from {{ ref('int_batch_feature_counts') }}

),

training_totals as (

    select
        feature_name,
        cast(sum(leads) as bigint) as training_leads,
        cast(sum(case when bucket is null then leads else 0 end) as bigint) as training_missing
    from counts
    where is_training
    group by feature_name

),

training_shares as (

    select
        counts.feature_name,
        counts.feature_kind,
        counts.bucket,
        cast(counts.leads as double)
        / (training_totals.training_leads - training_totals.training_missing) as training_share
    from counts
    inner join training_totals on counts.feature_name = training_totals.feature_name
    where counts.is_training and counts.bucket is not null

),

batch_totals as (

    select
        load_id,
        feature_name,
        feature_kind,
        cast(sum(leads) as bigint) as batch_leads,
        cast(sum(case when bucket is null then leads else 0 end) as bigint) as batch_missing
    from counts
    where not is_training
    group by load_id, feature_name, feature_kind

),

-- each batch bucket with what the training rows know of it
batch_buckets as (

    select
        counts.load_id,
        counts.feature_name,
        counts.feature_kind,
        counts.leads,
        training_shares.bucket is null as is_unseen,
        case
            when
                counts.feature_kind = 'categorical'
                and (
                    training_shares.bucket is null
                    or training_shares.training_share < {{ var('drift_min_category_share') }}
                )
                then {{ pooled }}
            else counts.bucket
        end as psi_bucket
    from counts
    left join training_shares
        on
            counts.feature_name = training_shares.feature_name
            and counts.bucket = training_shares.bucket
    where not counts.is_training and counts.bucket is not null

),

training_psi_buckets as (

    select
        feature_name,
        psi_bucket,
        sum(training_share) as training_share
    from (
        select
            feature_name,
            training_share,
            case
                when feature_kind = 'categorical' and training_share < {{ var('drift_min_category_share') }}
                    then {{ pooled }}
                else bucket
            end as psi_bucket
        from training_shares
    ) as pooled_training
    group by feature_name, psi_bucket

),

batch_psi_buckets as (

    select
        batch_buckets.load_id,
        batch_buckets.feature_name,
        batch_buckets.psi_bucket,
        cast(sum(batch_buckets.leads) as double)
        / max(batch_totals.batch_leads - batch_totals.batch_missing) as batch_share
    from batch_buckets
    inner join batch_totals
        on
            batch_buckets.load_id = batch_totals.load_id
            and batch_buckets.feature_name = batch_totals.feature_name
    group by batch_buckets.load_id, batch_buckets.feature_name, batch_buckets.psi_bucket

),

-- every bucket either side has, per batch
psi_grid as (

    select
        batch_totals.load_id,
        training_psi_buckets.feature_name,
        training_psi_buckets.psi_bucket
    from batch_totals
    inner join training_psi_buckets on batch_totals.feature_name = training_psi_buckets.feature_name

    union

    select
        load_id,
        feature_name,
        psi_bucket
    from batch_psi_buckets

),

psi_terms as (

    select
        psi_grid.load_id,
        psi_grid.feature_name,
        greatest(coalesce(batch_psi_buckets.batch_share, 0), {{ eps }}) as batch_share,
        greatest(coalesce(training_psi_buckets.training_share, 0), {{ eps }}) as training_share
    from psi_grid
    left join batch_psi_buckets
        on
            psi_grid.load_id = batch_psi_buckets.load_id
            and psi_grid.feature_name = batch_psi_buckets.feature_name
            and psi_grid.psi_bucket = batch_psi_buckets.psi_bucket
    left join training_psi_buckets
        on
            psi_grid.feature_name = training_psi_buckets.feature_name
            and psi_grid.psi_bucket = training_psi_buckets.psi_bucket

),

psi as (

    select
        load_id,
        feature_name,
        -- six decimals: more than a threshold needs, and the same value on every engine
        round(sum((batch_share - training_share) * ln(batch_share / training_share)), 6) as psi,
        count(*) as psi_buckets
    from psi_terms
    group by load_id, feature_name

),

unseen as (

    select
        load_id,
        feature_name,
        sum(case when is_unseen then leads else 0 end) as unseen_leads
    from batch_buckets
    group by load_id, feature_name

),

measured as (

    select
        batch_totals.load_id,
        batch_totals.feature_name,
        batch_totals.feature_kind,
        batch_totals.batch_leads,
        coalesce(training_totals.training_leads, 0) as training_leads,
        case
            when
                batch_totals.batch_leads > batch_totals.batch_missing
                and training_totals.training_leads > training_totals.training_missing
                then psi.psi
        end as psi,
        case
            when
                batch_totals.batch_leads > batch_totals.batch_missing
                and training_totals.training_leads > training_totals.training_missing
                then psi.psi_buckets
        end as psi_buckets,
        case
            when batch_totals.feature_kind = 'categorical' and batch_totals.batch_leads > batch_totals.batch_missing
                then
                    cast(coalesce(unseen.unseen_leads, 0) as double)
                    / (batch_totals.batch_leads - batch_totals.batch_missing)
        end as unseen_share,
        cast(training_totals.training_missing as double) / training_totals.training_leads as training_missing_rate,
        cast(batch_totals.batch_missing as double) / batch_totals.batch_leads as batch_missing_rate,
        batch_totals.batch_leads - batch_totals.batch_missing as batch_values
    from batch_totals
    left join training_totals on batch_totals.feature_name = training_totals.feature_name
    left join psi
        on
            batch_totals.load_id = psi.load_id
            and batch_totals.feature_name = psi.feature_name
    left join unseen
        on
            batch_totals.load_id = unseen.load_id
            and batch_totals.feature_name = unseen.feature_name

),

final as (

    select
        load_id,
        feature_name,
        feature_kind,
        batch_leads,
        batch_values,
        training_leads,
        psi,
        psi_buckets,
        unseen_share,
        training_missing_rate,
        batch_missing_rate,
        batch_missing_rate - training_missing_rate as missing_rate_change,
        -- PSI and the unseen share are over the non-missing values: enough of those, not of leads
        coalesce(batch_values >= {{ min_leads }} and psi > {{ var('drift_psi_warn') }}, false) as is_psi_warn,
        coalesce(
            batch_values >= {{ min_leads }} and unseen_share > {{ var('drift_unseen_share_warn') }}, false
        ) as is_unseen_warn,
        coalesce(
            batch_leads >= {{ min_leads }}
            and abs(batch_missing_rate - training_missing_rate) > {{ var('drift_missing_rate_change_warn') }},
            false
        ) as is_missing_rate_warn
    from measured

)

select * from final
