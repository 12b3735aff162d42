"""Shared helpers of the loading tests: a Postgres source database Headwater reads with sql_database, an API
source of nested rows, and connections Postgres drops while a load copies."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import dlt
import psycopg

from headwater.load.pipeline import SourceLoad, load_source
from headwater.load.reload import Reload
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.postgres.loader import StreamingParquetCopyJob
from headwater.project.config import ProjectConfig, load_project


def execute(url: str, sql: str, *params) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql, params or None)


# The source database's URL is a secret setting of sql_database, so the config references it.
SOURCE_URL_VARIABLE = "HW_TEST_SOURCE_URL"


def write_project(root: Path, sources: dict[str, str], chunk_size: int = 1000) -> Path:
    """headwater.yaml with one sql_database source per entry: name -> YAML of its `tables:` block.

    The source database is ${HW_TEST_SOURCE_URL}; set it in the environment.
    """
    root.mkdir(parents=True, exist_ok=True)
    blocks = []
    for name, tables in sources.items():
        blocks.append(f"  {name}:\n    connector: sql_database\n"
                      f"    settings: {{credentials: '${{{SOURCE_URL_VARIABLE}}}', chunk_size: {chunk_size}}}\n"
                      f"    tables:\n{textwrap.indent(textwrap.dedent(tables).strip(), '      ')}\n")
    path = root / "headwater.yaml"
    path.write_text("sources:\n" + "".join(blocks))
    return path


def registry() -> ConnectorRegistry:
    """Only the built-in sql_database connector: these tests do not depend on the other connectors importing."""
    from connectors.sql_database import sql_database
    from connectors.sql_database.keys import list_keys

    connectors = ConnectorRegistry()
    connectors.registrar(Plugin("builtin", "headwater", "test"))("sql_database", sql_database, list_keys=list_keys)
    return connectors


def read(path: Path) -> ProjectConfig:
    return load_project(path, registry())


def load(path: Path, destination_url: str, source: str, reload: Reload | None = None) -> SourceLoad:
    project = read(path)
    config = project.source(source)
    result = load_source(project, config, registry().get(config.connector),
                         PostgresAddress.from_url(destination_url), reload)
    assert result.ok, result.error
    return result


def load_losing_a_passed_commit(path: Path, database_url: str, monkeypatch, stream: int = 0) -> SourceLoad:
    """Load source ``src`` of ``path`` with the server ending the session of pass-through stream ``stream`` just
    before the copy job commits the rows passed through (as a restart or an idle-session timeout would)."""
    from headwater.postgres.copy_ahead import PassedThrough

    commit = PassedThrough.commit

    def commit_after_the_server_ends_the_session(self):
        execute(database_url, "select pg_terminate_backend(%s)", self.connections[stream].info.backend_pid)
        commit(self)

    monkeypatch.setattr(PassedThrough, "commit", commit_after_the_server_ends_the_session)
    project = read(path)
    config = project.source("src")
    return load_source(project, config, registry().get(config.connector), PostgresAddress.from_url(database_url))


def fingerprint(url: str, relation: str, columns: str, key: str) -> tuple[int, int, str]:
    """(rows, distinct keys, md5 of the rows in key order): equal on both sides means equal data."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(f"select {columns} from {relation} order by {key}").fetchall()
        distinct = connection.execute(f"select count(distinct ({key})) from {relation}").fetchone()[0]
    return len(rows), distinct, hashlib.md5(repr(rows).encode()).hexdigest()


def drop_connections(monkeypatch, database_url: str, table: str, times: int | None = None,
                     one_load: bool = False) -> list:
    """Postgres drops the connection of each copy job of ``table`` as soon as it connects: the first ``times``
    jobs, or all of them; with ``one_load``, only the jobs of the first load dropped (that load can never
    load). Returns the backends dropped; appending None to the list stops the dropping."""
    dropped: list = []
    loads: list[str] = []
    connect = StreamingParquetCopyJob._connect

    def connect_and_drop(self):
        connection = connect(self)
        load_id = Path(self._file_path).parent.parent.name  # <load id>/started_jobs/<job file>
        if (self.load_table_name == table and None not in dropped and (times is None or len(dropped) < times)
                and (not one_load or not loads or load_id == loads[0])):
            with connection.cursor() as cursor:
                cursor.execute("select pg_backend_pid()")
                [(pid,)] = cursor.fetchall()
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
            dropped.append(pid)
            loads.append(load_id)
        return connection

    monkeypatch.setattr(StreamingParquetCopyJob, "_connect", connect_and_drop)
    return dropped


@dlt.resource(name="feed")
def feed_rows():
    """Rows of an API as dicts, with a nested list; text holding a NUL character, which Postgres refuses."""
    yield [{"id": 1, "name": "one", "tags": [{"tag": "a"}]},
           {"id": 2, "name": "t\x00wo", "tags": [{"tag": "b"}, {"tag": "c"}]},
           {"id": 3, "name": "three", "tags": [{"tag": "d"}]}]


def feed_project(root: Path) -> tuple[ProjectConfig, object]:
    """(project, connector) of source `api` (connector `feed`: feed_rows, nested table feed__tags)."""
    connectors = ConnectorRegistry()
    connectors.registrar(Plugin("tests", "tests", "0"))("feed", feed_rows)
    config = root / "headwater.yaml"
    config.write_text("sources:\n  api:\n    connector: feed\n")
    return load_project(config, connectors), connectors.get("feed")


def load_feed(root: Path, destination_url: str) -> SourceLoad:
    """Load source `api` into raw_api (see feed_project)."""
    project, connector = feed_project(root)
    return load_source(project, project.source("api"), connector, PostgresAddress.from_url(destination_url))
