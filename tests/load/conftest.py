"""Fixtures of the loading tests: a second fresh database that plays the source system."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_database
from tests.load.helpers import SOURCE_URL_VARIABLE


@pytest.fixture
def source_url(monkeypatch):
    """A fresh database on the test server that Headwater reads from (as ${HW_TEST_SOURCE_URL}), dropped afterwards."""
    with fresh_database("hw_src") as url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, url)
        yield url
