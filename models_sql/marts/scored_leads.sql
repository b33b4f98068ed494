-- The current score of every scored lead: the current model's latest score per lead, ranked among
-- ALL those scores. A view, so analysts see new scores (and a promote or rollback of the current
-- model) as soon as they commit, without another dbt run; the history stays queryable as a source.
--
-- The latest score per lead and model is ops.latest_scores, which each scoring run keeps inside
-- the transaction that appends it to ops.score_history (python/leadscore/tables.py): reading it
-- costs the same on the 1000th night as on the first, where a window over the whole history
-- grew with every night. On Spark the scoring job appends to Spark's score history only, so there
-- the latest row per lead is still taken from the history.
--
-- rank / decile are computed here, over every current score: an incremental night scores only
-- the new leads, so the run-level rank_in_run / decile_in_run of ops.score_history restart with
-- each run and are kept only as what that run saw.
--
-- reason_1..3: the lead's three reasons as the scoring run wrote them (python/leadscore/reasons.py,
-- texts from the seed feature_reasons). A score written before reasons existed has none; it
-- says so instead of being null, and `leadscore score --all` rescores it with its reasons.
{{ config(materialized='view') }}

{%- set not_recorded = "'not recorded: scored before reasons existed (leadscore score --all rescores)'" %}
{#- one row per lead and model already (DuckDB), or every row of the history to take the latest of (Spark) #}
{%- set latest_scores = source('ops', 'score_history') if target.type == 'spark' else source('ops', 'latest_scores') %}

with current_model as (

    select model_version
    from {{ ref('model_registry') }}
    where is_current

),

latest as (

    select scores.*
    from {{ latest_scores }} as scores
    inner join current_model on scores.model_version = current_model.model_version
    {%- if target.type == 'spark' %}
    qualify
        row_number() over (
            partition by scores.lead_id
            order by scores.scored_at desc, scores.run_id desc
        ) = 1
    {%- endif %}

),

leads as (

    select
        lead_id,
        id,
        lead_owner,
        customer_idx,
        customer_country,
        business_unit,
        business_area,
        response_corporate
    from {{ ref('stg_leads') }}

),

ranked as (

    select
        latest.lead_id,
        latest.conversion_probability,
        latest.predicted_converted,
        latest.model_version,
        latest.scored_at,
        latest.cutoff,
        latest.run_id,
        latest.rank_in_run,
        latest.decile_in_run,
        latest.reason_1,
        latest.reason_2,
        latest.reason_3,
        leads.id,
        leads.lead_owner,
        leads.customer_idx,
        leads.customer_country,
        leads.business_unit,
        leads.business_area,
        leads.response_corporate,
        -- bigint on both engines (Spark's row_number is an int; the contract says bigint)
        cast(row_number() over (
            order by latest.conversion_probability desc, latest.lead_id asc
        ) as bigint) as rank,
        ntile(10) over (
            order by latest.conversion_probability desc, latest.lead_id asc
        ) as decile_of_ten
    from latest
    inner join leads on latest.lead_id = leads.lead_id

),

final as (

    select
        lead_id,
        id,
        conversion_probability,
        predicted_converted,
        rank,
        cast(decile_of_ten as integer) as decile,
        model_version,
        scored_at,
        cutoff,
        run_id,
        rank_in_run,
        decile_in_run,
        lead_owner,
        customer_idx,
        customer_country,
        business_unit,
        business_area,
        response_corporate,
        coalesce(reason_1, {{ not_recorded }}) as reason_1,
        coalesce(reason_2, {{ not_recorded }}) as reason_2,
        coalesce(reason_3, {{ not_recorded }}) as reason_3
    from ranked

)

select * from final
