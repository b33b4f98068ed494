-- Who to call, in order: the open leads (split = 'score', and no outcome known yet: not in
-- source ops.known_outcomes, the Python job's one rule for that) that the current model scored,
-- best first, with the owner to call them, the probability, the lead's three reasons and the
-- rank and decile among all current scores (scored_leads). A view over scored_leads, so it
-- follows each scoring run, and each `leadscore evaluate`, at once.
{{ config(materialized='view') }}
{{ require_leadscore_relation('ops', 'known_outcomes') }}

with scores as (

    select * from {{ ref('scored_leads') }}

),

known_outcomes as (

    select lead_id from {{ source('ops', 'known_outcomes') }}

),

open_leads as (

    select leads.lead_id
    from {{ ref('stg_leads') }} as leads
    left join known_outcomes on leads.lead_id = known_outcomes.lead_id
    where leads.split = 'score' and known_outcomes.lead_id is null

),

final as (

    select
        scores.rank,
        scores.decile,
        scores.lead_id,
        scores.id,
        scores.lead_owner,
        scores.customer_idx,
        scores.conversion_probability,
        scores.predicted_converted,
        scores.reason_1,
        scores.reason_2,
        scores.reason_3,
        scores.model_version,
        scores.scored_at
    from scores
    inner join open_leads on scores.lead_id = open_leads.lead_id

)

select * from final
order by rank
