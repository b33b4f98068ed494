{% macro stable_fold(expr, k=none) -%}
    {#- Fold number 0..K-1 from a stable hash of the key. md5_number is the same on every DuckDB
        version and platform, unlike hash(), so the folds (and the out-of-fold rates) are
        reproducible run to run. -#}
    {{ hash_fold(expr, k if k is not none else var('target_rate_folds')) }}
{%- endmacro %}


{% macro per_fold_list(aggregate, fold_column='fold_id', k=none) -%}
    {#- A K-element list with `aggregate` computed per fold: element i (1-based) is fold i - 1,
        0 for a fold with no rows. [coalesce(sum(x) filter (where fold_id = 0), 0), ...] -#}
    {%- set folds = k if k is not none else var('target_rate_folds') -%}
    {%- set items = [] -%}
    {%- for fold in range(folds | int) -%}
        {%- do items.append('coalesce(' ~ aggregate ~ ' filter (where ' ~ fold_column ~ ' = ' ~ fold ~ '), 0)') -%}
    {%- endfor -%}
    {{ list_of(items) }}
{%- endmacro %}


{% macro out_of_fold(relation, stat) -%}
    {#- The one "out of fold" rule: a training row sees `stat` of every fold but its own (the
        total minus its fold's element of the per_fold_list), a score row sees the total.
        Needs `leads.split`, `leads.fold_id` and `<relation>.<stat>_total` / `_by_fold`. -#}
    case
        when leads.split = 'train'
            then {{ relation }}.{{ stat }}_total - {{ list_element(relation ~ '.' ~ stat ~ '_by_fold', 'leads.fold_id + 1') }}
        else {{ relation }}.{{ stat }}_total
    end
{%- endmacro %}
