"""Fixtures of the loading tests: a second fresh database that plays the source system."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import TEST_SERVER_URL
from tests.load.helpers import SOURCE_URL_VARIABLE


@pytest.fixture
def source_url(monkeypatch):
    """A fresh database on the test server that Headwater reads from (as ${HW_TEST_SOURCE_URL}), dropped afterwards."""
    name = f"hw_src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{TEST_SERVER_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv(SOURCE_URL_VARIABLE, f"{TEST_SERVER_URL}/{name}")
    yield f"{TEST_SERVER_URL}/{name}"
    with psycopg.connect(f"{TEST_SERVER_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
