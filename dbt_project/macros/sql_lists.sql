{% macro column_list(columns, template, separator=',\n') -%}
    {#- One select-list entry per column: `template` with every '{c}' replaced by the column name,
        joined by `separator`. Keeps generated column lists in one template tag, e.g.
        column_list(['a', 'b'], 'cast({c} as varchar) as {c}'). -#}
    {%- set entries = [] -%}
    {%- for column in columns -%}
        {%- do entries.append(template | replace('{c}', column)) -%}
    {%- endfor -%}
    {{ entries | join(separator) }}
{%- endmacro %}
