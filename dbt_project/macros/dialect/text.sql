{#- Dialect differences of text: types, splitting, accents, regular expressions.
    Every model writes these through the macros below, so one SQL file serves DuckDB and Spark
    (adapter.dispatch picks duckdb__ or spark__ by the target's type). Regular expressions are
    written once, in DuckDB's (RE2) syntax, as SQL string literals; the spark__ versions turn
    them into Java's syntax (regex_literal). -#}

{% macro text_type() -%}
    {{ return(adapter.dispatch('text_type')()) }}
{%- endmacro %}

{# DuckDB: VARCHAR without a length. #}
{% macro duckdb__text_type() -%}
    varchar
{%- endmacro %}

{# Spark: STRING (a VARCHAR needs a length there). #}
{% macro spark__text_type() -%}
    string
{%- endmacro %}


{% macro split_count(expr, separator) -%}
    {{ return(adapter.dispatch('split_count')(expr, separator)) }}
{%- endmacro %}

{# DuckDB: the list string_split returns, counted with len(). #}
{% macro duckdb__split_count(expr, separator) -%}
    len(string_split({{ expr }}, {{ separator }}))
{%- endmacro %}

{# Spark: split() takes a regular expression, so the separator is quoted as one; size() is INT, len() BIGINT. #}
{% macro spark__split_count(expr, separator) -%}
    cast(size(split({{ expr }}, {{ spark_quote_pattern(separator) }})) as bigint)
{%- endmacro %}


{% macro last_nonempty_field(expr, separator) -%}
    {{ return(adapter.dispatch('last_nonempty_field')(expr, separator)) }}
{%- endmacro %}

{# DuckDB: lambdas over the split list, the last element by index -1 (null for an empty list).
   Python-style lambdas (DuckDB 1.3 and later): DuckDB 2.0 refuses the arrow form `x -> ...`. #}
{% macro duckdb__last_nonempty_field(expr, separator) -%}
    list_filter(list_transform(string_split({{ expr }}, {{ separator }}), lambda field: trim(field)), lambda field: field <> '')[-1]
{%- endmacro %}

{# Spark: the same lambdas; try_element_at is null (not an error) for an empty array. #}
{% macro spark__last_nonempty_field(expr, separator) -%}
    try_element_at(
        filter(transform(split({{ expr }}, {{ spark_quote_pattern(separator) }}), field -> trim(field)), field -> field <> ''),
        -1
    )
{%- endmacro %}


{% macro strip_accents(expr) -%}
    {{ return(adapter.dispatch('strip_accents')(expr)) }}
{%- endmacro %}

{# DuckDB: the built-in strip_accents (every combining mark). #}
{% macro duckdb__strip_accents(expr) -%}
    strip_accents({{ expr }})
{%- endmacro %}

{# Spark has no strip_accents: translate() the accented Latin letters (Latin-1 and Extended-A). #}
{% macro spark__strip_accents(expr) -%}
    {%- set accented = 'ÀÁÂÃÄÅàáâãäåĀāĂăĄąÇçĆćĈĉĊċČčĎďÈÉÊËèéêëĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥÌÍÎÏìíîïĨĩĪīĬĭĮįİÑñŃńŅņŇňÒÓÔÕÖòóôõöŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲųŴŵÝýÿŶŷŸŹźŻżŽž' -%}
    {%- set plain = 'AAAAAAaaaaaaAaAaAaCcCcCcCcCcDdEEEEeeeeEeEeEeEeEeGgGgGgGgHhIIIIiiiiIiIiIiIiINnNnNnNnOOOOOoooooOoOoOoRrRrRrSsSsSsSsTtTtUUUUuuuuUuUuUuUuUuUuWwYyyYyYZzZzZz' -%}
    translate({{ expr }}, '{{ accented }}', '{{ plain }}')
{%- endmacro %}


{% macro json_member_text(expr, name) -%}
    {{ return(adapter.dispatch('json_member_text')(expr, name)) }}
{%- endmacro %}

{# DuckDB: json_extract_string with the path '$."<name>"' (macro json_member_path). #}
{% macro duckdb__json_member_text(expr, name) -%}
    json_extract_string({{ expr }}, {{ json_member_path(name) }})
{%- endmacro %}

{# Spark: get_json_object with the bracket path $['<name>'] (a name may hold spaces and dots). #}
{% macro spark__json_member_text(expr, name) -%}
    get_json_object({{ expr }}, '$[''{{ name | replace("'", "''''") }}'']')
{%- endmacro %}
