"""`headwater ps --api-url` prints the local server's API URL alone, or says how to start it."""

from __future__ import annotations

import pytest

from headwater.cli import main


def test_api_url_when_the_local_server_is_not_running(shop_project, capsys):
    assert main(["ps", "--api-url"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "The local Prefect server is not running; start it with "
                                                "`headwater up`.\n")


@pytest.mark.parametrize("url, problem", [
    ("mysql://root@127.0.0.1/shop", "HEADWATER_DATABASE_URL must be a postgresql:// URL, got scheme 'mysql'"),
    ("postgresql://loader:s3cret@127.0.0.1:5432x/shop",
     "HEADWATER_DATABASE_URL has a port that is not a number in '127.0.0.1:5432x'; write it as "
     "postgresql://user@host:5432/database"),
])
@pytest.mark.parametrize("command", ["up", "down", "ps"])
def test_a_malformed_database_url_stops_the_stack_commands_with_one_line(shop_project, capsys, monkeypatch,
                                                                          command, url, problem):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", url)
    assert main([command]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {problem}\n")  # no traceback, no password
    assert not (shop_project / ".headwater" / "stack.json").exists()  # nothing was started
