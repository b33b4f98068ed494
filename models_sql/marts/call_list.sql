-- Who to call, in order: the open leads (no outcome yet, split = 'score') that the current
-- model scored, best first, with the owner to call them, the probability, the lead's three
-- reasons and the rank and decile among all current scores (scored_leads). A view over
-- scored_leads, so it follows each scoring run at once.
{{ config(materialized='view') }}

with scores as (

    select * from {{ ref('scored_leads') }}

),

open_leads as (

    select lead_id
    from {{ ref('stg_leads') }}
    where split = 'score'

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
