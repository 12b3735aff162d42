"""Tests of the built-in connectors against real local services."""
