{#- Regular expressions. A model writes a pattern once, as a DuckDB SQL string literal in RE2
    syntax ('\s+', '[^\p{Latin}]'); DuckDB takes it as it is, Spark gets it through
    spark_regex_literal (Java syntax, Spark's escaped string literal). -#}

{% macro regex_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_matches')(expr, pattern)) }}
{%- endmacro %}

{# DuckDB: regexp_matches, true when the pattern matches anywhere in the text. #}
{% macro duckdb__regex_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, {{ pattern }})
{%- endmacro %}

{# Spark: regexp_like, the same search anywhere in the text. #}
{% macro spark__regex_matches(expr, pattern) -%}
    regexp_like({{ expr }}, {{ spark_regex_literal(pattern) }})
{%- endmacro %}


{% macro regex_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regex_replace_all')(expr, pattern, replacement)) }}
{%- endmacro %}

{# DuckDB: regexp_replace replaces the first match only unless given the 'g' option. #}
{% macro duckdb__regex_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ pattern }}, {{ replacement }}, 'g')
{%- endmacro %}

{# Spark: regexp_replace always replaces every match; back-references are $1, not \1. #}
{% macro spark__regex_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ spark_regex_literal(pattern) }}, {{ spark_replacement_literal(replacement) }})
{%- endmacro %}


{% macro regex_extract_all(expr, pattern, group) -%}
    {{ return(adapter.dispatch('regex_extract_all')(expr, pattern, group)) }}
{%- endmacro %}

{# DuckDB: regexp_extract_all, the list of one group's text in every match. #}
{% macro duckdb__regex_extract_all(expr, pattern, group) -%}
    regexp_extract_all({{ expr }}, {{ pattern }}, {{ group }})
{%- endmacro %}

{# Spark: regexp_extract_all, the same array (an unmatched group is an empty string). #}
{% macro spark__regex_extract_all(expr, pattern, group) -%}
    regexp_extract_all({{ expr }}, {{ spark_regex_literal(pattern) }}, {{ group }})
{%- endmacro %}


{% macro sql_literal_text(literal) -%}
    {#- The text of a SQL string literal: outer quotes off, '' read as one quote. -#}
    {%- set body = literal | trim -%}
    {%- if not (body.startswith("'") and body.endswith("'") and body | length >= 2) -%}
        {{ exceptions.raise_compiler_error("a pattern must be a SQL string literal, got: " ~ literal) }}
    {%- endif -%}
    {{ return(body[1:-1] | replace("''", "'")) }}
{%- endmacro %}


{% macro spark_string_literal(text) -%}
    {#- `text` as a Spark SQL string literal: Spark reads backslash escapes in literals, so a
        backslash and a quote are escaped with a backslash. -#}
    '{{ text | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}


{% macro spark_regex_literal(pattern) -%}
    {#- An RE2 pattern literal as a Java one: a script class \p{Latin} is \p{IsLatin} in Java
        (\p{L}, \p{N} read the same). A pattern built in SQL ('(^|x)' || marker) passes as it
        is: its literals must then hold no backslash. -#}
    {%- if not modules.re.fullmatch("\\s*'([^']|'')*'\\s*", pattern) -%}
        {{ return(pattern) }}
    {%- endif -%}
    {%- set text = sql_literal_text(pattern) -%}
    {%- set text = modules.re.sub('\\\\p\\{(Latin|Hangul|Han|Cyrillic|Greek|Arabic|Hiragana|Katakana)\\}', '\\\\p{Is\\1}', text) -%}
    {{ spark_string_literal(text) }}
{%- endmacro %}


{% macro spark_replacement_literal(replacement) -%}
    {#- An RE2 replacement literal as a Java one: \1 is $1, and a literal $ is escaped. -#}
    {%- set text = sql_literal_text(replacement) | replace('$', '\\$') -%}
    {%- set text = modules.re.sub('\\\\([0-9])', '$\\1', text) -%}
    {{ spark_string_literal(text) }}
{%- endmacro %}


{% macro spark_quote_pattern(literal) -%}
    {#- A plain separator literal (',', '/') as a Java pattern that matches it literally. -#}
    {{ spark_string_literal(modules.re.escape(sql_literal_text(literal))) }}
{%- endmacro %}
