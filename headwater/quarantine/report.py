"""What the quarantine tables hold: per table for `headwater quarantine list`, row by row for `show`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from headwater.postgres.address import PostgresAddress
from headwater.quarantine.naming import QUARANTINE_SUFFIX, is_quarantine_table, quarantine_table_name, table_of

LATEST = 3  # reasons shown per table: enough to see the pattern, not a wall of log
# Newest first; rows of one load in file order, `orders.csv:9` before `orders.csv:10` (same prefix: shorter is smaller).
NEWEST_FIRST = "order by quarantined_at desc, regexp_replace(location, '[0-9]+$', ''), length(location), location"


@dataclass
class QuarantineEntry:
    source: str
    table: str
    quarantined: int = 0
    replayed: int = 0
    superseded: int = 0  # resolved by a replay without loading: the table held a newer version of the key
    by_rule: dict[str, int] = field(default_factory=dict)  # rows still quarantined, per rule
    latest: list[tuple[str, str]] = field(default_factory=list)  # (reason, location), newest first


@dataclass
class QuarantinedRow:
    location: str
    rule: str
    reason: str
    record: Any  # the stored record, parsed from its JSON text
    quarantined_at: datetime
    attempts: int


@dataclass
class QuarantinedRows:
    """The rows of one table still quarantined (with the rule asked for), newest first, up to a limit."""

    rows: list[QuarantinedRow]
    total: int  # all rows that match, shown or not
    by_rule: dict[str, int]  # every row still quarantined in the table, per rule

    @property
    def not_shown(self) -> int:
        return self.total - len(self.rows)


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
                elif status == "superseded":
                    entry.superseded = count
                else:
                    entry.quarantined += count
            entry.by_rule = _by_rule(connection, relation)
            entry.latest = connection.execute(
                sql.SQL("select reason, location from {} where status = 'quarantined' " + NEWEST_FIRST + " limit %s")
                .format(relation),
                (LATEST,),
            ).fetchall()
            if entry.quarantined or entry.replayed or entry.superseded:
                entries.append(entry)
    return entries


def table_names(address: PostgresAddress, dataset: str) -> list[str]:
    """The tables dlt loaded into a raw schema, without dlt's own and the quarantine tables."""
    with psycopg.connect(address.url) as connection:
        names = connection.execute(
            "select table_name from information_schema.tables where table_schema = %s and table_name not like %s "
            "order by 1",
            (dataset, r"\_dlt\_%"),
        ).fetchall()
    return [name for (name,) in names if not is_quarantine_table(name)]


def quarantined_rows(
    address: PostgresAddress, dataset: str, table: str, rule: str | None = None, limit: int = 20
) -> QuarantinedRows:
    """Rows of `table` still quarantined (only `rule`'s, if given), newest first; none when it has no quarantine."""
    relation = sql.Identifier(dataset, quarantine_table_name(table))
    condition = sql.SQL("status = 'quarantined'" + (" and rule = %(rule)s" if rule is not None else ""))
    parameters = {"rule": rule, "limit": limit}
    with psycopg.connect(address.url) as connection:
        exists = connection.execute("select to_regclass(%s) is not null", (relation.as_string(connection),))
        if not exists.fetchone()[0]:
            return QuarantinedRows(rows=[], total=0, by_rule={})
        total = connection.execute(
            sql.SQL("select count(*) from {} where {}").format(relation, condition), parameters
        ).fetchone()[0]
        found = connection.execute(
            sql.SQL("select location, rule, reason, record, quarantined_at, attempts from {} where {} "
                    + NEWEST_FIRST + " limit %(limit)s").format(relation, condition),
            parameters,
        ).fetchall()
        by_rule = _by_rule(connection, relation)
    rows = [QuarantinedRow(location, rule_name, reason, _parsed(record), at, attempts or 0)
            for location, rule_name, reason, record, at, attempts in found]
    return QuarantinedRows(rows=rows, total=total, by_rule=by_rule)


def _by_rule(connection: psycopg.Connection, relation: sql.Identifier) -> dict[str, int]:
    return dict(connection.execute(
        sql.SQL("select rule, count(*) from {} where status = 'quarantined' "
                "group by rule order by count(*) desc, rule").format(relation)
    ).fetchall())


def _parsed(record: str | None) -> Any:
    try:
        return json.loads(record) if record is not None else None
    except ValueError:  # edited by hand into something that is not JSON: show it as it is
        return record
