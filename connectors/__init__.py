"""Headwater's built-in connectors, registered through the same hook as third-party plugins."""

from headwater.hookspecs import hookimpl


@hookimpl
def register_connectors(register):
    from connectors.filesystem import filesystem
    from connectors.filesystem.listing import unmatched_tables
    from connectors.rest_api import rest_api
    from connectors.sql_database import sql_database
    from connectors.sql_database.keys import list_keys

    register(
        "filesystem",
        filesystem,
        docs_url="https://dlthub.com/docs/dlt-ecosystem/verified-sources/filesystem",
        preflight=unmatched_tables,
    )
    register(
        "sql_database",
        sql_database,
        docs_url="https://dlthub.com/docs/dlt-ecosystem/verified-sources/sql_database",
        list_keys=list_keys,
    )
    register(
        "rest_api",
        rest_api,
        cursor_in_settings=True,
        docs_url="https://dlthub.com/docs/dlt-ecosystem/verified-sources/rest_api",
    )
