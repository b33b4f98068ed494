{% macro stable_fold(expr, k=none) -%}
    {#- Fold number 0..K-1 from a stable hash of the key. md5_number is the same on every DuckDB
        version and platform, unlike hash(), so the folds (and the out-of-fold rates) are
        reproducible run to run. -#}
    {{ hash_fold(expr, k if k is not none else var('target_rate_folds')) }}
{%- endmacro %}
