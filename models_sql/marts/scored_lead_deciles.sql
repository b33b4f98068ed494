-- The score distribution by decile of the current scores (scored_leads.decile): leads, the
-- probability range and the share above the cutoff per decile, and how far each decile's lowest
-- score lies above the next decile's highest. That margin is never negative when the deciles do
-- not overlap, which the data test on margin_over_next_decile checks after every build.
{{ config(materialized='view') }}

with scores as (

    select * from {{ ref('scored_leads') }}

),

by_decile as (

    select
        decile,
        count(*) as leads,
        min(conversion_probability) as min_probability,
        max(conversion_probability) as max_probability,
        avg(conversion_probability) as mean_probability,
        avg(cast(predicted_converted as integer)) as share_above_cutoff
    from scores
    group by decile

),

final as (

    select
        decile,
        leads,
        min_probability,
        max_probability,
        mean_probability,
        share_above_cutoff,
        min_probability - lead(max_probability) over (order by decile) as margin_over_next_decile
    from by_decile

)

select * from final
