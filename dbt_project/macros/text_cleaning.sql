{#- Text helper of the normalisation models. Trimming and empty = null happen once, at ingest
    (python/leadscore/ingest.py); staging only renames. -#}

{% macro normalise_key(expr) -%}
    {#- The mechanical part of spelling normalisation, applied before the synonym seeds:
        lower case, accents stripped ('Panamá' -> 'panama'); a trailing date stamp of a
        sales-rep note is dropped ('po expected - 4/6', 'po expected on 2.3' -> 'po expected');
        '_' and '-' runs become a space; slashes get exactly one space each side;
        commas get one space after; '.', '!', '?', quotes and brackets are dropped (as spaces);
        whitespace runs collapse to one space; the result is trimmed, and empty means missing.
        'End-Customer' -> 'end customer', 'Specifier/ Influencer' -> 'specifier / influencer',
        'quotation_or_purchase_consultation' -> 'quotation or purchase consultation',
        'ETC.' -> 'etc', 'other_' -> 'other'. -#}
    {#- the patterns (RE2, as SQL literals) go through the dialect macros (macros/dialect/regex.sql);
        the date stamp is anchored at the end, so replacing every match replaces the one -#}
    {%- set punctuation -%} '[.!?"`()\[\]'']+' {%- endset -%}
    {%- set text = strip_accents('lower(cast(' ~ expr ~ ' as ' ~ text_type() ~ '))') -%}
    {%- set text = regex_replace_all(text, "'(\s+-\s*|\s+on\s+)\d{1,2}\s*[/.]\s*\d{1,2}\s*$'", "''") -%}
    {%- set text = regex_replace_all(text, "'[_\-]+'", "' '") -%}
    {%- set text = regex_replace_all(text, "'\s*/\s*'", "' / '") -%}
    {%- set text = regex_replace_all(text, "'\s*,\s*'", "', '") -%}
    {%- set text = regex_replace_all(text, punctuation, "' '") -%}
    {%- set text = regex_replace_all(text, "'\s+'", "' '") -%}
    nullif(trim({{ text }}), '')
{%- endmacro %}
