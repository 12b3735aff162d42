"""A run over TLS: a PostgreSQL source and the destination on a server that refuses plain connections.

The project is the one `headwater init` writes, plus a sql_database source. The server demands a client
certificate, and the run's HOME holds the wrong root certificate where libpq looks by default: dlt's load,
the ADBC COPY, dbt, Soda and Headwater's own connections all get through only if each of them is given the
URL's root certificate, client certificate and key. A wrong root certificate or sslmode=disable fails the
run at its start, with a message that names the destination and not its password.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from headwater.cli import main
from tests.tls_servers import PASSWORD, start_tls_postgres, tls_workspace, verify_full

pytestmark = pytest.mark.slow

SOURCE = "app"
DESTINATION = "warehouse"
APP_DB_SOURCE = """\
  app_db:
    connector: sql_database
    settings:
      credentials: ${APP_DB_URL}
    tables:
      customers: {primary_key: id}

"""
CUSTOMERS = [(1, "ada@example.com"), (2, "grace@example.com"), (3, "edsger@example.com")]


@pytest.fixture(scope="module")
def tls():
    """The TLS-only server with a source database (customers) and an empty destination database."""
    with tls_workspace() as (root, certificates):
        server = start_tls_postgres(root / "postgres", certificates)
        try:
            server.create_database(SOURCE)
            server.admin("create table customers (id int primary key, email text not null)",
                         "insert into customers values " + ", ".join(f"({i}, '{e}')" for i, e in CUSTOMERS),
                         "alter table customers owner to tls_loader", database=SOURCE)
            yield server, certificates
        finally:
            server.stop()


@pytest.fixture
def destination(tls):
    """A fresh destination database on the TLS server, dropped afterwards."""
    server, _ = tls
    name = f"{DESTINATION}_{os.urandom(4).hex()}"
    server.create_database(name)
    yield name
    server.admin(f'drop database if exists "{name}" with (force)')


def project_with_app_db(folder: Path) -> Path:
    assert main(["init", str(folder)]) == 0
    config = folder / "headwater.yaml"
    config.write_text(config.read_text().replace("\ntransform:\n", "\n" + APP_DB_SOURCE + "transform:\n", 1))
    return folder


def headwater_run(project: Path, database_url: str, source_url: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url, "APP_DB_URL": source_url, "HOME": str(home)}
    env.pop("HEADWATER_CONFIG", None)
    return subprocess.run([str(Path(sys.executable).parent / "headwater"), "run"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def test_a_run_loads_builds_and_verifies_over_verified_tls(tls, destination, tmp_path, prefect_api):
    server, certificates = tls
    project = project_with_app_db(tmp_path / "shop")
    database_url = server.url(destination, verify_full(certificates))

    run = headwater_run(project, database_url, server.url(SOURCE, verify_full(certificates)),
                        certificates.home_with_wrong_defaults(tmp_path / "home"))

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "Run succeeded" in run.stdout
    assert re.search(r"raw_app_db\.customers\s+│\s+3 / 3 / 0\s+│", run.stdout), run.stdout
    assert re.search(r"raw_landing\.orders\s+│\s+5 / 5 / 0\s+│.*│ passed 7/7 ", run.stdout), run.stdout
    assert PASSWORD not in output
    assert rows(database_url, "select id, email from raw_app_db.customers order by id") == CUSTOMERS
    assert rows(database_url, "select count(*) from staging.stg_landing__orders") == [(5,)]
    assert rows(database_url, "select resource_type, status from headwater_ops.dbt_nodes "
                              "where name = 'stg_landing__orders'") == [("model", "success")]
    assert rows(database_url, "select count(*) filter (where outcome = 'passed') from headwater_ops.check_results "
                              "where contract = 'raw_landing.orders'") == [(7,)]
    # Every one of those sessions was encrypted: the server refuses any other (hostnossl ... reject).
    assert rows(database_url, "select ssl from pg_stat_ssl where pid = pg_backend_pid()") == [(True,)]


@pytest.mark.parametrize(("query", "reason"), [
    ("wrong-root", "SSL error: certificate verify failed"),
    ("sslmode=disable", 'pg_hba.conf rejects connection for host "127.0.0.1", user "tls_loader", database '),
])
def test_a_run_that_cannot_reach_the_destination_says_which_and_why(tls, destination, tmp_path, prefect_api,
                                                                     query, reason):
    server, certificates = tls
    project = project_with_app_db(tmp_path / "shop")
    if query == "wrong-root":
        query = verify_full(certificates, certificates.other_root_cert)
    database_url = server.url(destination, query)

    run = headwater_run(project, database_url, server.url(SOURCE, verify_full(certificates)),
                        certificates.home_with_wrong_defaults(tmp_path / "home"))

    output = run.stdout + run.stderr
    assert run.returncode != 0
    shown = database_url.replace(PASSWORD, "***")
    assert f"cannot connect to the destination {shown}: " in output, output[-4000:]
    assert reason in output
    assert PASSWORD not in output
    # Nothing was loaded anywhere: the run stopped before its first source.
    verified = server.url(destination, verify_full(certificates))
    assert rows(verified, "select count(*) from information_schema.schemata where schema_name like 'raw_%'") == [(0,)]


def test_a_destination_url_with_a_parameter_not_every_tool_takes_stops_the_run_before_it_starts(tmp_path):
    project = project_with_app_db(tmp_path / "shop")
    url = f"postgresql://tls_loader:{PASSWORD}@127.0.0.1:1/warehouse?sslmode=verify-full&ssl_root_cert=/etc/root.crt"

    run = headwater_run(project, url, "sqlite:///unused.db", tmp_path)

    assert run.returncode == 2
    assert run.stderr.startswith("error: HEADWATER_DATABASE_URL: unknown connection parameter 'ssl_root_cert'; "
                                 "the destination URL takes sslmode, sslrootcert, "), run.stderr
    assert PASSWORD not in run.stdout + run.stderr
