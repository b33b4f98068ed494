{#- Dialect differences of lists (arrays), hashing and reshaping: DuckDB's 1-based lists and
    UNPIVOT statement against Spark's arrays, generators and UNPIVOT clause. -#}

{% macro rows_of_values(values) -%}
    {{ return(adapter.dispatch('rows_of_values')(values)) }}
{%- endmacro %}

{# DuckDB: unnest of a list literal, one row per value (a Jinja list renders as a DuckDB list). #}
{% macro duckdb__rows_of_values(values) -%}
    unnest({{ values }})
{%- endmacro %}

{# Spark: explode of an array of the quoted values. #}
{% macro spark__rows_of_values(values) -%}
    explode(array(
        {%- for value in values -%}
            '{{ value | replace("'", "\\'") }}'{{ ", " if not loop.last }}
        {%- endfor -%}
    ))
{%- endmacro %}


{% macro unnest_with_position(lists, position_name) -%}
    {{ return(adapter.dispatch('unnest_with_position')(lists, position_name)) }}
{%- endmacro %}

{# DuckDB: unnest() of equally long lists side by side in the select list, plus range() for the 1-based position. #}
{% macro duckdb__unnest_with_position(lists, position_name) -%}
    {%- for expr, name in lists -%}
        unnest({{ expr }}) as {{ name }},
    {% endfor -%}
    unnest(range(1, len({{ lists[0][0] }}) + 1)) as {{ position_name }}
{%- endmacro %}

{# Spark: inline() of arrays_zip() (a generator in the select list), the position from transform's index. #}
{% macro spark__unnest_with_position(lists, position_name) -%}
    inline(arrays_zip(
        {%- for expr, name in lists %}
            {{ expr }},
        {%- endfor %}
        transform({{ lists[0][0] }}, (element, position) -> position + 1)
    )) as ({% for expr, name in lists %}{{ name }}, {% endfor %}{{ position_name }})
{%- endmacro %}


{% macro unpivot_columns(relation, columns, name_column, value_column) -%}
    {{ return(adapter.dispatch('unpivot_columns')(relation, columns, name_column, value_column)) }}
{%- endmacro %}

{# DuckDB: the UNPIVOT statement (nulls left out); the other columns come first, then name and value. #}
{% macro duckdb__unpivot_columns(relation, columns, name_column, value_column) -%}
    unpivot {{ relation }}
    on {{ columns | join(', ') }}
    into name {{ name_column }} value {{ value_column }}
{%- endmacro %}

{# Spark: the UNPIVOT clause (nulls left out by default), same column order. #}
{% macro spark__unpivot_columns(relation, columns, name_column, value_column) -%}
    select * from {{ relation }}
    unpivot ({{ value_column }} for {{ name_column }} in ({{ columns | join(', ') }}))
{%- endmacro %}


{% macro hash_fold(expr, k) -%}
    {{ return(adapter.dispatch('hash_fold')(expr, k)) }}
{%- endmacro %}

{# DuckDB: md5_number, the 16 bytes of the MD5 digest as one little-endian 128-bit number, modulo K.
   Computed from its two 64-bit halves (md5_number = md5_number_upper + md5_number_lower * 2^64:
   DuckDB names the halves by byte position, not by weight), because a UHUGEINT modulo costs
   about 6 us a row (0.4 s for 64,570 keys) and two UBIGINT ones almost nothing. The
   same fold for every key as md5_number(x) % K; K up to 2^31 - 1 keeps the product in 64 bits
   and the fold in an integer. #}
{% macro duckdb__hash_fold(expr, k) -%}
    {%- set k = k | int -%}
    {%- if k < 1 or k > 2147483647 %}{{ exceptions.raise_compiler_error("hash_fold: K must be in 1 .. 2^31 - 1, got " ~ k) }}{% endif -%}
    cast(
        (
            (md5_number_lower(cast({{ expr }} as varchar)) % {{ k }}) * {{ (2 ** 64) % k }}
            + md5_number_upper(cast({{ expr }} as varchar)) % {{ k }}
        ) % {{ k }} as integer
    )
{%- endmacro %}

{# Spark: the same number modulo K from md5()'s hex digits: sum of byte i * (256^i mod K), mod K. #}
{% macro spark__hash_fold(expr, k) -%}
    {%- set k = k | int -%}
    cast(pmod(
        {%- for i in range(16) %}
            cast(conv(substring(md5(cast({{ expr }} as string)), {{ 2 * i + 1 }}, 2), 16, 10) as bigint) * {{ (256 ** i) % k }}
            {{- " +" if not loop.last }}
        {%- endfor %},
        {{ k }}
    ) as int)
{%- endmacro %}
