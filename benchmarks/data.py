"""Synthetic benchmark data: one events table of ten mixed columns, written as CSV and Parquet landing files."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

TABLE = "events"
# The same table in Postgres; raw COPY and the SQL sources use it.
POSTGRES_DDL = """
CREATE TABLE {name} (
    id bigint, customer_id bigint, quantity bigint, price double precision, discount double precision,
    name text, email text, created_at timestamptz, updated_at timestamptz, is_active boolean
)"""
MARIADB_DDL = """
CREATE TABLE {name} (
    id bigint PRIMARY KEY, customer_id bigint, quantity bigint, price double, discount double,
    name varchar(64), email varchar(64), created_at datetime(6), updated_at datetime(6), is_active boolean
)"""
COLUMNS = ("id", "customer_id", "quantity", "price", "discount", "name", "email", "created_at", "updated_at",
           "is_active")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
SECONDS_PER_YEAR = 3600 * 24 * 365


def events(rows: int, first_id: int = 0, seed: int = 7) -> pl.DataFrame:
    """``rows`` events with ids from ``first_id``; later ids have later ``updated_at`` (the cursor column).

    Values are hashes of the id, so a row is the same whichever batch it is generated in, and no
    numeric library beyond Polars is needed.
    """
    return events_of(pl.int_range(first_id, first_id + rows, eager=True, dtype=pl.Int64), seed)


def events_of(ids: pl.Series, seed: int = 7) -> pl.DataFrame:
    """The events of these ids, the same values ``events`` gives them."""
    epoch = EPOCH.replace(tzinfo=None)

    def pick(salt: int, modulo: int) -> pl.Expr:
        return (pl.col("id").hash(seed + salt) % modulo).cast(pl.Int64)

    def stamp(seconds: pl.Expr) -> pl.Expr:
        return (pl.lit(epoch) + pl.duration(seconds=seconds)).dt.replace_time_zone("UTC")

    return pl.DataFrame({"id": ids}).with_columns(
        customer_id=pick(1, 100_000) + 1,
        quantity=pick(2, 50) + 1,
        price=(pick(3, 50_000) / 100).round(2),
        discount=pick(4, 300) / 1000,
        # Names carry stray spaces and emails mixed case: the trim and lower-case steps have real work to do.
        name=pl.format("  Customer {} ", pick(5, 1000)),
        email=pl.format("User.{}@Example.COM", pick(6, 1000)),
        created_at=stamp(pick(7, SECONDS_PER_YEAR)),
        # One second apart by id: a cursor on updated_at finds exactly the rows added later.
        updated_at=stamp(pl.col("id")),
        is_active=pick(8, 10) < 8,
    )


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path, datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z")
    return path


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, row_group_size=100_000)
    return path


def changed_events(size: int, changed: int, round_: int = 0) -> pl.DataFrame:
    """``changed`` rows of a ``size``-row events table as a source sends them after a change: half of them
    existing ids spread over the table (one row in every ``2 * size / changed``), updated; half new ids.

    Every row's ``updated_at`` is later than any row of earlier rounds, so a cursor finds exactly these.
    """
    updates, inserts = changed // 2, changed - changed // 2
    step = max(1, size // max(updates, 1))
    updated_ids = pl.int_range(round_, size, step, eager=True, dtype=pl.Int64).head(updates)
    later = pl.duration(seconds=(round_ + 1) * 10 * size)  # past every updated_at so far
    updated = events_of(updated_ids).with_columns(quantity=pl.col("quantity") + 1)
    new = events(inserts, first_id=size + round_ * inserts)
    return pl.concat([updated, new]).with_columns(updated_at=pl.col("updated_at") + later)
