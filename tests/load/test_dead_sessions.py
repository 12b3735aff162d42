"""A killed run's statements outlive it on the server; whoever takes the source's lock ends them first."""

from __future__ import annotations

import threading
import time

import psycopg

from headwater.load.source_lock import end_dead_sessions, load_application_name
from headwater.postgres.address import PostgresAddress


def test_the_sessions_of_a_dead_load_are_ended_and_no_other(database_url):
    address = PostgresAddress.from_url(database_url)
    assert load_application_name("shop db") == "headwater-load-shop_db"  # no character a URL would encode
    dead = psycopg.connect(database_url, autocommit=True, application_name=load_application_name("shop db"))
    other = psycopg.connect(database_url, autocommit=True, application_name=load_application_name("crm"))
    ended = {}

    def statement_of_the_dead_run():
        try:
            dead.execute("select pg_sleep(60)")
        except psycopg.OperationalError as error:
            ended["error"] = error

    running = threading.Thread(target=statement_of_the_dead_run)
    running.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert end_dead_sessions(address, "shop db") == 1
    running.join(10)
    assert time.monotonic() - started < 5 and "error" in ended  # ended, not waited for
    assert other.execute("select 1").fetchone() == (1,)  # another source's session is left alone
    assert end_dead_sessions(address, "shop db") == 0
    other.close()
