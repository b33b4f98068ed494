{#- A model that reads something only the Python job creates (python/leadscore/tables.py) fails
    with what to do, not with a catalog error, when the database has not seen a writing
    leadscore command since that relation existed (a plain `dbt build` right after an upgrade).
    Checked when dbt builds or runs, not when it only compiles (docs, sqlfluff: nothing is read).
    DuckDB only: on Spark every source is a table over the Parquet files leadscore wrote. -#}
{% macro require_leadscore_relation(schema, identifier) %}
    {%- if execute and target.type == 'duckdb' and flags.WHICH in ('build', 'run') -%}
        {%- if adapter.get_relation(database=target.database, schema=schema, identifier=identifier) is none -%}
            {{ exceptions.raise_compiler_error(schema ~ '.' ~ identifier ~ ' is missing: the leadscore job creates it (python/leadscore/tables.py); run `leadscore build` once, then dbt build works again') }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
