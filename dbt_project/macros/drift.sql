{% macro drift_feature_columns() -%}
    {#- The features the drift models compare, as [{'name': ..., 'kind': 'numeric' | 'categorical'}]
        in contract order: every column of fct_lead_features' contract but the keys (the same six
        python/leadscore/features.py KEY_COLUMNS skips) and the columns whose training values are
        not comparable with a score row's by construction: the out-of-fold target rates and
        evidence counts (a training row sees (K-1)/K of its value's evidence without its own
        label, a score row all of it; their drift shows in the categorical they are computed from),
        the group keys (raw identifiers: a batch of new customers is the normal case) and any listed in var('drift_skip_features'). Read from the contract (dbt's graph), not the
        database, so it needs no query and a new feature is covered once its contract entry exists.
        Numeric types (integers, floats, decimals) are binned; VARCHAR and BOOLEAN are categories.
        Empty while dbt parses (the graph is filled at execution). -#}
    {%- set keys = ['lead_id', 'id', 'split', 'is_converted', 'lead_date', 'rate_fold'] -%}
    {%- set skip = [] -%}
    {%- for column in var('target_rate_columns') -%}
        {%- do skip.append(column ~ '_target_rate') -%}
    {%- endfor -%}
    {%- for column in var('evidence_count_columns') -%}
        {%- do skip.append(column ~ '_evidence_rows') -%}
        {%- do skip.append(column ~ '_evidence_conversions') -%}
    {%- endfor -%}
    {#- the group keys: raw identifiers, new customers every night by nature, not a feature's drift -#}
    {%- for column in var('group_key_columns') -%}
        {%- do skip.append(column ~ '_group_key') -%}
    {%- endfor -%}
    {%- for column in var('drift_skip_features') -%}
        {%- do skip.append(column) -%}
    {%- endfor -%}
    {%- set numeric_types = ['double', 'float', 'real', 'bigint', 'integer', 'int', 'smallint', 'tinyint',
                             'hugeint', 'decimal', 'numeric'] -%}
    {%- set features = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values()
                if node.resource_type == 'model' and node.name == 'fct_lead_features' -%}
            {%- for column in node.columns.values() -%}
                {%- set data_type = (column.data_type or '') | lower -%}
                {%- set base_type = data_type.split('(')[0] | trim -%}
                {%- if column.name not in keys and column.name not in skip and data_type -%}
                    {%- do features.append({
                        'name': column.name,
                        'kind': 'numeric' if base_type in numeric_types else 'categorical'
                    }) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(features) }}
{%- endmacro %}


{% macro drift_numeric_bucket(value, edges_relation) -%}
    {#- The training-decile bin of a numeric value: 'bin 01' for value <= edge_1, ..., 'bin NN'
        above the last edge (NN = var('drift_numeric_bins')). Edges are percentile_disc values of
        the training rows, so a repeated edge (a binary or lumpy feature) leaves the bins after it
        empty on both sides, which adds nothing to the PSI. Null stays null (missing). -#}
    {%- set bins = var('drift_numeric_bins') | int -%}
    case
        when {{ value }} is null then null
        {%- for i in range(1, bins) %}
            when {{ value }} <= {{ edges_relation }}.edge_{{ i }} then 'bin {{ "%02d" | format(i) }}'
        {%- endfor %}
        else 'bin {{ "%02d" | format(bins) }}'
    end
{%- endmacro %}


{% macro drift_string_list(expression, sort_key, separator=', ') -%}
    {#- An aggregate: the rows' non-null `expression` texts as one text, largest numeric
        `sort_key` first (ties in text order), joined with `separator`; how batch_drift lists the
        features over a threshold. -#}
    {{ return(adapter.dispatch('drift_string_list')(expression, sort_key, separator)) }}
{%- endmacro %}

{# DuckDB: string_agg with ORDER BY inside the aggregate (null values are skipped). #}
{% macro duckdb__drift_string_list(expression, sort_key, separator) -%}
    string_agg({{ expression }}, '{{ separator }}' order by {{ sort_key }} desc, {{ expression }})
{%- endmacro %}

{# Spark: no ordered string_agg; sort (-key, text) structs (collect_list skips nulls) and join. #}
{% macro spark__drift_string_list(expression, sort_key, separator) -%}
    nullif(array_join(transform(sort_array(collect_list(
        case when ({{ expression }}) is not null then struct(-({{ sort_key }}) as k, {{ expression }} as v) end
    )), item -> item.v), '{{ separator }}'), '')
{%- endmacro %}
