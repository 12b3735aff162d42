"""`headwater ps --api-url` prints the local server's API URL alone, or says how to start it."""

from __future__ import annotations

from headwater.cli import main


def test_api_url_when_the_local_server_is_not_running(shop_project, capsys):
    assert main(["ps", "--api-url"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "The local Prefect server is not running; start it with "
                                                "`headwater up`.\n")
