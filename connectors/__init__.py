"""Headwater's built-in connectors, registered through the same hook as third-party plugins."""

from headwater.hookspecs import hookimpl


@hookimpl
def register_connectors(register):
    from connectors.filesystem import filesystem
    from connectors.filesystem.listing import unmatched_tables
    from connectors.nats_jetstream import nats_jetstream
    from connectors.nats_jetstream.reader import acknowledge as acknowledge_nats
    from connectors.postgres_cdc import postgres_cdc
    from connectors.postgres_cdc.reader import acknowledge as advance_slot
    from connectors.redis_streams import redis_streams
    from connectors.redis_streams.reader import acknowledge as acknowledge_redis
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
    register(
        "postgres_cdc",
        postgres_cdc,
        docs_url="https://www.postgresql.org/docs/current/logical-replication.html",
        acknowledge=advance_slot,
        change_feed=True,
    )
    register(
        "nats_jetstream",
        nats_jetstream,
        docs_url="https://docs.nats.io/nats-concepts/jetstream",
        acknowledge=acknowledge_nats,
    )
    register(
        "redis_streams",
        redis_streams,
        docs_url="https://redis.io/docs/latest/develop/data-types/streams/",
        acknowledge=acknowledge_redis,
    )
