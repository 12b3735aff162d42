"""Streaming figures: changes a PostgreSQL slot gives into raw per second, messages a broker gives, and the delay
from a source's commit to raw's at a steady 1,000 a second.

    python -m benchmarks.streaming            # 200,000 changes; 100,000 messages per broker; 30 s at 1,000/s
    python -m benchmarks.streaming --quick    # small sizes, in about a minute
    python -m benchmarks.streaming --out FILE # the results file (default benchmarks/results.md)

Every figure comes from the product's own loads (headwater.load.pipeline.load_source, batch after batch, as
`headwater stream` runs them) into a fresh destination database:

- **Throughput.** A backlog (inserts, updates and deletes in transactions of 1,000 changes; published messages)
  is loaded batch after batch until none is left; changes (or messages) per second of those loads. The same
  number of rows copied by one raw binary `COPY` into a table of the same columns is the yardstick.
- **Delay.** A writer commits 100 changes (or publishes 100 messages) every 100 ms while the loads run; each
  row's delay is the time its load was recorded in `_dlt_loads` minus its source commit time
  (`_cdc_committed_at`; a message's `_published_at`). p50 and p99 over every row.

Raw ends exact against the source every time (counts and a checksum), or the benchmark fails.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import yaml

from benchmarks.databases import POSTGRES_SERVER, create_postgres_database, drop_postgres_database
from benchmarks.machine import describe
from benchmarks.sections import marked, replace_section

RESULTS = Path(__file__).resolve().parent / "results.md"
SOURCE_SECRET = "BENCH_CDC_URL"
COLUMNS = "id, v, amount, note, at"
TABLE_DDL = ("create table events (id bigint primary key, v int not null, amount numeric(12, 2), note text,"
             " at timestamptz)")
STEADY_RATE, STEADY_BATCH = 1_000, 100  # changes a second, committed 100 at a time every 100 ms
REDIS_URL = os.environ.get("HEADWATER_BENCH_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("HEADWATER_BENCH_NATS", "nats://127.0.0.1:4222")


def say(line: str) -> None:
    print(line, flush=True)


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def one(url: str, sql: str):
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchone()


class Loads:
    """One source of a project, loaded in this process as `headwater stream` loads it."""

    def __init__(self, folder: Path, source: dict, destination: str):
        from headwater.plugins.manager import connector_registry
        from headwater.postgres.address import PostgresAddress
        from headwater.project.config import load_project

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "headwater.yaml").write_text(yaml.safe_dump({"project": "bench", "sources": {"s": source}}))
        self.registry = connector_registry()
        self.project = load_project(folder / "headwater.yaml", self.registry)
        self.source = self.project.source("s")
        self.address = PostgresAddress.from_url(destination)

    def once(self):
        from headwater.load.pipeline import load_source

        result = load_source(self.project, self.source, self.registry.get(self.source.connector), self.address)
        if not result.ok:
            raise RuntimeError(result.error)
        return result

    def until_drained(self, full: int) -> tuple[int, float, int]:
        """Loads until one takes less than a full batch: (rows loaded, seconds, batches)."""
        rows, seconds, batches = 0, 0.0, 0
        while True:
            started = time.perf_counter()
            result = self.once()
            seconds += time.perf_counter() - started
            batches += 1
            taken = sum(table.read for table in result.tables)
            rows += taken
            if taken < full:
                return rows, seconds, batches

    def while_running(self, stop: threading.Event) -> int:
        batches = 0
        while not stop.is_set():
            result = self.once()
            batches += 1
            if not any(table.read for table in result.tables):
                stop.wait(0.05)
        return batches


def raw_copy_seconds(destination: str, rows: int) -> float:
    """One raw binary-free text COPY of ``rows`` rows of the benchmark's columns into a new table: the yardstick."""
    buffer = io.StringIO()
    for i in range(rows):
        buffer.write(f"{i}\t{i % 7}\t{i % 1000}.25\tnote {i}\t2024-01-01 00:00:00+00\n")
    data = buffer.getvalue().encode()
    execute(destination, TABLE_DDL.replace("events", "copy_yardstick"))
    started = time.perf_counter()
    with psycopg.connect(destination) as connection, connection.cursor() as cursor:
        with cursor.copy(f"copy copy_yardstick ({COLUMNS}) from stdin") as copy:
            copy.write(data)
    return time.perf_counter() - started


def delays(destination: str, relation: str, committed: str, steady: str) -> tuple[float, float, int]:
    """p50, p99 (seconds) and rows of (the load's record time - the row's source time)."""
    loads = f"{relation.split('.')[0]}._dlt_loads"
    row = one(destination, f"select percentile_cont(0.5) within group (order by d), percentile_cont(0.99) within group"
                           f" (order by d), count(*) from (select extract(epoch from l.inserted_at - r.{committed}) d"
                           f" from {relation} r join {loads} l on l.load_id = r._dlt_load_id where r.{steady}) t")
    return float(row[0]), float(row[1]), int(row[2])


def steady(write_batch, loads: Loads, seconds: float) -> int:
    """``write_batch(n)`` every 100 ms for ``seconds`` while ``loads`` load; the batches loaded."""
    stop, done = threading.Event(), {}
    loader = threading.Thread(target=lambda: done.setdefault("batches", loads.while_running(stop)))
    loader.start()
    started, number = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        write_batch(number)
        number += 1
        time.sleep(max(0.0, started + number * STEADY_BATCH / STEADY_RATE - time.monotonic()))
    time.sleep(3)  # the last writes reach raw
    stop.set()
    loader.join()
    return done["batches"]


# ----------------------------------------------------------------------------------------------------------------
# PostgreSQL change data capture

def cdc_case(workdir: Path, server: str, changes: int, steady_seconds: float) -> dict:
    source_db = f"bench_cdc_{uuid.uuid4().hex[:8]}"
    execute(f"{server}/postgres", f'create database "{source_db}"')
    source = f"{server}/{source_db}"
    destination = create_postgres_database("cdc")
    os.environ[SOURCE_SECRET] = source
    try:
        execute(source, TABLE_DDL, "alter table events add column _bench_steady boolean not null default false",
                "insert into events select g, 0, g % 1000 + 0.25, 'note ' || g, now() from generate_series(1, 10000) g")
        loads = Loads(workdir / "cdc", {"connector": "postgres_cdc", "settings": {
            "credentials": f"${{{SOURCE_SECRET}}}", "tables": ["events"], "max_changes": 100_000}}, destination)
        loads.once()  # the snapshot
        say(f"cdc: backlog of {changes:,} changes")
        per_kind, next_id = changes // 2, 10_001
        with psycopg.connect(source, autocommit=True) as connection:
            for first in range(next_id, next_id + per_kind, 1_000):
                connection.execute(f"insert into events select g, 1, g % 1000 + 0.5, 'new ' || g, now()"
                                   f" from generate_series({first}, {first + 999}) g")
            for first in range(next_id, next_id + per_kind * 3 // 5, 1_000):
                connection.execute(f"update events set v = v + 1, note = note || 'u' where id between {first}"
                                   f" and {first + 999}")
            for first in range(next_id + per_kind * 3 // 5, next_id + per_kind, 1_000):
                connection.execute(f"delete from events where id between {first} and {first + 999}")
        rows, seconds, batches = loads.until_drained(100_000)
        check(source, "events", destination, "raw_s.events")
        say(f"cdc: {changes:,} changes in {seconds:.2f} s ({changes / seconds:,.0f}/s, {batches} batches)")
        copy_seconds = raw_copy_seconds(destination, changes)
        say(f"cdc: steady {STEADY_RATE}/s for {steady_seconds:.0f} s")
        counter = iter(range(10**9))

        def write(_):
            first = 10**7 + next(counter) * STEADY_BATCH
            execute(source, f"insert into events select g, 2, 1.5, 'steady', now(), true"
                            f" from generate_series({first}, {first + STEADY_BATCH - 1}) g")

        steady_batches = steady(write, loads, steady_seconds)
        check(source, "events", destination, "raw_s.events")
        p50, p99, measured = delays(destination, "raw_s.events", "_cdc_committed_at", "_bench_steady")
        return {"changes": changes, "seconds": seconds, "batches": batches, "copy_seconds": copy_seconds,
                "p50": p50, "p99": p99, "measured": measured, "steady_batches": steady_batches}
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (source_db,))
            for (slot,) in admin.execute("select slot_name from pg_replication_slots where database = %s",
                                         (source_db,)).fetchall():
                admin.execute("select pg_drop_replication_slot(%s)", (slot,))
            admin.execute(f'drop database "{source_db}" with (force)')
        drop_postgres_database(destination)


def check(source: str, table: str, destination: str, relation: str) -> None:
    query = f"select count(*), md5(string_agg(({COLUMNS})::text, ',' order by id)) from {{}}"
    expected, landed = one(source, query.format(table)), one(destination, query.format(relation))
    if expected != landed:
        raise AssertionError(f"raw differs from the source: {landed} != {expected}")


# ----------------------------------------------------------------------------------------------------------------
# Brokers

def broker_case(workdir: Path, broker: str, messages: int, steady_seconds: float) -> dict:
    destination = create_postgres_database(broker)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    publish, cleanup, settings = _broker(broker, name)
    try:
        loads = Loads(workdir / broker, {"connector": f"{broker}", "settings": settings}, destination)
        say(f"{broker}: backlog of {messages:,} messages")
        for first in range(0, messages, 1_000):
            publish([{"n": n, "kind": f"k{n % 7}", "amount": n % 1000 + 0.25, "steady": False}
                     for n in range(first, min(first + 1_000, messages))])
        rows, seconds, batches = loads.until_drained(settings["max_messages"])
        table = f"raw_s.{name}"
        if one(destination, f"select count(*) from {table}")[0] != messages:
            raise AssertionError(f"{broker}: raw holds a different number of messages than were published")
        say(f"{broker}: {messages:,} messages in {seconds:.2f} s ({messages / seconds:,.0f}/s, {batches} batches)")
        counter = iter(range(10**9))

        def write(_):
            first = messages + next(counter) * STEADY_BATCH
            publish([{"n": n, "kind": "steady", "amount": 1.5, "steady": True}
                     for n in range(first, first + STEADY_BATCH)])

        say(f"{broker}: steady {STEADY_RATE}/s for {steady_seconds:.0f} s")
        steady_batches = steady(write, loads, steady_seconds)
        p50, p99, measured = delays(destination, table, "_published_at", "steady")
        total = one(destination, f"select count(*), count(distinct n) from {table}")
        if total[0] != total[1]:
            raise AssertionError(f"{broker}: a message landed twice")
        return {"messages": messages, "seconds": seconds, "batches": batches, "p50": p50, "p99": p99,
                "measured": measured, "steady_batches": steady_batches}
    finally:
        cleanup()
        drop_postgres_database(destination)


def _broker(broker: str, name: str):
    settings = {"streams": [name], "max_messages": 20_000, "max_wait_seconds": 0.2}
    if broker == "redis_streams":
        import redis

        client = redis.Redis.from_url(REDIS_URL)

        def publish(bodies):
            pipe = client.pipeline(transaction=False)
            for body in bodies:
                pipe.xadd(name, {"data": json.dumps(body)})
            pipe.execute()

        return publish, lambda: (client.delete(name), client.close()), {**settings, "url": REDIS_URL}
    import asyncio

    import nats

    async def add():
        connection = await nats.connect(NATS_URL)
        await connection.jetstream().add_stream(name=name.upper(), subjects=[f"{name}.>"])
        await connection.close()

    asyncio.run(add())
    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(nats.connect(NATS_URL))
    stream = connection.jetstream()

    def publish(bodies):
        async def send():
            acks = [await stream.publish_async(f"{name}.events", json.dumps(body).encode()) for body in bodies]
            await asyncio.gather(*acks)
        loop.run_until_complete(send())

    def cleanup():
        loop.run_until_complete(stream.delete_stream(name.upper()))
        loop.run_until_complete(connection.close())
        loop.close()

    return publish, cleanup, {**settings, "streams": [name.upper()], "servers": NATS_URL}


# ----------------------------------------------------------------------------------------------------------------

def report(cdc: dict, brokers: dict[str, dict], steady_seconds: float, machine: dict[str, str]) -> str:
    lines = [
        "## Streaming: change data capture and broker micro-batches",
        "",
        "`python -m benchmarks.streaming`: loads in this process, batch after batch as `headwater stream` runs them,",
        "into a fresh destination (the slot's source: the embedded PostgreSQL 18, `wal_level=logical`); raw checked",
        "exact against the source after each part. Delay: the time the row's",
        "load was recorded in `_dlt_loads` minus its source commit (`_cdc_committed_at`) or publish time "
        f"(`_published_at`), at a steady {STEADY_RATE:,}/s ({STEADY_BATCH} per commit every 100 ms) for "
        f"{steady_seconds:.0f} s.",
        "",
        "| source | backlog | seconds | per second | batches | delay p50 | delay p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| PostgreSQL slot (`postgres_cdc`): inserts, updates, deletes | {cdc['changes']:,} changes | "
        f"{cdc['seconds']:.2f} | **{cdc['changes'] / cdc['seconds']:,.0f}** | {cdc['batches']} | "
        f"{cdc['p50']:.2f} s | **{cdc['p99']:.2f} s** |",
    ]
    for broker, figures in brokers.items():
        lines.append(f"| `{broker}` | {figures['messages']:,} messages | {figures['seconds']:.2f} | "
                     f"**{figures['messages'] / figures['seconds']:,.0f}** | {figures['batches']} | "
                     f"{figures['p50']:.2f} s | **{figures['p99']:.2f} s** |")
    goals = [("CDC changes applied per second", ">= 20,000", cdc["changes"] / cdc["seconds"], 20_000, True),
             ("CDC delay p99 at 1,000/s", "<= 2 s", cdc["p99"], 2.0, False)]
    goals += [(f"`{broker}` delay p99 at 1,000/s", "<= 2 s", figures["p99"], 2.0, False)
              for broker, figures in brokers.items()]
    lines += ["", "| goal | target | measured | verdict |", "|---|---:|---:|---|"]
    for name, target, measured, bound, at_least in goals:
        met = measured >= bound if at_least else measured <= bound
        shown = f"{measured:,.0f}" if at_least else f"{measured:.2f} s"
        lines.append(f"| {name} | {target} | {shown} | {'met' if met else 'missed'} |")
    lines += [
        "",
        f"- Yardstick: the same {cdc['changes']:,} rows by one raw text `COPY` into a table of the same columns: "
        f"{cdc['copy_seconds']:.2f} s ({cdc['changes'] / cdc['copy_seconds']:,.0f} rows/s); the slot's changes "
        f"are applied at {cdc['copy_seconds'] / cdc['seconds']:.2f}x that rate (each batch is decoded, folded to "
        "one row per key, and merged: deleted, then inserted, on the key).",
        f"- Delay rows measured: {cdc['measured']:,} changes in {cdc['steady_batches']} batches"
        + "".join(f"; {figures['measured']:,} `{broker}` messages in {figures['steady_batches']} batches"
                  for broker, figures in brokers.items()) + ".",
        "",
        *(f"- {name}: {value}" for name, value in machine.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from headwater.common.runtime import quiet_telemetry

    quiet_telemetry()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    changes, messages, steady_seconds = (20_000, 10_000, 8.0) if args.quick else (200_000, 100_000, 30.0)
    machine = describe(POSTGRES_SERVER)
    from tests.connectors.logical_server import start_logical_server

    with tempfile.TemporaryDirectory(prefix="hw-stream-bench-") as folder:
        workdir = Path(folder)
        server, url = start_logical_server(workdir / "postgres")
        try:
            cdc = cdc_case(workdir, url, changes, steady_seconds)
        finally:
            server.stop()
        brokers = {broker: broker_case(workdir, broker, messages, steady_seconds)
                   for broker in ("redis_streams", "nats_jetstream")}
    text = report(cdc, brokers, steady_seconds, machine)
    say(text)
    replace_section(args.out, "streaming", marked("streaming", text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
