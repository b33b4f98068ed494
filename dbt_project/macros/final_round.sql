{#- Helpers of the final round's models (int_leads_budget, int_leads_promoted_columns). -#}

{% macro any_word_pattern(words) -%}
    {#- A regular expression (RE2, as a SQL string literal) that matches a lower-cased text
        holding any of `words`. A word of ASCII letters and spaces must stand alone ('max' does
        not match 'maximum', 'up to' matches 'up to $5k'); anything else ('<', '+', '미만') matches
        anywhere. Regex metacharacters are escaped, so the words are plain text. -#}
    {%- set alternatives = [] -%}
    {%- for word in words -%}
        {%- set escaped = modules.re.sub('([\\\\.^$|?*+()\\[\\]{}])', '\\\\\\1', word | lower) -%}
        {%- if modules.re.fullmatch('[a-z ]+', word | lower) -%}
            {%- do alternatives.append('(^|[^a-z])' ~ escaped ~ '($|[^a-z])') -%}
        {%- else -%}
            {%- do alternatives.append(escaped) -%}
        {%- endif -%}
    {%- endfor -%}
    '{{ (alternatives | join("|") if alternatives else "$.^") | replace("'", "''") }}'
{%- endmacro %}


{% macro promoted_column_name(name) -%}
    {#- The feature column of a promoted extra column: 'extra_' and the header name lower-cased,
        every run of other characters than a-z and 0-9 as one '_' ('Lead Score Band' ->
        extra_lead_score_band). -#}
    extra_{{ modules.re.sub('[^a-z0-9]+', '_', name | lower).strip('_') }}
{%- endmacro %}


{% macro json_member_path(name) -%}
    {#- The JSON path of a top-level member named `name` exactly (spaces, dots, quotes and all),
        as a SQL string literal: '$."Lead Score Band"'. -#}
    '$."{{ name | replace("\\", "\\\\") | replace('"', '\\"') | replace("'", "''") }}"'
{%- endmacro %}
