"""Fixtures of the loading tests: a second fresh database that plays the source system."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_database
from tests.load.helpers import SOURCE_URL_VARIABLE


@pytest.fixture
def two_streams(monkeypatch):
    """Rows passed through from the source from windows of 10,000 rows, in 2 streams from 20,000."""
    from connectors.sql_database.parallel_ranges import MIN_ROWS_VARIABLE as STREAM_ROWS_VARIABLE
    from connectors.sql_database.parallel_ranges import STREAMS_VARIABLE
    from connectors.sql_database.pass_through import SWITCH_VARIABLE
    from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE

    monkeypatch.setenv(SWITCH_VARIABLE, "on")
    monkeypatch.setenv(STREAMS_VARIABLE, "2")
    monkeypatch.setenv(STREAM_ROWS_VARIABLE, "10000")
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "10000")


@pytest.fixture
def source_url(monkeypatch):
    """A fresh database on the test server that Headwater reads from (as ${HW_TEST_SOURCE_URL}), dropped afterwards."""
    with fresh_database("hw_src") as url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, url)
        yield url
