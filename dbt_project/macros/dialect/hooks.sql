{#- The project's hooks (dbt_project.yml) per engine: DuckDB keeps its registry move and run log,
    Spark first makes the raw and ops sources tables over the Parquet files leadscore wrote. -#}

{% macro leadscore_on_run_start() -%}
    {{ return(adapter.dispatch('leadscore_on_run_start')()) }}
{%- endmacro %}

{# DuckDB: move a pre-registry database's main.model_registry rows to ops (move_model_registry), and
   create ops.latest_scores where no leadscore command has since it existed (create_latest_scores). #}
{% macro duckdb__leadscore_on_run_start() -%}
    {{ move_model_registry() }}
    {{ create_latest_scores() }}
{%- endmacro %}

{# Spark: every raw and ops source as an external table over its Parquet folder (spark_source_tables). #}
{% macro spark__leadscore_on_run_start() -%}
    {{ spark_source_tables() }}
{%- endmacro %}


{% macro leadscore_on_run_end(results) -%}
    {{ return(adapter.dispatch('leadscore_on_run_end')(results)) }}
{%- endmacro %}

{# DuckDB: record the invocation in ops.dbt_runs (record_dbt_run). #}
{% macro duckdb__leadscore_on_run_end(results) -%}
    {{ record_dbt_run(results) }}
{%- endmacro %}

{# Spark: nothing; ops.dbt_runs is the DuckDB job's table (a model names the DuckDB build it trained on). #}
{% macro spark__leadscore_on_run_end(results) -%}
{%- endmacro %}


{% macro spark_sources_dir() -%}
    {#- Where `leadscore ingest --parquet` (python/leadscore/spark.py, export_sources) writes one
        folder per source table, <dir>/<schema>/<table>: LEADSCORE_SPARK_SOURCES, else spark/sources
        beside the DuckDB file (LEADSCORE_DB), as python/leadscore/spark.py computes it. -#}
    {%- set db = env_var('LEADSCORE_DB', 'data/leadscore.duckdb') -%}
    {%- set data_dir = db.rsplit('/', 1)[0] if '/' in db else '.' -%}
    {{ return(env_var('LEADSCORE_SPARK_SOURCES', data_dir ~ '/spark/sources')) }}
{%- endmacro %}


{% macro spark_source_tables() %}
    {#- Drop and create each source of schemas raw and ops as a table over its Parquet folder, so
        every build reads the files as they are now (dropping an external table keeps its files). -#}
    {% if execute %}
        {% set folder = spark_sources_dir() %}
        {% set schemas = [] %}
        {% for source in graph.sources.values() if source.source_name in ['raw', 'ops'] %}
            {% if source.schema not in schemas %}
                {% do run_query('create database if not exists ' ~ source.schema) %}
                {% do schemas.append(source.schema) %}
            {% endif %}
            {% set table = source.schema ~ '.' ~ source.identifier %}
            {% do run_query('drop table if exists ' ~ table) %}
            {% do run_query("create table " ~ table ~ " using parquet location '"
                ~ folder ~ "/" ~ source.schema ~ "/" ~ source.identifier ~ "'") %}
        {% endfor %}
        {{ log('spark: source tables over ' ~ folder, info=True) }}
    {% endif %}
{% endmacro %}
