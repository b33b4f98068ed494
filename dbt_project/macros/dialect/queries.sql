{#- Dialect differences of query shape, dates and numbers. -#}

{% macro star_except(columns, relation=none) -%}
    {{ return(adapter.dispatch('star_except')(columns, relation)) }}
{%- endmacro %}

{# DuckDB: * EXCLUDE (...). #}
{% macro duckdb__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* exclude ({{ columns | join(', ') }})
{%- endmacro %}

{# Spark: * EXCEPT (...). #}
{% macro spark__star_except(columns, relation) -%}
    {{ relation ~ '.' if relation }}* except ({{ columns | join(', ') }})
{%- endmacro %}


{% macro star_replace(relation, columns, template) -%}
    {#- Every column of `relation`, each of `columns` replaced by `template` with {column} filled
        in: star_replace('leads', ['a', 'b'], 'map_{column}.value') replaces a by map_a.value. -#}
    {%- set items = [] -%}
    {%- for column in columns -%}
        {%- do items.append(template | replace('{column}', column) ~ ' as ' ~ column) -%}
    {%- endfor -%}
    {{ return(adapter.dispatch('star_replace')(relation, columns, items)) }}
{%- endmacro %}

{# DuckDB: * REPLACE (...) keeps the columns in place. #}
{% macro duckdb__star_replace(relation, columns, items) -%}
    {{ relation }}.* replace ({{ items | join(', ') }})
{%- endmacro %}

{# Spark has no REPLACE: * EXCEPT the columns, then the new ones (they move to the end; every reader selects by name). #}
{% macro spark__star_replace(relation, columns, items) -%}
    {{ relation }}.* except ({{ columns | join(', ') }}), {{ items | join(', ') }}
{%- endmacro %}


{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte')()) }}
{%- endmacro %}

{# DuckDB: AS MATERIALIZED computes a CTE read many times once. #}
{% macro duckdb__materialized_cte() -%}
    materialized
{%- endmacro %}

{# Spark: no such hint (its optimiser decides); nothing. #}
{% macro spark__materialized_cte() -%}
{%- endmacro %}


{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between')(start_date, end_date)) }}
{%- endmacro %}

{# DuckDB: date_diff('day', start, end). #}
{% macro duckdb__days_between(start_date, end_date) -%}
    date_diff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{# Spark: datediff(day, start, end) (the two-argument datediff takes end first). #}
{% macro spark__days_between(start_date, end_date) -%}
    datediff(day, {{ start_date }}, {{ end_date }})
{%- endmacro %}


{% macro rtrim_chars(expr, characters) -%}
    {{ return(adapter.dispatch('rtrim_chars')(expr, characters)) }}
{%- endmacro %}

{# DuckDB: rtrim(text, characters). #}
{% macro duckdb__rtrim_chars(expr, characters) -%}
    rtrim({{ expr }}, {{ characters }})
{%- endmacro %}

{# Spark: trim(trailing characters from text) (its two-argument rtrim is deprecated). #}
{% macro spark__rtrim_chars(expr, characters) -%}
    trim(trailing {{ characters }} from {{ expr }})
{%- endmacro %}


{% macro round_to(expr, digits) -%}
    {{ return(adapter.dispatch('round_to')(expr, digits)) }}
{%- endmacro %}

{# DuckDB: round() of a double, which is floor(x * 10^d + 0.5) / 10^d (half away from zero). #}
{% macro duckdb__round_to(expr, digits) -%}
    round({{ expr }}, {{ digits }})
{%- endmacro %}

{# Spark: round() rounds a double's decimal text (1.005 -> 1.01, DuckDB 1.0), so DuckDB's arithmetic is written out. #}
{% macro spark__round_to(expr, digits) -%}
    (signum({{ expr }}) * floor(abs({{ expr }}) * {{ 10 ** digits }} + 0.5) / {{ 10 ** digits }})
{%- endmacro %}


{% macro fraction(numerator, denominator) -%}
    {{ return(adapter.dispatch('fraction')(numerator, denominator)) }}
{%- endmacro %}

{# DuckDB: '/' of a DECIMAL sum (a literal like 0.08 is one) and an integer is a DOUBLE division. #}
{% macro duckdb__fraction(numerator, denominator) -%}
    {{ numerator }} / {{ denominator }}
{%- endmacro %}

{# Spark: a DECIMAL division keeps a fixed scale (0.666667), so the exact sum is cast to double first. #}
{% macro spark__fraction(numerator, denominator) -%}
    cast({{ numerator }} as double) / {{ denominator }}
{%- endmacro %}
