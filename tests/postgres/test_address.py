"""PostgresAddress: one URL, whatever its password holds, and a password no repr shows."""

from __future__ import annotations

from urllib.parse import quote

import psycopg

from headwater.postgres.address import PostgresAddress
from tests.conftest import query

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
    assert repr(address) == "PostgresAddress(host='db', port=5432, user='loader', database='shop')"
