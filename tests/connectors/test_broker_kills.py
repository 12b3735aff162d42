"""SIGKILL at random points of broker loads, 20 times per broker, each followed by a clean load: every message is
in raw exactly once (count, keys, a checksum of the values) and every bad one in the quarantine exactly once."""

from __future__ import annotations

import json
import random

import pytest

from tests.connectors import test_nats_jetstream as nats_tests
from tests.connectors import test_redis_streams as redis_tests
from tests.connectors.kill_loop import kill_repeatedly

KILLS = 20


class Published:
    """What the test sent: the good messages' numbers and how many bad ones."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.bad = 0

    def bodies(self, rng: random.Random) -> list[bytes]:
        bodies = []
        for _ in range(rng.randint(100, 900)):
            if rng.random() < 0.01:
                bodies.append(b"not json " + str(rng.random()).encode())
                self.bad += 1
            else:
                number = len(self.numbers) + 1
                self.numbers.append(number)
                bodies.append(json.dumps({"n": number, "payload": "x" * rng.randint(0, 200)}).encode())
        return bodies


MAX_MESSAGES = 400


def until_nothing_new(run) -> None:
    """Clean loads until one takes less than a full batch: nothing is published meanwhile, so the stream is
    then read to its end."""
    for _ in range(20):
        if sum(table.read for table in run().tables) < MAX_MESSAGES:
            return
    raise AssertionError("20 clean loads and still messages to load")


def raw_matches(rows, url: str, table: str, published: Published, number: int) -> None:
    count, keys, numbers, total = rows(
        url, f"select count(*), count(distinct (_stream, _sequence)), count(distinct n), coalesce(sum(n::bigint), 0)"
             f" from raw_events.{table}")[0]
    expected = len(published.numbers)
    assert (count, keys, numbers, total) == (expected, expected, expected, expected * (expected + 1) // 2), (
        f"round {number}")
    quarantined = rows(url, f"select count(*) from raw_events.{table}__quarantine")[0][0] if published.bad else 0
    assert quarantined == published.bad, f"round {number}"


def test_redis_streams_killed_at_random_points_loses_and_duplicates_nothing(tmp_path, redis_client, redis_stream,
                                                                            database_url):
    rng, published = random.Random(21), Published()
    redis_tests.write_project(tmp_path, redis_stream, f"max_messages: {MAX_MESSAGES}\n")
    table = redis_tests.table_of(redis_stream)

    def load(refresh: bool) -> None:
        redis_tests.run(tmp_path, database_url)

    def change(number: int) -> None:
        redis_tests.add(redis_client, redis_stream, *published.bodies(rng))

    killed = kill_repeatedly(load, change, lambda number: raw_matches(redis_tests.rows, database_url, table,
                                                                      published, number),
                             KILLS, seed=21, workdir=tmp_path,
                             clean=lambda: until_nothing_new(lambda: redis_tests.run(tmp_path, database_url)))
    assert killed == KILLS


def test_nats_jetstream_killed_at_random_points_loses_and_duplicates_nothing(tmp_path, nats_stream, database_url):
    rng, published = random.Random(22), Published()
    nats_tests.write_project(tmp_path, nats_stream, f"max_messages: {MAX_MESSAGES}\nack_wait_seconds: 2\n")
    table = nats_stream.lower()

    def load(refresh: bool) -> None:
        nats_tests.run(tmp_path, database_url)

    def change(number: int) -> None:
        nats_tests.publish(nats_stream, *published.bodies(rng))

    killed = kill_repeatedly(load, change, lambda number: raw_matches(nats_tests.rows, database_url, table,
                                                                      published, number),
                             KILLS, seed=22, workdir=tmp_path,
                             clean=lambda: until_nothing_new(lambda: nats_tests.run(tmp_path, database_url)))
    assert killed == KILLS


@pytest.fixture
def redis_client():
    yield from redis_tests.client.__wrapped__()


@pytest.fixture
def redis_stream(redis_client):
    yield from redis_tests.stream.__wrapped__(redis_client)


@pytest.fixture
def nats_stream():
    yield from nats_tests.stream.__wrapped__()
