-- The model registry under the name the interface contract gives it: one row per trained
-- model. The table is ops.model_registry, written by the training job
-- (python/leadscore/registry.py, DDL in python/leadscore/tables.py); a view, so a model
-- registered after this build shows at once.
{{ config(materialized='view') }}

with registry as (

    select * from {{ source('ops', 'model_registry') }}

),

final as (

    select * from registry

)

select * from final
