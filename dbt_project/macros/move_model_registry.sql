{#
    on-run-start hook. The model registry moved from the table main.model_registry to
    ops.model_registry (written by python/leadscore/registry.py, DDL in
    python/leadscore/tables.py); main.model_registry is now the view
    models_sql/marts/model_registry.sql. In a database from before the move, a plain `dbt build`
    would replace the old table, rows and all, by that view: so first, in one transaction, the
    rows move to ops.model_registry and the old table becomes that view.
    python/leadscore/tables.py (ensure_registry) does the same for the leadscore commands.
    ops.model_registry is created here only when no leadscore command has run since the upgrade,
    from the old table's own definition (duckdb_tables().sql), so the columns are declared once.
    The statements run here, committed, so the hook itself has no SQL left to run.
#}
{% macro move_model_registry() %}
    {% if execute %}
        {% set old = adapter.get_relation(database=target.database, schema='main', identifier='model_registry') %}
        {% if old is not none and old.is_table %}
            {% set new = adapter.get_relation(database=target.database, schema='ops', identifier='model_registry') %}
            {% if new is none %}
                {% set old_ddl_query %}
                    select sql from duckdb_tables()
                    where database_name = '{{ target.database }}' and schema_name = 'main' and table_name = 'model_registry'
                {% endset %}
                {% set old_ddl = run_query(old_ddl_query).columns[0].values()[0] %}
            {% endif %}
            {{ log('moving the model registry rows from main.model_registry to ops.model_registry', info=True) }}
            {% call statement('move_model_registry', auto_begin=True) %}
                create schema if not exists ops;
                {% if new is none %}
                    {{ modules.re.sub('^\s*create\s+table\s+[^(]+\(', 'create table ops.model_registry(', old_ddl, count=1, flags=modules.re.IGNORECASE) }}
                {% endif %}
                insert into ops.model_registry by name
                select * from main.model_registry
                where model_version not in (select model_version from ops.model_registry);
                drop table main.model_registry;
                create view main.model_registry as select * from ops.model_registry;
            {% endcall %}
            {% do adapter.commit() %}
            {# what the statements left behind, for the materializations that follow #}
            {% do adapter.cache_dropped(old) %}
            {% do adapter.cache_added(old.incorporate(type='view')) %}
        {% endif %}
    {% endif %}
{% endmacro %}
