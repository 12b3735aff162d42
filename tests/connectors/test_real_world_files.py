"""Files written the way R, Excel, open-data portals and database dumps write them land cell for cell.

Each file of tests/connectors/world_files.py goes through a real load (filesystem connector, dlt, Postgres);
every cell of the destination is compared with the value the file holds, every line is accounted
for (rows loaded + rows quarantined + lines skipped), and only lines a strict CSV reader cannot
take are quarantined.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from pathlib import Path

import pytest

from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query
from tests.connectors.world_files import WORLD, WorldFile


def write_world_project(root: Path, files: list[WorldFile], extra: str = "") -> Path:
    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    specs = {}
    for world_file in files:
        (landing / world_file.name).write_bytes(world_file.content)
        specs[table_of(world_file)] = {"glob": world_file.name, "format": "csv", **world_file.settings}
    (root / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          world:
            connector: filesystem
            settings:
              bucket_url: "{landing}"
              files: {json.dumps(specs)}
        {extra}"""))
    return root / "headwater.yaml"


def table_of(world_file: WorldFile) -> str:
    return world_file.name.split(".")[0]


def load_world(path: Path, database_url: str, source: str = "world", reload=None):
    project = load_project(path, connector_registry())
    result = load_source(project, project.source(source), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url), reload)
    assert result.ok, result.error
    return result


@pytest.fixture(scope="module")
def world_load(tmp_path_factory):
    """Every world file, each its own table of one source, loaded once for the module."""
    from tests.conftest import fresh_database

    files = [make() for make in WORLD]
    with fresh_database() as url:
        path = write_world_project(tmp_path_factory.mktemp("world"), files)
        yield files, load_world(path, url), url


@pytest.mark.parametrize("make", WORLD, ids=[make.__name__ for make in WORLD])
def test_every_cell_lands_as_the_file_holds_it(world_load, make):
    files, result, url = world_load
    world_file = next(f for f in files if f.name == make().name)
    table = table_of(world_file)
    columns = ", ".join(f'"{name}"' for name in world_file.columns)
    rows = query(url, f"select {columns} from raw_world.{table} order by _line")
    assert len(rows) == len(world_file.rows)
    for line, (got, expected) in enumerate(zip(rows, world_file.rows, strict=True)):
        assert got == expected, f"{world_file.name} row {line + 1}: {got!r} != {expected!r}"


@pytest.mark.parametrize("make", WORLD, ids=[make.__name__ for make in WORLD])
def test_every_line_is_accounted_for(world_load, make):
    files, result, url = world_load
    world_file = next(f for f in files if f.name == make().name)
    [load] = [t for t in result.tables if t.table == table_of(world_file)]
    assert (load.read, load.loaded, load.quarantined) == (
        len(world_file.rows) + len(world_file.quarantined), len(world_file.rows), len(world_file.quarantined))
    [report] = load.files
    assert report["status"] == "loaded"
    assert (report["rows"], report["rejected"], report["skipped"]) == (
        len(world_file.rows), len(world_file.quarantined), world_file.skipped)
    assert report["lines"] == world_file.lines
    quarantined = query(url, f"select location, rule from raw_world.{table_of(world_file)}__quarantine "
                             "order by location") if world_file.quarantined else []
    assert quarantined == [(f"{world_file.name}:{line}", rule) for line, rule in world_file.quarantined]


def test_only_lines_a_strict_csv_reader_rejects_are_quarantined():
    """The quarantined lines of the ragged file fail Python's csv module (strict) or do not fit the header."""
    from tests.connectors.world_files import ragged_and_stray_quotes

    world_file = ragged_and_stray_quotes()
    lines = world_file.content.decode().split("\n")
    width = len(next(csv.reader([lines[0]])))
    for number, line in enumerate(lines[1:], start=2):
        try:
            fields = next(csv.reader(io.StringIO(line), strict=True), [])
            clean = len(fields) <= width or not any(fields[width:])
        except csv.Error:
            clean = False
        assert clean == (number not in {line for line, _ in world_file.quarantined}), (number, line)
