"""`headwater quarantine purge` and `quarantine: {retention: ...}`: resolved rows go, open ones only when asked for."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from headwater.cli import main
from headwater.load.pipeline import SourceLoad, load_source
from headwater.load.replay import replay
from headwater.ops.summary import RunSummary, print_summary
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from headwater.quarantine.purge import Purged
from tests.commands.test_quarantine import drops  # noqa: F401 - a fixture, found by pytest through this module
from tests.conftest import query


def load(config, database_url: str) -> SourceLoad:
    project = load_project(config, connector_registry())
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    return result


@pytest.fixture
def resolved(drops, database_url):  # noqa: F811 - the fixture imported above
    """`drops.items` loaded with two rows over the limit and a line with a field too many, then, the limit raised,
    replayed: items.csv:3 and :6 replayed, :4 still quarantined. Returns the config file."""
    drops.write_text(drops.read_text().replace("max: 10", "max: 100"))
    config = drops
    project = load_project(config, connector_registry())
    [result] = replay(project, project.source("drops"), PostgresAddress.from_url(database_url))
    assert (result.replayed, result.still_quarantined) == (2, 1)
    return config


def rows(database_url: str, schema: str = "raw_drops") -> list[tuple]:
    return query(database_url, f"select location, status from {schema}.items__quarantine order by location, status")


def age(database_url: str, location: str, days: int) -> None:
    query(database_url, "update raw_drops.items__quarantine set replayed_at = replayed_at - make_interval(days => %s), "
                        "quarantined_at = quarantined_at - make_interval(days => %s) where location = %s "
                        "returning 1", days, days, location)


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_purge_deletes_resolved_rows_and_open_ones_only_when_confirmed(resolved, database_url, capsys, tmp_path):
    assert run(capsys, "quarantine", "purge", "drops", "--older-than", "30d")[:2] == (
        0, ["Nothing to delete in drops: no resolved row older than 30d."])

    # A newer version of key 2 is quarantined again: the replayed row of key 2 stays while it does.
    (tmp_path / "landing" / "more.csv").write_text("id,qty,note\n2,700,again\n")
    load(resolved, database_url)
    assert run(capsys, "quarantine", "purge", "drops")[:2] == (
        0, ["drops.items: 1 deleted (1 replayed or superseded, 0 open)"])
    assert rows(database_url) == [("items.csv:3", "replayed"), ("items.csv:4", "quarantined"),
                                  ("more.csv:2", "quarantined")]
    assert ("items.csv:6", "replayed") not in rows(database_url, "raw_drops_staging")  # dlt's copy of it too

    # Open rows are never loaded: deleting them needs --yes (or an answer at a terminal).
    code, out, err = run(capsys, "quarantine", "purge", "drops.items", "--open")
    assert (code, out) == (1, [])
    assert err == ("error: 2 open rows would be deleted (drops.items 2); nothing was deleted. Add --yes to delete "
                   "them (headwater quarantine purge drops.items --open --yes)\n")
    assert len(rows(database_url)) == 3
    assert run(capsys, "quarantine", "purge", "drops.items", "--open", "--yes", "--older-than", "30d")[:2] == (
        0, ["Nothing to delete in drops.items: no open row older than 30d."])
    age(database_url, "items.csv:4", days=40)
    assert run(capsys, "quarantine", "purge", "drops.items", "--open", "--yes", "--older-than", "30d")[:2] == (
        0, ["drops.items: 1 deleted (0 replayed or superseded, 1 open)"])

    assert run(capsys, "quarantine", "purge", "drops.items", "--open", "--resolved", "--yes")[:2] == (
        0, ["drops.items: 2 deleted (1 replayed or superseded, 1 open)"])
    assert rows(database_url) == [] and rows(database_url, "raw_drops_staging") == []
    code, _, err = run(capsys, "quarantine", "purge", "drops.orders")
    assert (code, err) == (2, "error: no table 'orders' in drops; tables: drops.items\n")


def test_each_run_deletes_resolved_rows_older_than_the_retention_and_says_so(resolved, database_url):
    resolved.write_text(resolved.read_text() + "quarantine: {retention: 30d}\n")
    age(database_url, "items.csv:3", days=40)  # replayed 40 days ago; items.csv:6 today; items.csv:4 still open

    first = load(resolved, database_url)
    assert (first.purged, first.retention) == ([Purged("items", resolved=1)], "30d")
    assert rows(database_url) == [("items.csv:4", "quarantined"), ("items.csv:6", "replayed")]
    output = StringIO()
    print_summary(RunSummary(loads=[first]), Console(file=output, width=200))
    assert ("Purged 1 row of raw_drops.items__quarantine replayed or superseded more than 30d ago "
            "(quarantine.retention)") in output.getvalue()

    age(database_url, "items.csv:4", days=40)  # open rows stay, however old
    second = load(resolved, database_url)
    assert second.purged == [] and rows(database_url) == [("items.csv:4", "quarantined"), ("items.csv:6", "replayed")]
    output = StringIO()
    print_summary(RunSummary(loads=[second]), Console(file=output, width=200))
    assert "Purged" not in output.getvalue()
