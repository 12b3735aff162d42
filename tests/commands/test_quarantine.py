"""`headwater quarantine list` and `replay` on a loaded project."""

from __future__ import annotations

import textwrap

from headwater.cli import main
from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query


def test_list_summarises_per_table_and_replay_reports_counts(tmp_path, database_url, monkeypatch, capsys):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "items.csv").write_text("id,qty\n1,5\n2,50\n3,7,extra\n4,6\n5,60\n")
    config = tmp_path / "headwater.yaml"
    config.write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings: {{bucket_url: "{landing}", files: {{items: "*.csv"}}}}
            tables:
              items:
                primary_key: id
                rules: [{{range: {{qty: {{max: 10}}}}}}]
        """))
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line, as on a wide terminal
    project = load_project(config, connector_registry())
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    assert [(t.read, t.loaded, t.quarantined) for t in result.tables] == [(5, 2, 3)]

    assert main(["quarantine", "list"]) == 0
    listing = capsys.readouterr().out
    assert "drops.items" in listing
    assert "range 2, columns 1" in listing
    assert "items.csv:6" in listing and "items.csv:4" in listing

    # The limit is raised: the two range rows replay, the unreadable line stays.
    config.write_text(config.read_text().replace("max: 10", "max: 100"))
    assert main(["quarantine", "replay", "drops.items"]) == 0
    assert "drops.items: 2 loaded, 1 still quarantined (columns 1)" in capsys.readouterr().out
    assert main(["quarantine", "replay", "drops"]) == 0
    assert "drops.items: 0 loaded, 1 still quarantined" in capsys.readouterr().out
    assert query(database_url, "select id, qty from raw_drops.items order by id") == [(1, 5), (2, 50), (4, 6), (5, 60)]

    assert main(["quarantine", "list", "drops"]) == 0
    listing = capsys.readouterr().out
    assert "columns 1" in listing and "range" not in listing

    assert main(["quarantine", "replay", "nope"]) == 2
    assert "no source 'nope'" in capsys.readouterr().err
