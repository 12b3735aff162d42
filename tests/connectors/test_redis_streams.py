"""redis_streams: entries of a Redis stream land once each, acknowledged only after they committed."""

from __future__ import annotations

import json
import textwrap
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from headwater.load.pipeline import load_source
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import fresh_database

redis = pytest.importorskip("redis")
URL = "redis://127.0.0.1:6379/0"
GROUP, CONSUMER = "headwater_events", "headwater"


@pytest.fixture
def destination():
    with fresh_database("hw_redis_dest") as url:
        yield url


@pytest.fixture
def client():
    connection = redis.Redis.from_url(URL)
    yield connection
    connection.close()


@pytest.fixture
def stream(client):
    """A new stream key (with one entry, trimmed away, so that it exists), deleted afterwards."""
    key = f"hw:events:{uuid.uuid4().hex[:10]}"
    client.xadd(key, {"data": "{}"})
    client.xtrim(key, maxlen=0)
    yield key
    client.delete(key)


def add(client, key: str, *entries: dict | bytes | str) -> list[str]:
    """XADD each entry: a dict of fields, or a body for the `data` field (a dict as JSON); their IDs."""
    ids = []
    for entry in entries:
        fields = {"data": entry} if isinstance(entry, (bytes, str)) else entry
        ids.append(client.xadd(key, fields).decode())
    return ids


def body(value: dict) -> str:
    return json.dumps(value)


def registry(acknowledging: bool = True) -> ConnectorRegistry:
    from connectors.redis_streams import redis_streams
    from connectors.redis_streams.reader import acknowledge

    connectors = ConnectorRegistry()
    metadata = {"acknowledge": acknowledge} if acknowledging else {}
    connectors.registrar(Plugin("builtin", "headwater", "test"))("redis_streams", redis_streams, **metadata)
    return connectors


def write_project(root, key: str, settings: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          events:
            connector: redis_streams
            settings:
              url: {URL}
              streams: ["{key}"]
              max_wait_seconds: 0.2
        """) + textwrap.indent(textwrap.dedent(settings), "      "))


def load(root, destination: str, acknowledging: bool = True):
    connectors = registry(acknowledging)
    project = load_project(root / "headwater.yaml", connectors)
    source = project.source("events")
    return load_source(project, source, connectors.get(source.connector), PostgresAddress.from_url(destination))


def run(root, destination: str, acknowledging: bool = True):
    result = load(root, destination, acknowledging)
    assert result.ok, result.error
    return result


def loaded(result, table: str) -> int:
    return {table_load.table: table_load.rows for table_load in result.tables}.get(table, 0)


def table_of(key: str) -> str:
    return key.replace(":", "_")


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def published(entry: str) -> datetime:
    return datetime.fromtimestamp(int(entry.split("-")[0]) / 1000, timezone.utc)


def test_entries_land_as_rows_once_and_a_load_without_news_loads_nothing(tmp_path, client, stream, destination):
    table = table_of(stream)
    ids = add(client, stream,
              body({"id": 1, "name": "ann", "amount": 1.5, "tags": ["a"], "at": "2024-05-01T10:00:00Z"}),
              body({"id": 2, "name": "bob", "amount": 2, "tags": {"k": 1}, "at": "2024-05-01T12:00:00+01:00"}),
              {"id": "3", "name": "cy"},  # fields, not a JSON body: loaded as text
              {"note": "only a note"})
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 4

    columns = "id, name, amount, tags, at, note, _stream, _sequence, _published_at"
    raw = rows(destination, f"select {columns} from raw_events.{table} order by _published_at, _sequence")
    assert raw == [
        ("1", "ann", 1.5, ["a"], datetime(2024, 5, 1, 10, tzinfo=timezone.utc), None, stream, ids[0],
         published(ids[0])),
        ("2", "bob", 2.0, {"k": 1}, datetime(2024, 5, 1, 11, tzinfo=timezone.utc), None, stream, ids[1],
         published(ids[1])),
        ("3", "cy", None, None, None, None, stream, ids[2], published(ids[2])),
        (None, None, None, None, None, "only a note", stream, ids[3], published(ids[3])),
    ]
    types = dict(rows(destination, "select column_name, data_type from information_schema.columns"
                                   f" where table_schema = 'raw_events' and table_name = '{table}'"))
    # id: text, as the fields of the third entry are (the JSON bodies hold numbers).
    assert (types["id"], types["tags"], types["_sequence"]) == ("character varying", "jsonb", "character varying")
    assert types["at"] == types["_published_at"] == "timestamp with time zone"

    assert loaded(run(tmp_path, destination), table) == 0
    assert rows(destination, f"select {columns} from raw_events.{table} order by _published_at, _sequence") == raw


def test_redelivered_entries_land_once_and_committed_ones_are_acknowledged(tmp_path, client, stream, destination):
    table = table_of(stream)
    ids = add(client, stream, *(body({"n": n}) for n in range(1, 6)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 5
    assert client.xpending(stream, GROUP)["pending"] == 5  # loaded, but nothing acknowledged
    ids += add(client, stream, *(body({"n": n}) for n in range(6, 9)))

    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 3
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, ids[n - 1]) for n in range(1, 9)]
    assert client.xpending(stream, GROUP)["pending"] == 3

    add(client, stream, body({"n": 9}))
    assert loaded(run(tmp_path, destination), table) == 1
    assert rows(destination, f"select count(*), count(distinct n), max(n) from raw_events.{table}") == [(9, 9, 9)]
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_entries_a_dead_load_read_load_next_in_order(tmp_path, client, stream, destination):
    table = table_of(stream)
    ids = add(client, stream, *(body({"n": n}) for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3
    ids += add(client, stream, *(body({"n": n}) for n in range(4, 7)))
    # A load that read 4 and 5 and died before its rows committed: they stay pending for the consumer.
    reply = client.xreadgroup(GROUP, CONSUMER, {stream: ">"}, count=2)
    assert [entry.decode() for entry, _ in reply[0][1]] == ids[3:5]
    ids += add(client, stream, body({"n": 7}))

    assert loaded(run(tmp_path, destination), table) == 4
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, ids[n - 1]) for n in range(1, 8)]
    assert client.xpending(stream, GROUP)["pending"] == 0


def test_a_group_set_back_gives_loaded_entries_again_which_are_skipped(tmp_path, client, stream, destination):
    table = table_of(stream)
    ids = add(client, stream, *(body({"n": n}) for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3
    client.xgroup_setid(stream, GROUP, "0")  # by hand: the group delivers 1-3 again
    ids += add(client, stream, *(body({"n": n}) for n in range(4, 6)))

    assert loaded(run(tmp_path, destination, acknowledging=False), table) == 2
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, ids[n - 1]) for n in range(1, 6)]
    assert [entry["message_id"].decode() for entry in client.xpending_range(stream, GROUP, "-", "+", 10)] == ids[3:]


def test_a_full_refresh_loads_what_the_stream_holds_again(tmp_path, client, stream, destination):
    from headwater.load.reload import Reload

    table = table_of(stream)
    add(client, stream, *(body({"n": n}) for n in range(1, 4)))
    write_project(tmp_path, stream)
    assert loaded(run(tmp_path, destination), table) == 3
    assert client.xpending(stream, GROUP)["pending"] == 0
    connectors = registry()
    project = load_project(tmp_path / "headwater.yaml", connectors)
    reload = Reload(full_refresh={"events": frozenset()})
    result = load_source(project, project.source("events"), connectors.get("redis_streams"),
                         PostgresAddress.from_url(destination), reload=reload)
    assert result.ok, result.error
    assert rows(destination, f"select n from raw_events.{table} order by n") == [(1,), (2,), (3,)]


def test_an_entry_that_is_not_a_json_object_is_quarantined_and_the_others_load(tmp_path, client, stream,
                                                                                destination):
    table = table_of(stream)
    ids = add(client, stream, body({"id": 1}), "not json {", "42", b"\xff", body({"id": 2}))
    write_project(tmp_path, stream)
    result = run(tmp_path, destination)
    assert {table_load.table: (table_load.rows, table_load.quarantined) for table_load in result.tables}[table] == (
        2, 3)
    assert rows(destination, f"select id, _sequence from raw_events.{table} order by id") == [
        (1, ids[0]), (2, ids[4])]
    quarantined = rows(destination, f"select location, rule, reason, record from raw_events.{table}__quarantine")
    by_location = {location: (rule, reason, json.loads(record)) for location, rule, reason, record in quarantined}
    assert sorted(by_location) == sorted(f"{stream}:{entry}" for entry in ids[1:4])
    assert [by_location[f"{stream}:{entry}"][0] for entry in ids[1:4]] == ["json", "json", "encoding"]
    assert "not JSON" in by_location[f"{stream}:{ids[1]}"][1]
    assert "a number, not an object" in by_location[f"{stream}:{ids[2]}"][1]
    assert [by_location[f"{stream}:{entry}"][2]["_raw_line"] for entry in ids[1:4]] == ["not json {", "42", "\\xff"]
    assert client.xpending(stream, GROUP)["pending"] == 0  # quarantined entries are loaded too: acknowledged


def test_a_batch_closes_at_max_messages_and_the_next_loads_take_the_rest_in_order(tmp_path, client, stream,
                                                                                  destination):
    table = table_of(stream)
    ids = add(client, stream, *(body({"n": n}) for n in range(25)))
    write_project(tmp_path, stream, "max_messages: 10\n")
    counts = [loaded(run(tmp_path, destination), table) for _ in range(4)]
    assert counts == [10, 10, 5, 0]
    assert rows(destination, f"select n, _sequence from raw_events.{table} order by n") == [
        (n, ids[n]) for n in range(25)]


def test_check_reads_nothing_and_leaves_the_stream_as_it_was(tmp_path, client, stream):
    from headwater.load.checks import check_source

    add(client, stream, body({"n": 1}))
    write_project(tmp_path, stream)
    project = load_project(tmp_path / "headwater.yaml", registry())
    result = check_source(project, project.source("events"), registry().get("redis_streams"))
    assert result.ok and result.detail == f"no rows yet in {table_of(stream)}"
    assert client.xinfo_groups(stream) == []


def test_a_missing_stream_and_an_unreachable_server_say_so(tmp_path, client, destination):
    key = f"hw:missing:{uuid.uuid4().hex[:10]}"
    write_project(tmp_path, key)
    result = load(tmp_path, destination)
    assert not result.ok and f"Redis stream {key!r} does not exist on {URL}" in result.error
    assert client.exists(key) == 0  # not created by the load

    (tmp_path / "headwater.yaml").write_text((tmp_path / "headwater.yaml").read_text().replace(
        URL, "redis://:secret@127.0.0.1:1/0"))
    result = load(tmp_path, destination)
    assert not result.ok and "cannot connect to Redis at redis://:***@127.0.0.1:1/0" in result.error
    assert "secret" not in result.error
