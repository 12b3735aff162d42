"""nats_jetstream: JSON messages of a JetStream stream land once each, acknowledged only after they committed."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from headwater.load.pipeline import load_source
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import fresh_database

nats = pytest.importorskip("nats")
SERVER = "nats://127.0.0.1:4222"


@pytest.fixture
def destination():
    with fresh_database("hw_nats_dest") as url:
        yield url


@pytest.fixture
def stream():
    """A new JetStream stream (subjects `<name>.>`), deleted afterwards with its consumers."""
    name = f"HW_{uuid.uuid4().hex[:10].upper()}"
    _run(_add_stream(name))
    yield name
    _run(_delete_stream(name))


async def _connected(work):
    connection = await nats.connect(SERVER)
    try:
        return await work(connection, connection.jetstream())
    finally:
        await connection.close()


def _run(coroutine):
    return asyncio.run(coroutine)


async def _add_stream(name: str) -> None:
    await _connected(lambda _, js: js.add_stream(name=name, subjects=[f"{name}.>"]))


async def _delete_stream(name: str) -> None:
    await _connected(lambda _, js: js.delete_stream(name))


def publish(stream: str, *bodies: bytes | dict) -> list[int]:
    """Publish to `<stream>.events`; the stream sequence of each message."""
    async def work(_, js):
        return [(await js.publish(f"{stream}.events", body if isinstance(body, bytes) else
                                  json.dumps(body).encode())).seq for body in bodies]
    return _run(_connected(work))


def consumer_info(stream: str, consumer: str = "headwater_events"):
    return _run(_connected(lambda _, js: js.consumer_info(stream, consumer)))


def registry(acknowledging: bool = True) -> ConnectorRegistry:
    from connectors.nats_jetstream import nats_jetstream
    from connectors.nats_jetstream.reader import acknowledge

    connectors = ConnectorRegistry()
    metadata = {"acknowledge": acknowledge} if acknowledging else {}
    connectors.registrar(Plugin("builtin", "headwater", "test"))("nats_jetstream", nats_jetstream, **metadata)
    return connectors


def write_project(root, stream: str, settings: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          events:
            connector: nats_jetstream
            settings:
              servers: {SERVER}
              streams: [{stream}]
              max_wait_seconds: 0.2
        """) + textwrap.indent(textwrap.dedent(settings), "      "))


def run(root, destination: str, acknowledging: bool = True):
    connectors = registry(acknowledging)
    project = load_project(root / "headwater.yaml", connectors)
    source = project.source("events")
    result = load_source(project, source, connectors.get(source.connector), PostgresAddress.from_url(destination))
    assert result.ok, result.error
    return result


def loaded(result, table: str) -> int:
    return {load.table: load.rows for load in result.tables}.get(table, 0)


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def test_messages_land_as_rows_once_and_a_load_without_news_loads_nothing(tmp_path, stream, destination):
    table = stream.lower()
    before = datetime.now(timezone.utc)
    sequences = publish(stream,
                        {"id": 1, "name": "ann", "amount": 1.5, "paid": True, "tags": ["a", "b"],
                         "address": {"city": "Oslo"}, "at": "2024-05-01T10:00:00Z"},
                        {"id": 2, "name": "bob", "amount": 2, "paid": False, "tags": [], "address": None,
                         "at": "2024-05-02T11:30:00+02:00"},
                        {"id": 3, "name": None, "amount": 3.25, "paid": None, "tags": None, "at": None})
    write_project(tmp_path, stream)
    first = run(tmp_path, destination)
    assert loaded(first, table) == 3

    raw = rows(destination, f"select id, name, amount, paid, tags, address, at, _stream, _sequence from"
                            f" raw_events.{table} order by _sequence")
    assert raw == [
        (1, "ann", 1.5, True, ["a", "b"], {"city": "Oslo"}, datetime(2024, 5, 1, 10, tzinfo=timezone.utc),
         stream, sequences[0]),
        (2, "bob", 2.0, False, [], None, datetime(2024, 5, 2, 9, 30, tzinfo=timezone.utc), stream, sequences[1]),
        (3, None, 3.25, None, None, None, None, stream, sequences[2]),
    ]
    published = rows(destination, f"select _published_at from raw_events.{table}")
    assert all(before <= at <= datetime.now(timezone.utc) for (at,) in published)
    types = dict(rows(destination, "select column_name, data_type from information_schema.columns"
                                   f" where table_schema = 'raw_events' and table_name = '{table}'"))
    assert types["tags"] == types["address"] == "jsonb" and types["_sequence"] == "bigint"
    assert types["_published_at"] == "timestamp with time zone"

    second = run(tmp_path, destination)
    assert loaded(second, table) == 0
    assert rows(destination, f"select id, name, amount, paid, tags, address, at, _stream, _sequence from"
                             f" raw_events.{table} order by _sequence") == raw


def test_redelivered_messages_land_once_and_committed_ones_are_acknowledged(tmp_path, stream, destination):
    table = stream.lower()
    publish(stream, *({"n": n} for n in range(1, 6)))
    write_project(tmp_path, stream, "ack_wait_seconds: 1\n")
    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 5
    assert consumer_info(stream).num_ack_pending == 5  # loaded, but nothing acknowledged
    time.sleep(1.1)  # past ack_wait: the server gives 1-5 again
    publish(stream, *({"n": n} for n in range(6, 9)))

    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 3
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, n) for n in range(1, 9)]
    assert consumer_info(stream).num_ack_pending == 3

    publish(stream, {"n": 9})
    assert loaded(run(tmp_path, destination), table) == 1
    assert rows(destination, f"select count(*), count(distinct n), max(n) from raw_events.{table}") == [(9, 9, 9)]
    info = consumer_info(stream)
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 9


def test_messages_a_dead_load_fetched_load_next_in_order(tmp_path, stream, destination, caplog):
    table = stream.lower()
    publish(stream, *({"n": n} for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3
    publish(stream, *({"n": n} for n in range(4, 7)))

    async def fetch_and_die(_, js):  # a load that fetched 4 and 5 and died before its rows committed
        subscription = await js.pull_subscribe_bind(durable="headwater_events", stream=stream)
        return [message.metadata.sequence.stream for message in await subscription.fetch(2, timeout=1)]
    assert _run(_connected(fetch_and_die)) == [4, 5]
    publish(stream, {"n": 7})

    # 4 and 5 would wait for ack_wait (300 s) while 6 and 7 load, and the ack of 7 would let them go unread.
    assert loaded(run(tmp_path, destination), table) == 4
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, n) for n in range(1, 8)]
    assert "2 messages delivered to a load that did not commit them" in caplog.text
    info = consumer_info(stream)
    assert info.num_ack_pending == 0 and info.ack_floor.stream_seq == 7


def test_a_message_that_is_not_a_json_object_is_quarantined_and_the_others_load(tmp_path, stream, destination):
    table = stream.lower()
    sequences = publish(stream, {"id": 1}, b"not json {", b"[1, 2]", b"\xff\xfe", {"id": 2})
    write_project(tmp_path, stream)
    result = run(tmp_path, destination)
    assert {load.table: (load.rows, load.quarantined) for load in result.tables}[table] == (2, 3)
    assert rows(destination, f"select id, _sequence from raw_events.{table} order by id") == [
        (1, sequences[0]), (2, sequences[4])]
    quarantined = rows(destination, f"select location, rule, reason, record from raw_events.{table}__quarantine"
                                    " order by location")
    assert [(location, rule) for location, rule, _, _ in quarantined] == [
        (f"{stream}:{sequences[1]}", "json"), (f"{stream}:{sequences[2]}", "json"),
        (f"{stream}:{sequences[3]}", "encoding")]
    assert "not JSON" in quarantined[0][2] and "an array, not an object" in quarantined[1][2]
    assert "not UTF-8" in quarantined[2][2]
    records = [json.loads(record) for *_, record in quarantined]
    assert [record["_raw_line"] for record in records] == ["not json {", "[1, 2]", "\\xff\\xfe"]
    assert [record["_sequence"] for record in records] == sequences[1:4]

    run(tmp_path, destination)  # nothing new: the quarantine does not grow
    assert rows(destination, f"select count(*) from raw_events.{table}__quarantine") == [(3,)]


def test_a_batch_closes_at_max_messages_and_the_next_loads_take_the_rest_in_order(tmp_path, stream, destination):
    table = stream.lower()
    sequences = publish(stream, *({"n": n} for n in range(25)))
    write_project(tmp_path, stream, "max_messages: 10\n")
    counts = [loaded(run(tmp_path, destination), table) for _ in range(4)]
    assert counts == [10, 10, 5, 0]
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by _sequence") == [
        (n, sequences[n]) for n in range(25)]


def test_a_consumer_set_back_gives_loaded_messages_again_which_are_skipped(tmp_path, stream, destination):
    from nats.js.api import AckPolicy, ConsumerConfig

    table = stream.lower()
    publish(stream, *({"n": n} for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3

    async def set_back(_, js):  # by hand: the same consumer again, from the start
        config = (await js.consumer_info(stream, "headwater_events")).config
        await js.delete_consumer(stream, "headwater_events")
        await js.add_consumer(stream, ConsumerConfig(durable_name="headwater_events", ack_policy=AckPolicy.ALL,
                                                     ack_wait=config.ack_wait, max_ack_pending=-1))
    _run(_connected(set_back))
    publish(stream, *({"n": n} for n in range(4, 6)))

    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 2
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, n) for n in range(1, 6)]
    assert loaded(run(tmp_path, destination), table) == 0
    info = consumer_info(stream)
    assert (info.ack_floor.stream_seq, info.num_ack_pending) == (5, 0)


def test_a_full_refresh_loads_what_the_stream_holds_again(tmp_path, stream, destination):
    from headwater.load.reload import Reload

    table = stream.lower()
    publish(stream, *({"n": n} for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3
    assert consumer_info(stream).ack_floor.stream_seq == 3
    connectors = registry()
    project = load_project(tmp_path / "headwater.yaml", connectors)
    result = load_source(project, project.source("events"), connectors.get("nats_jetstream"),
                         PostgresAddress.from_url(destination), reload=Reload(full_refresh={"events": frozenset()}))
    assert result.ok, result.error
    assert rows(destination, f"select n from raw_events.{table} order by n") == [(1,), (2,), (3,)]


def test_check_reads_nothing_and_leaves_the_stream_as_it_was(tmp_path, stream):
    from headwater.load.checks import check_source

    publish(stream, {"n": 1})
    write_project(tmp_path, stream)
    project = load_project(tmp_path / "headwater.yaml", registry())
    result = check_source(project, project.source("events"), registry().get("nats_jetstream"))
    assert result.ok and result.detail == f"no rows yet in {stream.lower()}"
    with pytest.raises(nats.js.errors.NotFoundError):
        consumer_info(stream)


def test_a_missing_stream_and_an_unreachable_server_say_so(tmp_path, destination):
    write_project(tmp_path, "HW_NO_SUCH_STREAM")
    connectors = registry()
    project = load_project(tmp_path / "headwater.yaml", connectors)
    source = project.source("events")
    result = load_source(project, source, connectors.get(source.connector), PostgresAddress.from_url(destination))
    assert not result.ok and "JetStream stream 'HW_NO_SUCH_STREAM' does not exist on nats://127.0.0.1:4222" in (
        result.error)

    (tmp_path / "headwater.yaml").write_text((tmp_path / "headwater.yaml").read_text().replace(
        SERVER, "nats://user:pw@127.0.0.1:1"))
    project = load_project(tmp_path / "headwater.yaml", connectors)
    result = load_source(project, project.source("events"), connectors.get("nats_jetstream"),
                         PostgresAddress.from_url(destination))
    assert not result.ok and "cannot connect to NATS at nats://user:***@127.0.0.1:1" in result.error
    assert "pw" not in result.error
