"""`deletes:` in headwater.yaml: allowed where a key can go missing from the source, else rejected with file:line."""

from __future__ import annotations

import textwrap

import pytest

from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project

DATABASE = """\
sources:
  db:
    connector: sql_database
    settings: {credentials: "${DB_URL}"}
    tables:
"""


def load(tmp_path, monkeypatch, text: str):
    monkeypatch.setenv("DB_URL", "postgresql://localhost/app")
    path = tmp_path / "headwater.yaml"
    path.write_text(textwrap.dedent(text))
    return path, load_project(path, connector_registry())


def test_detect_and_flag_are_table_options_of_database_tables(tmp_path, monkeypatch):
    _, project = load(tmp_path, monkeypatch, DATABASE + """\
      customers: {primary_key: id, cursor: updated_at, deletes: detect}
      orders: {primary_key: [order_id, line], deletes: flag}
      prices: {primary_key: sku, write_disposition: scd2, deletes: detect}
      products: {primary_key: id}
""")
    assert [(table.name, table.deletes) for table in project.source("db").tables] == [
        ("customers", "detect"), ("orders", "flag"), ("prices", "detect"), ("products", None)]


@pytest.mark.parametrize(
    "table, fragments",
    [
        ("items: {primary_key: id, deletes: remove}",
         ["unknown mode 'remove'; allowed: detect", "flag (keep them, set _deleted_at)"]),
        ("items: {deletes: detect}",
         ["deletes needs a primary_key"]),
        ("items: {primary_key: id, write_disposition: append, deletes: detect}",
         ["deletes needs write_disposition merge or scd2, not append"]),
        ("items: {primary_key: id, write_disposition: replace, deletes: flag}",
         ["not replace (replace reloads the whole table each run"]),
        ("items: {primary_key: id, write_disposition: scd2, deletes: flag}",
         ["on scd2 a key gone from the source retires its current version", "use deletes: detect"]),
        ("items: {primary_key: code, deletes: detect, steps: [{trim: [code]}]}",
         ["a step changes primary key column 'code' (trim)", "every row would look deleted"]),
        ("items: {primary_key: code, deletes: detect, steps: [{trim: all}]}",
         ["`trim: all` changes the primary key's text too", "list the columns to trim instead"]),
    ],
    ids=["unknown-mode", "no-primary-key", "append", "replace", "flag-on-scd2", "step-changes-key", "trim-all"],
)
def test_a_deletes_option_that_cannot_work_is_reported_at_its_line(tmp_path, monkeypatch, table, fragments):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, monkeypatch, DATABASE + "      " + table + "\n")
    message = str(raised.value)
    assert "headwater.yaml:6: sources.db.tables.items.deletes: " in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "connector, settings",
    [
        ("filesystem", '{bucket_url: /data, files: {orders: "*.csv"}}'),
        ("rest_api", '{client: {base_url: "http://127.0.0.1:1"}, resources: [orders]}'),
    ],
)
def test_deletes_needs_a_connector_that_lists_its_keys(tmp_path, monkeypatch, connector, settings):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, monkeypatch, f"""\
            sources:
              landing:
                connector: {connector}
                settings: {settings}
                tables:
                  orders: {{primary_key: id, deletes: detect}}
            """)
    assert (f"headwater.yaml:6: sources.landing.tables.orders.deletes: connector {connector!r} cannot list the "
            "keys of its source tables") in str(raised.value)
