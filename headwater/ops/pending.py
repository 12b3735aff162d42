"""Raw tables whose new rows have not reached the published marts yet.

A run decides what to rebuild from the tables that received rows. When it then holds a source
back (a failed raw contract) or withholds its marts (a failed dbt node or audit), those rows are
in raw but not in the marts; without a memory the next run, with no new rows, would rebuild
nothing and the marts would stay behind. Such tables stay in `headwater_ops.pending_rebuilds`
until a run rebuilds and publishes what they feed.

A load may mark a table while a build is under way (per-source deployments load while the `build`
deployment builds). Each mark has a number, renewed when a load marks the table again; a build forgets
only the marks it read, so the rows of a load that committed meanwhile wait for the next build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.marts.rebuild import Relation
from headwater.ops.history import SCHEMA, ensure_schema

if TYPE_CHECKING:
    from headwater.ops.summary import RunSummary
    from headwater.postgres.address import PostgresAddress

TABLE = f"{SCHEMA}.pending_rebuilds"


def pending_relations(address: "PostgresAddress") -> list[Relation]:
    """Raw relations an earlier run loaded but did not get into published marts."""
    return sorted(pending_marks(address))


def pending_marks(address: "PostgresAddress") -> dict[Relation, int]:
    """The pending relations with the number of their mark, for ``settle`` to forget exactly these marks."""
    with address.connect() as connection:
        ensure_schema(connection)
        rows = connection.execute(f"select schema_name, table_name, mark from {TABLE}").fetchall()
    return {(schema, table): mark for schema, table, mark in rows}


def still_pending(changed: list[Relation], summary: "RunSummary") -> list[Relation]:
    """Of the relations this run set out to rebuild, those whose rows did not reach published marts."""
    rebuild = summary.rebuild
    if rebuild is None or not rebuild.run and not rebuild.held_back:
        return []
    if summary.dbt is not None and not summary.dbt.success or summary.publish is not None and not summary.publish.ok:
        return list(changed)
    held_back = {f"raw_{source}" for source in rebuild.held_back_sources}
    return [relation for relation in changed if relation[0] in held_back]


def settle(address: "PostgresAddress", changed: list[Relation], summary: "RunSummary", run_id: str,
           marks: dict[Relation, int]) -> None:
    """Remember what is still pending after this run and forget the marks it read (``marks``) of what was
    published; a table marked again since it read them stays pending."""
    pending = still_pending(changed, summary)
    with address.connect() as connection:
        ensure_schema(connection)
        for (schema, table), mark in marks.items():
            if (schema, table) not in pending:
                connection.execute(f"delete from {TABLE} where schema_name = %s and table_name = %s and mark = %s",
                                   (schema, table, mark))
    remember_pending(address, pending, run_id)


def remember_pending(address: "PostgresAddress", relations: list[Relation], run_id: str) -> None:
    """Keep ``relations`` pending for the next run: this run loaded them but could not build their marts."""
    with address.connect() as connection:
        ensure_schema(connection)
        for schema, table in relations:
            connection.execute(
                f"insert into {TABLE} (schema_name, table_name, since_run) values (%s, %s, %s) "
                f"on conflict (schema_name, table_name) do update set mark = nextval('{SCHEMA}.pending_marks')",
                (schema, table, run_id),
            )
