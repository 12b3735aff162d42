"""sql_database over TLS: a source URL's TLS options reach the driver that reads it, connectorx or pyarrow's.

connectorx is given them in its own words; where it cannot give the protection they ask for (a host name
check, a revocation list, a client certificate for MariaDB), the tables are read with pyarrow instead and
the log says why. The real loads read a PostgreSQL and a MariaDB that refuse plain connections and land in a
destination on the same TLS PostgreSQL, which demands a client certificate.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
import yaml

from connectors.sql_database.backends import choose_backend, connectorx_url
from headwater.load.pipeline import SourceLoad, load_source
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.load.helpers import registry
from tests.tls_servers import PASSWORD, start_tls_mariadb, start_tls_postgres, tls_workspace, verify_full

LOADER_LOGGER = "connectors.sql_database"
ROOT = "/etc/ssl/db/root.crt"


# -- connectorx's URL ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    # verify-ca: connectorx checks the chain when given the root certificate with sslmode=require.
    (f"postgresql+psycopg2://loader:pw@db/shop?sslmode=verify-ca&sslrootcert={ROOT}",
     "postgresql://loader:pw@db/shop?sslmode=require&sslrootcert=%2Fetc%2Fssl%2Fdb%2Froot.crt"),
    ("postgresql://loader:pw@db/shop?sslmode=require&sslcert=/c/loader.crt&sslkey=/c/loader.key",
     "postgresql://loader:pw@db/shop?sslcert=%2Fc%2Floader.crt&sslkey=%2Fc%2Floader.key&sslmode=require"),
    ("postgresql://loader:pw@db/shop?sslmode=disable", "postgresql://loader:pw@db/shop?sslmode=disable"),
    # PyMySQL checks the certificate and the host name when given a CA; connectorx is told to do the same.
    (f"mysql+pymysql://root:pw@db:3306/shop?ssl_ca={ROOT}&charset=utf8mb4",
     "mysql://root:pw@db:3306/shop?ssl-ca=%2Fetc%2Fssl%2Fdb%2Froot.crt&ssl-mode=VERIFY_IDENTITY"),
    (f"mysql+pymysql://root:pw@db/shop?ssl_ca={ROOT}&ssl_check_hostname=false",
     "mysql://root:pw@db/shop?ssl-ca=%2Fetc%2Fssl%2Fdb%2Froot.crt&ssl-mode=VERIFY_CA"),
    ("mysql+pymysql://root:pw@db/shop?ssl_check_hostname=false", "mysql://root:pw@db/shop?ssl-mode=REQUIRED"),
])
def test_connectorx_is_given_the_urls_tls_options_in_its_own_words(url, expected, monkeypatch):
    for variable in ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
        monkeypatch.delenv(variable, raising=False)

    assert connectorx_url(sa.make_url(url)) == expected
    assert choose_backend(url, None) == "connectorx"


@pytest.mark.parametrize(("url", "reason"), [
    (f"postgresql://loader:{PASSWORD}@db/shop?sslmode=verify-full&sslrootcert={ROOT}",
     "connectorx cannot check the server's host name (sslmode=verify-full)"),
    (f"postgresql://loader:{PASSWORD}@db/shop?sslmode=require&sslcrl=/etc/ssl/db/revoked.crl",
     "connectorx does not support sslcrl"),
    (f"postgresql://loader:{PASSWORD}@db/shop?sslmode=verify-ca",
     "sslmode=verify-ca names no sslrootcert and there is no ~/.postgresql/root.crt"),
    (f"postgresql://loader:{PASSWORD}@db/shop?sslmode=require&sslcert=/c/loader.crt",
     "connectorx takes a client certificate only with both sslcert and sslkey"),
    (f"postgresql://loader:{PASSWORD}@db/shop?sslmode=allow", "connectorx does not support sslmode=allow"),
    (f"mysql+pymysql://root:{PASSWORD}@db/shop?ssl_ca={ROOT}&ssl_cert=/c/c.pem&ssl_key=/c/k.pem",
     "connectorx does not support ssl_cert, ssl_key"),
])
def test_tls_options_connectorx_cannot_honour_send_the_source_to_pyarrow_and_the_log_says_why(
    url, reason, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt
    caplog.set_level(logging.INFO, logger=LOADER_LOGGER)

    assert choose_backend(url, None) == "pyarrow"
    assert reason in caplog.text
    assert PASSWORD not in caplog.text


def test_libpqs_variables_count_as_they_do_for_libpq(monkeypatch, caplog):
    """libpq takes PGSSLMODE when the URL sets no sslmode; connectorx would not, so it is not used."""
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    caplog.set_level(logging.INFO, logger=LOADER_LOGGER)

    assert choose_backend("postgresql://loader@db/shop", None) == "pyarrow"
    assert "sslmode=verify-full" in caplog.text


# -- real servers ----------------------------------------------------------------------------------------------

CUSTOMERS = [(1, "ada@example.com", "GB"), (2, "grace@example.com", "US"), (3, "edsger@example.com", "NL")]


@pytest.fixture(scope="module")
def tls():
    """One TLS-only PostgreSQL (a source database `app` with customers) and one TLS-only MariaDB (`shop`)."""
    with tls_workspace() as (root, certificates):
        postgres = start_tls_postgres(root / "postgres", certificates)
        mariadb = None
        try:
            postgres.create_database("app")
            values = ", ".join(f"({i}, '{email}', '{country}')" for i, email, country in CUSTOMERS)
            postgres.admin("create table customers (id int primary key, email text, country char(2))",
                           f"insert into customers values {values}", "alter table customers owner to tls_loader",
                           database="app")
            mariadb = start_tls_mariadb(root / "mariadb", certificates)
            mariadb.admin("CREATE DATABASE shop", "CREATE TABLE shop.customers "
                          "(id int primary key, email varchar(50), country char(2))",
                          f"INSERT INTO shop.customers VALUES {values}")
            yield postgres, mariadb, certificates
        finally:
            if mariadb is not None:
                mariadb.stop()
            postgres.stop()


@pytest.fixture
def destination(tls, tmp_path, monkeypatch):
    """A fresh database on the TLS PostgreSQL, reached with verify-full and a client certificate.

    HOME holds the wrong root certificate where libpq looks by default: only options that reach the
    driver get a connection through.
    """
    postgres, _, certificates = tls
    monkeypatch.setenv("HOME", str(certificates.home_with_wrong_defaults(tmp_path / "home")))
    name = f"warehouse_{os.urandom(4).hex()}"
    postgres.create_database(name)
    yield postgres.url(name, verify_full(certificates))
    postgres.admin(f'drop database if exists "{name}" with (force)')


def load(tmp_path: Path, destination_url: str, source_url: str, settings: dict | None = None) -> SourceLoad:
    """Load table customers of ``source_url`` (a secret, as ${SOURCE_DB_URL}) as source `src`."""
    os.environ["SOURCE_DB_URL"] = source_url
    config = tmp_path / "project" / "headwater.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(yaml.safe_dump({"sources": {"src": {
        "connector": "sql_database",
        "settings": {"credentials": "${SOURCE_DB_URL}", **(settings or {})},
        "tables": {"customers": {"primary_key": "id"}},
    }}}))
    try:
        project = load_project(config, registry())
        source = project.source("src")
        return load_source(project, source, registry().get("sql_database"), PostgresAddress.from_url(destination_url))
    finally:
        del os.environ["SOURCE_DB_URL"]


def landed(destination_url: str) -> list[tuple]:
    with psycopg.connect(destination_url) as connection:
        return connection.execute("select id, email, country from raw_src.customers order by id").fetchall()


@pytest.mark.parametrize(("sslmode", "read_by"), [
    ("verify-ca", "3 rows read with connectorx"),
    ("verify-full", "reading postgresql with pyarrow: connectorx cannot check the server's host name"),
])
def test_a_postgres_source_is_read_over_verified_tls(tls, destination, tmp_path, caplog, sslmode, read_by):
    postgres, _, certificates = tls
    caplog.set_level(logging.INFO, logger=LOADER_LOGGER)

    loaded = load(tmp_path, destination, postgres.url("app", verify_full(certificates, sslmode=sslmode)))

    assert loaded.ok, loaded.error
    assert loaded.rows == 3
    assert read_by in caplog.text
    assert landed(destination) == CUSTOMERS
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(("settings", "read_by"), [
    ({}, "3 rows read with connectorx"),
    ({"backend": "pyarrow"}, None),
])
def test_a_mariadb_source_is_read_over_verified_tls(tls, destination, tmp_path, caplog, settings, read_by):
    _, mariadb, certificates = tls
    caplog.set_level(logging.INFO, logger=LOADER_LOGGER)

    loaded = load(tmp_path, destination, mariadb.url("shop", f"ssl_ca={certificates.root_cert}"), settings)

    assert loaded.ok, loaded.error
    assert loaded.rows == 3
    if read_by:
        assert read_by in caplog.text
    else:  # an explicit backend is honoured
        assert "read with connectorx" not in caplog.text
    assert landed(destination) == CUSTOMERS


def test_a_mariadb_source_with_the_wrong_root_certificate_fails_to_load_and_says_why(tls, destination, tmp_path):
    _, mariadb, certificates = tls

    loaded = load(tmp_path, destination, mariadb.url("shop", f"ssl_ca={certificates.other_root_cert}"),
                  {"backend": "pyarrow"})

    assert not loaded.ok
    assert "CERTIFICATE_VERIFY_FAILED" in loaded.error
    assert PASSWORD not in loaded.error
