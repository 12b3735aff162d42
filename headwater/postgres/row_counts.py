"""How many rows a relation holds, without scanning big tables: exact below a size, else the planner's estimate."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

# Estimated rows (pg_class.reltuples, else pg_stat_all_tables.n_live_tup) from which a table is not counted exactly.
EXACT_COUNT_BELOW = 1_000_000
COUNT_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class RowCount:
    rows: int | None
    estimated: bool = False


def count_rows(connection, relations: list[tuple[str, str]]) -> dict[tuple[str, str], RowCount]:
    """(schema, name) -> rows; a relation that does not exist is left out.

    Each exact count runs in a savepoint under a statement timeout, so a slow one falls back to the
    estimate without breaking the caller's transaction or session.
    """
    if not relations:
        return {}
    found = {
        (schema, name): (kind, estimate)
        for schema, name, kind, estimate in connection.execute(
            # reltuples is -1 until the table is first vacuumed or analyzed (a raw table just loaded, before
            # autovacuum came by): the statistics system's live-row count then stands in for it.
            "select n.nspname, c.relname, c.relkind, "
            "case when c.reltuples >= 0 then c.reltuples else s.n_live_tup end from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace left join pg_stat_all_tables s on s.relid = c.oid "
            "where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')",
            (sorted({schema for schema, _ in relations}),),
        )
    }
    counts: dict[tuple[str, str], RowCount] = {}
    for relation in relations:
        if relation not in found:
            continue
        kind, estimate = found[relation]
        if kind in ("r", "p", "m") and estimate is not None and estimate >= EXACT_COUNT_BELOW:
            counts[relation] = RowCount(int(estimate), estimated=True)
            continue
        query = sql.SQL("select count(*) from {}.{}").format(*map(sql.Identifier, relation))
        try:
            with connection.transaction():
                connection.execute(f"set local statement_timeout = {COUNT_TIMEOUT_MS}")
                counts[relation] = RowCount(connection.execute(query).fetchone()[0])
        except Exception:  # timed out or not readable: an estimate when there is one
            counts[relation] = RowCount(int(estimate), estimated=True) if estimate and estimate > 0 \
                else RowCount(None)
    return counts
