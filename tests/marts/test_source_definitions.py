"""`headwater dbt sources`: dbt source definitions follow the raw schemas without losing hand-written content."""

from __future__ import annotations

import difflib
import shutil

import dlt
import psycopg
import pytest
from ruamel.yaml import YAML

from headwater import cli
from headwater.example.session import running_example
from headwater.load.pipeline import load_source
from headwater.marts.source_definitions import MISSING_MARK, load_document
from headwater.marts.transform import run_dbt
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import REPO

CONFIG = """\
sources:
  plant:
    connector: sensors
    settings: {extra: false}
    tables:
      readings: {primary_key: reading_id, cursor: taken_at}
  depot:
    connector: sensors
    settings: {extra: false}
"""


@dlt.resource(name="readings")
def readings(extra: bool = False):
    """Sensor readings with a nested list of tags (a dlt child table); `extra` adds a column."""
    for index in range(3):
        day = f"2024-0{2 if extra else 1}-0{index + 1}"  # later rows when extra, past the incremental cursor
        row = {"reading_id": index, "taken_at": f"{day}T00:00:00+00:00", "value": index * 1.5}
        row["tags"] = [{"tag": "a"}, {"tag": "b"}]
        if extra:
            row["note"] = f"note {index}"
        yield row


@pytest.fixture
def plant(tmp_path, database_url, monkeypatch):
    """A project with the shop's dbt project and a `plant` source (loaded) and `depot` source (never loaded)."""
    registry = ConnectorRegistry()
    registry.registrar(Plugin("sensors", "headwater-sensors", "1.0"))("sensors", readings)
    shutil.copytree(REPO / "transform", tmp_path / "transform")
    (tmp_path / "headwater.yaml").write_text(CONFIG)
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setattr("headwater.plugins.manager.connector_registry", lambda: registry)

    def load(extra: bool = False) -> None:
        (tmp_path / "headwater.yaml").write_text(CONFIG.replace("extra: false", f"extra: {str(extra).lower()}", 1))
        project = load_project(tmp_path / "headwater.yaml", registry)
        address = PostgresAddress.from_url(database_url)
        result = load_source(project, project.source("plant"), registry.get("sensors"), address)
        assert result.ok, result.error

    load()
    return tmp_path, load


def sources_yml(root):
    return root / "transform" / "models" / "staging" / "__sources.yml"


def parsed(root) -> dict:
    return {source["name"]: source for source in YAML(typ="safe").load(sources_yml(root).read_text())["sources"]}


def columns(table: dict) -> dict:
    return {column["name"]: column for column in table["columns"]}


def table(source: dict, name: str) -> dict:
    return next(entry for entry in source["tables"] if entry["name"] == name)


def test_a_fresh_sources_file_gets_every_table_and_column_with_types(plant, capsys):
    root, _ = plant
    sources_yml(root).unlink()

    assert cli.main(["dbt", "sources"]) == 0

    out = capsys.readouterr().out
    assert "depot" in out and "not loaded yet" in out
    source = parsed(root)["plant"]
    assert list(parsed(root)) == ["plant"]
    assert source["schema"] == "raw_plant" and "sensors connector" in source["description"]
    assert [entry["name"] for entry in source["tables"]] == ["readings", "readings__tags"]
    readings_table = table(source, "readings")
    assert readings_table["config"] == {"loaded_at_field": "taken_at"}
    cols = columns(readings_table)
    assert cols["reading_id"]["data_type"] == "bigint"
    assert cols["reading_id"]["data_tests"] == ["unique", "not_null"]
    assert cols["taken_at"]["data_type"] == "timestamp with time zone"
    assert cols["value"]["data_type"] == "double precision"
    assert "data_tests" not in cols["value"]
    assert {"_dlt_parent_id", "tag"} <= set(columns(table(source, "readings__tags")))


def test_an_existing_file_keeps_hand_written_content_gains_new_columns_and_marks_dropped_ones(plant, database_url):
    root, load = plant
    original_shop = sources_yml(root).read_text()
    assert cli.main(["dbt", "sources", "plant"]) == 0
    generated = sources_yml(root).read_text()
    # The shop's hand-written sources are untouched: the plant source is only appended.
    assert generated.startswith(original_shop.rstrip("\n"))

    # Describe and comment the generated entries by hand, as a user would.
    edited = generated.replace(
        "          - name: value\n",
        "          # Calibrated in the plant, not raw.\n"
        "          - name: value\n            description: The sensor's reading, in kPa.\n",
    )
    sources_yml(root).write_text(edited)
    load(extra=True)  # a new column `note` arrives from the source
    with psycopg.connect(database_url, autocommit=True) as connection:  # and one disappears
        connection.execute("alter table raw_plant.readings drop column value")

    assert cli.main(["dbt", "sources", "plant"]) == 0

    updated = sources_yml(root).read_text()
    removed = [line for line in difflib.ndiff(edited.splitlines(), updated.splitlines()) if line.startswith("- ")]
    assert removed == []  # every existing line is still there, byte for byte
    assert "          # Calibrated in the plant, not raw.\n" in updated
    cols = columns(table(parsed(root)["plant"], "readings"))
    assert cols["note"]["data_type"] == "character varying"
    assert cols["value"]["description"] == "The sensor's reading, in kPa."
    assert cols["value"]["config"] == {"meta": {MISSING_MARK: True}}

    # Running again changes nothing; the result is a dbt project that parses.
    assert cli.main(["dbt", "sources"]) == 0
    assert sources_yml(root).read_text() == updated
    result = run_dbt(
        ["parse"],
        project_dir=root / "transform",
        state_dir=root / ".headwater",
        address=PostgresAddress.from_url(database_url),
    )
    assert result.success, result.error


def test_dry_run_prints_the_diff_and_writes_nothing(plant, capsys):
    root, _ = plant
    before = sources_yml(root).read_text()

    assert cli.main(["dbt", "sources", "--dry-run"]) == 0

    assert sources_yml(root).read_text() == before
    out = capsys.readouterr().out
    assert "+++ b/__sources.yml" in out
    assert "+  - name: plant" in out
    assert "Dry run: nothing was written." in out


def test_an_unknown_source_is_an_error(plant, capsys):
    assert cli.main(["dbt", "sources", "nope"]) == 2
    assert "no source nope" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "sources:\n", "version: 2\n"])
def test_an_empty_file_or_one_without_sources_is_a_starting_point(text):
    assert load_document(text)["sources"] == []


def test_the_bundled_example_sources_file_is_exactly_what_the_command_writes(shop_project, database_url, monkeypatch,
                                                                          capsys):
    """A fresh clone that runs the example and then `headwater dbt sources` must find the tracked file unchanged."""
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    registry = connector_registry()
    project = load_project(shop_project / "headwater.yaml", registry)
    address = PostgresAddress.from_url(database_url)
    with running_example(project, advance_days=2):  # landing files of every format: CSV, JSONL, Parquet
        for source in project.sources:
            result = load_source(project, source, registry.get(source.connector), address)
            assert result.ok, result.error

    assert cli.main(["dbt", "sources"]) == 0

    assert "__sources.yml is up to date." in capsys.readouterr().out
    tracked = REPO / "transform" / "models" / "staging" / "__sources.yml"
    assert sources_yml(shop_project).read_bytes() == tracked.read_bytes()
