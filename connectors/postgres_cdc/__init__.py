"""Changes of PostgreSQL tables through logical replication (pgoutput): a snapshot, then every insert,
update, delete and truncate, merged into raw on the primary key. See docs/streaming.md."""

from __future__ import annotations

import re
from typing import Literal

import dlt

from connectors.postgres_cdc import columns as meta
from connectors.postgres_cdc.columns import read_table
from connectors.postgres_cdc.reader import CdcReader, CdcSettings
from connectors.postgres_cdc.slot import connect

Deletes = Literal["apply", "flag"]


@dlt.source(name="postgres_cdc")
def postgres_cdc(
    credentials: str = dlt.secrets.value,
    tables: list[str] | None = None,
    schema: str = "public",
    publication: str | None = None,
    slot: str | None = None,
    deletes: Deletes = "apply",
    deletes_by_table: dict[str, Deletes] | None = None,
    max_changes: int = 100_000,
):
    """Stream a PostgreSQL database's changes into raw: one resource per table, merged on its primary key.

    Args:
        credentials: postgresql://user:password@host:port/database of the source; the user needs the
            REPLICATION attribute and SELECT on the tables (docs/streaming.md).
        tables: Tables of ``schema`` to stream; each needs a primary key. Empty: every table of the schema.
        schema: The source schema.
        publication: The publication the slot reads; created (or given the missing tables) when needed.
            Default: headwater_<source>.
        slot: The logical replication slot; created with the first load. Default: headwater_<source>.
        deletes: apply (a deleted row is removed from raw) or flag (it stays, with `_deleted_at`).
        deletes_by_table: The same choice for single tables: table name -> apply or flag.
        max_changes: About how many changes one load takes from the slot (whole transactions).
    """
    source_name = _source_name()
    default_name = slot_names({}, source_name)[0]
    with connect(credentials, autocommit=True) as connection:
        names = list(tables or _all_tables(connection, schema))
        source_tables = {name: read_table(connection, schema, name) for name in names}
    by_table = dict(deletes_by_table or {})
    settings = CdcSettings(
        credentials=credentials, publication=publication or default_name, slot=slot or default_name,
        source_name=source_name, max_changes=max_changes,
        deletes={name: by_table.get(name, deletes) for name in names},
    )
    reader = CdcReader(settings, source_tables)
    resources = []
    for name, table in source_tables.items():
        hints = {**table.hints, **meta.metadata_hints(settings.deletes[name])}
        resources.append(dlt.resource(
            reader.rows(name), name=name, primary_key=list(table.key), columns=list(hints.values()),
            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        ))
    return resources


def _source_name() -> str:
    """The source's name in headwater.yaml: its pipeline is headwater_<source>."""
    try:
        pipeline = dlt.current.pipeline().pipeline_name
    except Exception:  # called outside a load (headwater check)
        pipeline = "headwater_postgres_cdc"
    return pipeline.removeprefix("headwater_")


def _all_tables(connection, schema: str) -> list[str]:
    return [row[0] for row in connection.execute(
        "select tablename from pg_tables where schemaname = %s order by tablename", (schema,))]


def slot_names(settings: dict, source: str) -> tuple[str, str]:
    """The slot (base name, without generation) and publication a source's settings use."""
    default = re.sub(r"[^a-z0-9_]", "_", f"headwater_{source}".lower())[:63]
    return settings.get("slot") or default, settings.get("publication") or default


def drop_source_slots(settings: dict, source: str, drop_publication: bool = False) -> list[tuple[str, int]]:
    """Drop every slot of the source (each generation) in its database; (name, WAL bytes it kept) of each dropped.
    The publication goes too when asked (it holds no WAL)."""
    from connectors.postgres_cdc.slot import drop_superseded

    base, publication = slot_names(settings, source)
    with connect(settings["credentials"], autocommit=True) as connection:
        kept = dict(connection.execute(
            "select slot_name, coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint from pg_replication_slots"
            " where database = current_database()").fetchall())
        dropped = drop_superseded(connection, base, current="")
        if drop_publication:
            connection.execute(f'drop publication if exists "{publication}"')
    return [(name, int(kept.get(name, 0))) for name in dropped]
