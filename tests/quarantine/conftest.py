"""Fixtures of the quarantine tests: the source database of the loading tests, for replays of database rows."""

from tests.load.conftest import source_url  # noqa: F401 - a fixture, found by pytest through this module

__all__ = ["source_url"]
