"""Sources loaded side by side in one daily run: on threads, and on a real Dask cluster of worker processes.

The sources are three rest_api sources of one local API that counts the requests it is answering at once:
the first two requests wait for each other (a run loading one source at a time would never let them meet)
and no more than `run.max_parallel_sources` are ever in flight. Every row is compared with what the API
served; a Dask worker killed in the middle of a load leaves the next run exact.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
import yaml

from tests.conftest import query
from tests.connectors.rest_api_server import ApiServer, Received, Reply

pytestmark = pytest.mark.slow

SOURCES = ("api_a", "api_b", "api_c")
PAGE = 50


def rows_of(source: str, count: int) -> list[dict]:
    return [{"id": i, "source": source, "amount": round(i * 1.25, 2), "updated_at": f"2024-01-01T00:00:{i % 60:02d}"
             f".{i:06d}+00:00"} for i in range(1, count + 1)]


class MeetingApi:
    """Pages of each source's rows; counts requests in flight and makes the first two wait for each other."""

    def __init__(self, api: ApiServer, rows: dict[str, list[dict]], hold: float = 0.2):
        self.rows, self.hold = rows, hold
        self.in_flight = self.most_in_flight = self.arrived = 0
        self.met = threading.Event()
        self.lock = threading.Lock()
        self.on_page: list = []  # callables(source, page number) run before a page is answered
        api.route("GET", "/{source}/items", self.page)

    def page(self, request: Received, source: str) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.arrived += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.in_flight >= 2:
                self.met.set()
            first_two = self.arrived <= 2
        try:
            if first_two and not self.met.wait(timeout=20):
                return Reply(503, {"error": "the first two loads never overlapped"})
            time.sleep(self.hold)
            since = request.param("updated_since") or ""
            pending = [row for row in self.rows[source] if row["updated_at"] > since]
            start = int(request.param("cursor") or 0)
            for hook in self.on_page:
                hook(source, start // PAGE)
            chunk = pending[start:start + PAGE]
            more = start + PAGE < len(pending)
            return Reply(200, {"data": chunk, "next_cursor": str(start + PAGE) if more else None})
        finally:
            with self.lock:
                self.in_flight -= 1


def write_project(root, api_url: str, run: dict) -> None:
    sources = {
        name: {"connector": "rest_api", "settings": {
            "client": {"base_url": f"{api_url}/{name}",
                       "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"}},
            "resources": [{"name": "items", "endpoint": {
                "path": "items", "data_selector": "data",
                "params": {"updated_since": {"type": "incremental", "cursor_path": "updated_at",
                                             "initial_value": "1970-01-01T00:00:00+00:00"}}}}]},
            "tables": {"items": {"primary_key": "id", "write_disposition": "append"}}}
        for name in SOURCES
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(yaml.safe_dump({"project": "parallel", "sources": sources, "run": run},
                                                        sort_keys=False))


def assert_landed_exactly(database_url: str, rows: dict[str, list[dict]]) -> None:
    for source, served in rows.items():
        landed = query(database_url, f"select id, source, amount, updated_at from raw_{source}.items order by id")
        assert [(row[0], row[1], float(row[2])) for row in landed] == \
            [(row["id"], row["source"], row["amount"]) for row in served], source
        assert [row[3].isoformat() for row in landed] == [row["updated_at"] for row in served], source


def loaded_per_source(database_url: str) -> dict[str, int]:
    return dict(query(database_url, "select source, sum(rows_loaded)::int from headwater_ops.table_loads "
                                    "group by source"))


@pytest.fixture
def project(tmp_path, monkeypatch, database_url, prefect_api):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "project" / "headwater.yaml"))
    return tmp_path / "project"


def test_sources_load_side_by_side_within_the_bound_and_land_exactly(project, database_url):
    rows = {"api_a": rows_of("api_a", 230), "api_b": rows_of("api_b", 120), "api_c": rows_of("api_c", 75)}
    with ApiServer() as api:
        meeting = MeetingApi(api, rows)
        write_project(project, api.url, {"max_parallel_sources": 2})
        from flows.daily import daily

        summary = daily()

    assert summary.ok, summary.failures
    assert [load.source for load in summary.loads] == list(SOURCES)  # headwater.yaml's order, whoever ended first
    assert {load.source: load.rows for load in summary.loads} == {name: len(served) for name, served in rows.items()}
    assert meeting.met.is_set() and meeting.most_in_flight == 2
    assert_landed_exactly(database_url, rows)
    assert loaded_per_source(database_url) == {name: len(served) for name, served in rows.items()}


def test_one_source_at_a_time_when_the_bound_is_one(project, database_url):
    rows = {name: rows_of(name, 10) for name in SOURCES}
    with ApiServer() as api:
        meeting = MeetingApi(api, rows, hold=0.0)
        meeting.met.set()  # nothing to wait for: the loads must not meet
        write_project(project, api.url, {"max_parallel_sources": 1})
        from flows.daily import daily

        summary = daily()

    assert summary.ok, summary.failures
    assert meeting.most_in_flight == 1
    assert_landed_exactly(database_url, rows)


@pytest.fixture
def dask_cluster(request):
    """A local cluster of two worker processes; ``allowed_failures`` (indirect parameter) is how many workers may
    die running a task before the scheduler gives it up (Dask's default: 3)."""
    import dask

    distributed = pytest.importorskip("distributed")
    allowed = getattr(request, "param", 3)
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                     silence_logs=logging.WARNING) as cluster, distributed.Client(cluster) as client:
        yield cluster, client


def test_sources_load_on_dask_workers_exactly_as_on_threads(project, database_url, dask_cluster):
    from distributed import get_task_stream

    cluster, client = dask_cluster
    rows = {"api_a": rows_of("api_a", 180), "api_b": rows_of("api_b", 90), "api_c": rows_of("api_c", 60)}
    with ApiServer() as api, get_task_stream(client) as stream:
        meeting = MeetingApi(api, rows)
        write_project(project, api.url, {"task_runner": "dask", "dask_address": cluster.scheduler_address,
                                         "max_parallel_sources": 2})
        from flows.daily import daily

        summary = daily()

    assert summary.ok, summary.failures
    assert [load.source for load in summary.loads] == list(SOURCES)
    assert meeting.met.is_set() and meeting.most_in_flight == 2
    assert_landed_exactly(database_url, rows)
    assert loaded_per_source(database_url) == {name: len(served) for name, served in rows.items()}
    ran_on = {task["worker"] for task in stream.data if task["key"].startswith("load_source_task")}
    loads_on_workers = [task for task in stream.data if task["key"].startswith("load_source_task")]
    assert len(loads_on_workers) == 3 and ran_on <= set(cluster.scheduler_info["workers"])


@pytest.mark.parametrize("dask_cluster", [3, 0], indirect=True, ids=["dask-runs-it-again", "dask-gives-up"])
def test_a_dask_worker_killed_mid_load_leaves_the_next_run_exact(project, database_url, dask_cluster):
    cluster, client = dask_cluster
    allowed_failures = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    rows = {"api_a": rows_of("api_a", 600), "api_b": rows_of("api_b", 40), "api_c": rows_of("api_c", 40)}
    killed: list[int] = []

    def kill_the_loading_workers(source: str, page: int) -> None:
        """Halfway through api_a, SIGKILL every worker running a load (api_a's, and api_c's if it still runs)."""
        if source != "api_a" or page < 6 or killed:
            return
        busy = [address for address, keys in client.processing().items()
                if any(str(key).startswith("load_source_task") for key in keys)]
        if not busy:  # the scheduler has not heard of the task yet: the next page tries again
            return
        for pid in client.run(os.getpid, workers=busy).values():
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    with ApiServer() as api:
        meeting = MeetingApi(api, rows, hold=0.05)
        meeting.on_page.append(kill_the_loading_workers)
        write_project(project, api.url, {"task_runner": "dask", "dask_address": cluster.scheduler_address,
                                         "max_parallel_sources": 2})
        from flows.daily import daily

        first = daily(return_state=True)
        assert killed, "the load of api_a was never caught on a worker"
        if allowed_failures:  # Dask runs the load again on a new worker: this very run ends exact
            assert first.is_completed(), first.result(raise_on_failure=False)
            assert_landed_exactly(database_url, rows)
        else:  # Dask gives the load up: the run fails saying so, and nothing landed twice
            failure = str(first.result(raise_on_failure=False))
            assert "load api_a: the load did not finish where it ran: its Dask workers died (KilledWorker" in failure
        if query(database_url, "select to_regclass('raw_api_a.items')") != [(None,)]:
            assert query(database_url, "select count(*) = count(distinct id) from raw_api_a.items") == [(True,)]
        second = daily()

    assert second.ok, second.failures
    assert_landed_exactly(database_url, rows)
    counts = query(database_url, "select count(*), count(distinct id) from raw_api_a.items")
    assert counts == [(600, 600)]



def test_database_and_file_sources_copy_ahead_side_by_side_exactly(tmp_path, monkeypatch, database_url, prefect_api):
    """Large enough for copy ahead and pass-through, loaded in three threads: every row once, run after run."""
    from tests.conftest import fresh_database
    from tests.load.helpers import SOURCE_URL_VARIABLE, execute, fingerprint

    monkeypatch.setenv("HEADWATER_COPY_AHEAD_MIN_ROWS", "5000")
    landing = tmp_path / "landing"
    (landing / "readings").mkdir(parents=True)
    (landing / "readings" / "day1.csv").write_text(
        "id,station,value\n" + "".join(f"{i},s{i % 13},{'NA' if i % 97 == 0 else i / 8}\n" for i in range(1, 40_001)))
    with fresh_database("hw_src") as source_url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, source_url)
        execute(source_url, "create table events (id int primary key, kind text, amount numeric(12, 2));"
                            "insert into events select i, 'kind-' || (i % 7), i * 0.5 from generate_series(1, 60000) i;"
                            "create table orders (id int primary key, note text, at timestamptz);"
                            "insert into orders select i, repeat('x', i % 40), '2024-01-01'::timestamptz + i * "
                            "interval '1 minute' from generate_series(1, 50000) i")
        database = {"connector": "sql_database", "settings": {"credentials": f"${{{SOURCE_URL_VARIABLE}}}",
                                                               "chunk_size": 10_000}}
        config = {"project": "parallel", "sources": {
            "db_a": {**database, "tables": {"events": {"cursor": "id", "write_disposition": "append"}}},
            "db_b": {**database, "tables": {"orders": {"cursor": "id", "write_disposition": "append"}}},
            "files": {"connector": "filesystem", "settings": {"bucket_url": str(landing),
                                                             "files": {"readings": "readings/*.csv"}}},
        }, "run": {"max_parallel_sources": 3}}
        (tmp_path / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
        monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
        from flows.daily import daily

        first = daily()
        execute(source_url, "insert into events select i, 'late', i from generate_series(60001, 61000) i;"
                            "insert into orders select i, 'late', now() from generate_series(50001, 50500) i")
        (landing / "readings" / "day2.csv").write_text("id,station,value\n40001,s1,2.5\n40002,NA,NA\n")
        second = daily()

        assert first.ok and second.ok, (first.failures, second.failures)
        assert {load.source: load.rows for load in first.loads} == {"db_a": 60_000, "db_b": 50_000, "files": 40_000}
        assert {load.source: load.rows for load in second.loads} == {"db_a": 1000, "db_b": 500, "files": 2}
        assert fingerprint(database_url, "raw_db_a.events", "id, kind, amount", "id") == \
            fingerprint(source_url, "events", "id, kind, amount", "id")
        assert fingerprint(database_url, "raw_db_b.orders", "id, note, at", "id") == \
            fingerprint(source_url, "orders", "id, note, at", "id")
    readings = query(database_url, "select count(*), count(distinct id), count(value), count(station) "
                                   "from raw_files.readings")
    assert readings == [(40_002, 40_002, 40_002 - 40_000 // 97 - 1, 40_001)]
