{#- Spark overrides of dbt's own type handling, so the YAML's DuckDB type names (the seeds'
    column_types and the contracts' data_type: varchar, double, bigint, ...) serve both engines:
    Spark reads every one of them but VARCHAR without a length, which is its STRING, and
    TIMESTAMP, which is its TIMESTAMP_NTZ. -#}

{% macro spark_type_name(data_type) -%}
    {#- `data_type` as Spark spells it: VARCHAR (no length) -> string, TIMESTAMP (DuckDB's has no
        time zone) -> timestamp_ntz, anything else as it is. -#}
    {%- set name = data_type | trim | lower -%}
    {{ return('string' if name in ['varchar', 'text'] else 'timestamp_ntz' if name == 'timestamp' else data_type) }}
{%- endmacro %}

{# Spark: dbt's cast (the contract's empty-schema check casts null to each YAML data_type). #}
{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ spark_type_name(type) }})
{%- endmacro %}

{# Spark: dbt-spark's seed table DDL (materializations/seed.sql) with the column_types translated. #}
{% macro spark__create_csv_table(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set quote_seed_column = model['config'].get('quote_columns', None) -%}
    {% set sql %}
        create table {{ this.render() }} (
            {%- for col_name in agate_table.column_names -%}
                {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                {%- set type = spark_type_name(column_override.get(col_name, inferred_type)) -%}
                {{ adapter.quote_seed_column(col_name | string, quote_seed_column) }} {{ type }}
                {%- if not loop.last -%}, {%- endif -%}
            {%- endfor -%}
        )
        {{ file_format_clause() }}
        {{ partition_cols(label="partitioned by") }}
        {{ clustered_cols(label="clustered by") }}
        {{ location_clause() }}
        {{ comment_clause() }}
    {% endset %}
    {% call statement('_') -%}
        {{ sql }}
    {%- endcall %}
    {{ return(sql) }}
{% endmacro %}

{# Spark: seed rows read by Spark's CSV reader as DuckDB's reader reads them (empty is null, 'null' is text; dbt-spark's agate rows make 'null' a null and bind a null as 'None'). #}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set path = model.root_path ~ '/' ~ model.original_file_path -%}
    {%- set view = this.identifier ~ '__seed_csv' -%}
    {%- set columns = [] -%}
    {%- for col_name in agate_table.column_names -%}
        {%- set type = spark_type_name(column_override.get(col_name, adapter.convert_type(agate_table, loop.index0))) -%}
        {%- do columns.append('cast(`' ~ col_name ~ '` as ' ~ type ~ ') as `' ~ col_name ~ '`') -%}
    {%- endfor -%}
    {%- call statement('seed_csv_view') -%}
        create or replace temporary view {{ view }} using csv
        options (path {{ spark_string_literal(path) }}, header 'true', multiLine 'true', quote '"', escape '"', encoding 'UTF-8')
    {%- endcall -%}
    {%- set sql -%}
        insert into {{ this.render() }} select {{ columns | join(', ') }} from {{ view }}
    {%- endset -%}
    {%- call statement('seed_csv_insert') -%}
        {{ sql }}
    {%- endcall -%}
    {{ return(sql) }}
{% endmacro %}
