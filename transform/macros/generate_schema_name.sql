{#-
    Use a model's custom schema as-is (`staging`, `marts`) instead of dbt's default
    `<target_schema>_<custom_schema>`, so downstream readers (Soda contracts, BI tools)
    find the same schema names in every environment. Models without a custom schema
    fall back to the target schema.

    Write-audit-publish: Headwater's runner passes the var `headwater_audit_schemas`,
    e.g. {"marts": "marts__audit"}. Models of a listed schema are then built into its
    audit schema, checked there, and only moved into the published schema when every
    blocking check passed (headwater/publish.py). A plain `dbt build` builds in place.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {%- set schema = custom_schema_name | trim -%}
        {{ var('headwater_audit_schemas', {}).get(schema, schema) }}
    {%- endif -%}
{%- endmacro %}
