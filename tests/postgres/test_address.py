"""The destination URL's connection parameters (TLS above all) and how each tool is given them."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from dlt.destinations import postgres

from headwater.postgres.address import PostgresAddress
from tests.conftest import query

URL = ("postgresql://loader:p%40ss%2Fword@db.example.com:5433/warehouse"
       "?sslmode=verify-full&sslrootcert=/etc/headwater/root.crt&target_session_attrs=read-write&connect_timeout=7")


def test_the_urls_parameters_are_kept_in_order_and_rendered_back():
    address = PostgresAddress.from_url(URL)

    assert (address.host, address.port, address.user, address.password, address.database) == (
        "db.example.com", 5433, "loader", "p@ss/word", "warehouse")
    assert address.options == (("sslmode", "verify-full"), ("sslrootcert", "/etc/headwater/root.crt"),
                               ("target_session_attrs", "read-write"), ("connect_timeout", "7"))
    assert address.url == URL
    assert PostgresAddress.from_url(address.url) == address
    assert address.safe_url == URL.replace("p%40ss%2Fword", "***")


def test_an_address_built_by_its_five_fields_has_no_parameters():
    address = PostgresAddress("127.0.0.1", 5432, "postgres", "", "headwater")

    assert address.options == ()
    assert address.url == address.safe_url == "postgresql://postgres@127.0.0.1:5432/headwater"
    assert address.tool_env()["HEADWATER_PG_SSLMODE"] == "prefer"  # libpq's default, for Soda's required key


@pytest.mark.parametrize(("query", "message"), [
    ("sslmode=verify-ful", "sslmode='verify-ful' is not one of disable, allow, prefer, require, verify-ca"),
    ("ssl_mode=require", "unknown connection parameter 'ssl_mode'; the destination URL takes sslmode, sslrootcert"),
    ("sslmode=require&sslmode=disable", "connection parameter 'sslmode' is given twice"),
    ("sslrootcert=", "connection parameter 'sslrootcert' has no value"),
    ("connect_timeout=10s", "connect_timeout='10s' must be a whole number of seconds"),
    ("sslpassword=Key-Pa55", "sslpassword is not supported: dbt cannot pass a client key's passphrase"),
    ("sslrootcert=/etc/my%20certs/root.crt", "sslrootcert holds a space, which dlt cannot pass on"),
])
def test_a_parameter_that_not_every_tool_can_take_is_refused_by_name(query, message):
    with pytest.raises(ValueError) as refused:
        PostgresAddress.from_url(f"postgresql://loader:pw@db/warehouse?{query}")

    assert str(refused.value).startswith("HEADWATER_DATABASE_URL: ")
    assert message in str(refused.value)
    assert "Key-Pa55" not in str(refused.value)


def test_dlt_and_its_adbc_copy_receive_the_parameters_in_the_url_they_connect_with():
    address = PostgresAddress.from_url(URL)
    credentials = postgres(credentials=address.dlt_credentials()).configuration(None, accept_partial=True).credentials

    assert credentials.connect_timeout == 7
    # The URL dlt's psycopg2 connection and the ADBC driver of Headwater's COPY connect with.
    native = PostgresAddress.from_url(credentials.to_native_representation())
    assert dict(native.options) == dict(address.options)
    assert (native.host, native.port, native.user, native.password) == ("db.example.com", 5433, "loader", "p@ss/word")


def test_dbt_and_soda_read_every_parameter_from_the_environment_they_run_in(monkeypatch):
    monkeypatch.delenv("PGSSLCERT", raising=False)
    monkeypatch.setenv("PGSSLKEY", "/home/loader/.postgresql/loader.key")  # libpq's own default, kept
    env = PostgresAddress.from_url(URL + "&application_name=headwater-prod").tool_env()

    # Keys the profile and the data source name...
    assert {name: value for name, value in env.items() if name.startswith("HEADWATER_PG_SSL")} == {
        "HEADWATER_PG_SSLMODE": "verify-full",
        "HEADWATER_PG_SSLROOTCERT": "/etc/headwater/root.crt",
        "HEADWATER_PG_SSLCERT": "",
        "HEADWATER_PG_SSLKEY": "/home/loader/.postgresql/loader.key",
    }
    assert env["HEADWATER_PG_CONNECT_TIMEOUT"] == "7"
    assert env["HEADWATER_PG_APPLICATION_NAME"] == "headwater-prod"
    # ...and libpq's variables for every parameter, which its drivers read where no key sets one.
    assert {name: value for name, value in env.items() if name.startswith("PG")} == {
        "PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/etc/headwater/root.crt",
        "PGTARGETSESSIONATTRS": "read-write", "PGCONNECT_TIMEOUT": "7", "PGAPPNAME": "headwater-prod",
    }


def test_dbt_keeps_its_own_defaults_where_the_url_says_nothing(monkeypatch):
    for name in ("PGCONNECT_TIMEOUT", "PGAPPNAME"):
        monkeypatch.delenv(name, raising=False)
    env = PostgresAddress.from_url("postgresql://loader@db/warehouse").tool_env()

    assert (env["HEADWATER_PG_CONNECT_TIMEOUT"], env["HEADWATER_PG_APPLICATION_NAME"]) == ("10", "dbt")


def test_a_callers_settings_take_the_place_of_the_urls_but_not_its_connect_timeout():
    address = PostgresAddress.from_url(URL + "&application_name=headwater-prod")

    parameters = address.connection_parameters(application_name="headwater run 1f2e", connect_timeout=2,
                                               autocommit=True)

    assert parameters == {"sslmode": "verify-full", "sslrootcert": "/etc/headwater/root.crt",
                          "target_session_attrs": "read-write", "connect_timeout": 7,
                          "application_name": "headwater run 1f2e", "autocommit": True}


PASSWORD = "p@ss/w:rd+%="  # every character a URL must encode


def test_a_password_with_url_characters_survives_the_round_trip_and_connects(database_url):
    name = database_url.rsplit("/", 1)[1]
    address = PostgresAddress.from_url(database_url.replace("@", f":{quote(PASSWORD, safe='')}@", 1))

    assert address.password == PASSWORD
    assert PostgresAddress.from_url(address.url) == address
    with psycopg.connect(address.url) as connection:  # the test server trusts loopback: any password connects
        assert connection.execute("select current_database()").fetchone() == (name,)
    assert query(database_url, "select 1") == [(1,)]


def test_the_password_is_in_no_repr():
    address = PostgresAddress("db", 5432, "loader", PASSWORD, "shop")

    assert PASSWORD not in repr(address) and PASSWORD not in str(address)
    assert repr(address) == ("PostgresAddress(host='db', port=5432, user='loader', database='shop', options=(), "
                             "role=None)")
