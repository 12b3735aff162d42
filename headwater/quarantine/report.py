"""What the quarantine tables hold, summarised per table for `headwater quarantine list`."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from headwater.postgres.address import PostgresAddress
from headwater.quarantine.naming import QUARANTINE_SUFFIX, table_of

LATEST = 3  # reasons shown per table: enough to see the pattern, not a wall of log


@dataclass
class QuarantineEntry:
    source: str
    table: str
    quarantined: int = 0
    replayed: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # rows still quarantined, per rule
    latest: list[tuple[str, str]] = field(default_factory=list)  # (reason, location), newest first


def quarantine_report(address: PostgresAddress, datasets: list[str]) -> list[QuarantineEntry]:
    entries = []
    with psycopg.connect(address.url) as connection:
        found = connection.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_name like %s order by 1, 2",
            (datasets, "%" + QUARANTINE_SUFFIX.replace("_", r"\_")),
        ).fetchall()
        for schema, name in found:
            relation = sql.Identifier(schema, name)
            entry = QuarantineEntry(source=schema.removeprefix("raw_"), table=table_of(name))
            for status, count in connection.execute(
                sql.SQL("select status, count(*) from {} group by status").format(relation)
            ):
                if status == "replayed":
                    entry.replayed = count
                else:
                    entry.quarantined += count
            entry.by_rule = dict(connection.execute(
                sql.SQL("select rule, count(*) from {} where status = 'quarantined' "
                        "group by rule order by count(*) desc, rule").format(relation)
            ).fetchall())
            entry.latest = connection.execute(
                sql.SQL("select reason, location from {} where status = 'quarantined' "
                        "order by quarantined_at desc, location limit %s").format(relation),
                (LATEST,),
            ).fetchall()
            if entry.quarantined or entry.replayed:
                entries.append(entry)
    return entries
