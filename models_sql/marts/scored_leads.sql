-- The current score of every scored lead: the latest row per lead in the score history that
-- the scoring job appends to. A view, so analysts see new scores as soon as a scoring run
-- commits, without another dbt run; the history stays queryable as a source.
{{ config(materialized='view') }}

with history as (

    select * from {{ source('ops', 'score_history') }}

),

latest as (

    select *
    from history
    qualify
        row_number() over (
            partition by lead_id
            order by scored_at desc, run_id desc
        ) = 1

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

final as (

    select
        latest.lead_id,
        leads.id,
        latest.conversion_probability,
        latest.predicted_converted,
        latest.model_version,
        latest.scored_at,
        latest.cutoff,
        latest.run_id,
        latest.rank_in_run,
        latest.decile_in_run,
        leads.lead_owner,
        leads.customer_idx,
        leads.customer_country,
        leads.business_unit,
        leads.business_area,
        leads.response_corporate
    from latest
    inner join leads on latest.lead_id = leads.lead_id

)

select * from final
