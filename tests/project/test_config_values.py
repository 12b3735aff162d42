"""Values of the wrong kind in headwater.yaml: each an error at its file:line and key naming what is expected.

Booleans written in quotes, keys written twice, a number where a column name belongs: none of them may
run a source the config meant to switch off, keep half of a duplicated source, or end in a traceback.
"""

from __future__ import annotations

import pytest

from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project

# A valid source body, indented as under `sources:\n  name:`.
FILES = '    connector: filesystem\n    settings: {bucket_url: /data, files: {orders: "orders/*.csv"}}\n'


@pytest.fixture(autouse=True)
def database_reference(monkeypatch):
    monkeypatch.setenv("DB_URL", "sqlite:///shop.db")


def problems_of(tmp_path, body: str) -> tuple[str, list[str]]:
    """(path, the problem lines) of loading ``body`` as headwater.yaml, which must fail."""
    path = tmp_path / "headwater.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as raised:
        load_project(path, connector_registry())
    message = str(raised.value)
    assert message.startswith("Invalid project config (")
    return str(path), [line.strip() for line in message.splitlines()[1:]]


@pytest.mark.parametrize(
    "body, expected",
    [
        ('sources:\n  files:\n    enabled: "false"\n' + FILES,
         ":3: sources.files.enabled: 'false' in quotes is text, not a boolean; write false without quotes"),
        ("sources:\n  files:\n" + FILES + "    enabled: 'True'\n",
         ":5: sources.files.enabled: 'True' in quotes is text, not a boolean; write true without quotes"),
        ("sources:\n  files:\n" + FILES + 'transform:\n  enabled: "no"\n',
         ":6: transform.enabled: 'no' in quotes is text, not a boolean; write false without quotes"),
        ("sources:\n  files:\n" + FILES + 'quality: {enabled: "false"}\n',
         ":5: quality.enabled: 'false' in quotes is text, not a boolean; write false without quotes"),
        ("sources:\n  files:\n" + FILES + 'catalog:\n  site_after_run: "true"\n',
         ":6: catalog.site_after_run: 'true' in quotes is text, not a boolean; write true without quotes"),
        ("""\
sources:
  files:
    connector: filesystem
    settings:
      bucket_url: /data
      files: {orders: "orders/*.csv"}
      csv:
        header: "false"
""", ":8: sources.files.settings.csv.header: 'false' in quotes is text, not a boolean; write false without quotes"),
        ("""\
sources:
  api:
    connector: rest_api
    settings:
      client:
        base_url: "http://127.0.0.1:9/"
        paginator:
          type: page_number
          stop_after_empty_page: "true"
      resources: [orders]
""", ":9: sources.api.settings.client.paginator.stop_after_empty_page: 'true' in quotes is text, not a boolean; "
     "write true without quotes"),
        ("sources:\n  files:\n" + FILES + "    enabled: 0\n",
         ":5: sources.files.enabled: expected true or false, got int 0"),
    ],
    ids=["source-enabled", "capitalised", "transform-enabled", "quality-enabled", "catalog", "connector-setting",
         "rest-api-setting", "number"],
)
def test_a_boolean_in_quotes_is_an_error_that_says_to_drop_the_quotes(tmp_path, body, expected):
    path, problems = problems_of(tmp_path, body)
    assert problems == [f"{path}{expected}"]


def test_unquoted_booleans_load_and_enabled_false_switches_the_source_off(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text("sources:\n  files:\n    enabled: false\n" + FILES + "  more:\n    enabled: yes\n" + FILES +
                    "transform: {enabled: false}\ncatalog: {site_after_run: true}\n")
    project = load_project(path, connector_registry())
    assert [(source.name, source.enabled) for source in project.sources] == [("files", False), ("more", True)]
    assert project.transform_dir is None
    assert project.catalog.site_after_run is True


# Keys written twice ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "body, expected",
    [
        ("sources:\n  files:\n    connector: filesystem\n  db:\n    connector: sql_database\n"
         "  files:\n    connector: rest_api\n",
         ":6:3: not valid YAML: the key 'files' (first at line 2) appears twice in one mapping"),
        ('sources:\n  files: {connector: filesystem}\n  "files": {connector: rest_api}\n',
         ":3:3: not valid YAML: the key 'files' (first at line 2) appears twice in one mapping"),
        ("sources: {files: {connector: filesystem}, files: {connector: rest_api}}\n",
         ":1:43: not valid YAML: the key 'files' (first at line 1) appears twice in one mapping"),
        ("sources:\n  db:\n    connector: sql_database\n    tables:\n      customers: {primary_key: id}\n"
         "      customers: {primary_key: customer_id}\n",
         ":6:7: not valid YAML: the key 'customers' (first at line 5) appears twice in one mapping"),
    ],
    ids=["source", "quoted-and-plain", "flow-mapping", "table"],
)
def test_a_source_or_table_written_twice_names_both_lines(tmp_path, body, expected):
    path, problems = problems_of(tmp_path, body)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}{expected}"), problems


def test_a_table_listed_twice_is_an_error(tmp_path):
    path, problems = problems_of(tmp_path, "sources:\n  files:\n" + FILES + "    tables: [orders, refunds, orders]\n")
    assert problems == [f"{path}:5: sources.files.tables.2: table 'orders' is listed twice; keep one"]


# Known keys with values of the wrong kind ------------------------------------------------------------------------

def table_options(options: str) -> str:
    return f"sources:\n  db:\n    connector: sql_database\n    settings: {{credentials: '${{DB_URL}}'}}\n" \
           f"    tables:\n      customers: {options}\n"


@pytest.mark.parametrize(
    "body, expected",
    [
        (table_options("{primary_key: 5}"),
         [":6: sources.db.tables.customers.primary_key: expected a column name or a list of them, e.g. id or "
          "[order_id, line], got int 5"]),
        (table_options("{primary_key: {id: 1}}"),
         [":6: sources.db.tables.customers.primary_key: expected a column name or a list of them, e.g. id or "
          "[order_id, line], got a mapping {'id': 1}"]),
        (table_options("{primary_key: [id, 5]}"),
         [":6: sources.db.tables.customers.primary_key.1: expected a column name (text), got int 5; write it in "
          "quotes"]),
        (table_options("{primary_key: [], write_disposition: merge}"),
         [":6: sources.db.tables.customers: write_disposition merge needs a primary_key",
          ":6: sources.db.tables.customers.primary_key: expected a column name or a list of them, got an empty list"]),
        (table_options("{primary_key: 5, deletes: detect}"),
         [":6: sources.db.tables.customers.primary_key: expected a column name or a list of them, e.g. id or "
          "[order_id, line], got int 5"]),
        (table_options("{primary_key: id, cursor: [updated_at, id]}"),
         [":6: sources.db.tables.customers.cursor: expected a column name (text), got a list ['updated_at', 'id']"]),
        (table_options("{primary_key: id, cursor: updated_at, steps: [{rename: {x: y}}], deduplicate_by: 3}"),
         [":6: sources.db.tables.customers.deduplicate_by: expected a column name (text), got int 3; write it in "
          "quotes"]),
        (table_options("{primary_key: id, deleted_flag: true}"),
         [":6: sources.db.tables.customers.deleted_flag: expected a column name (text), got boolean True"]),
        (table_options("{write_disposition: 5}"),
         [":6: sources.db.tables.customers.write_disposition: unknown write disposition int 5; allowed: append, "
          "merge, replace, scd2"]),
        (table_options("[customer_id]"),
         [":6: sources.db.tables.customers: options must be a mapping with keys cursor, deduplicate_by, "
          "deleted_flag, deletes, freshness, pii, primary_key, rules, steps, write_disposition; got a list "
          "['customer_id']"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n"
         "    tables: 5\n",
         [":5: sources.db.tables: must be a list of table names or a mapping of table name -> options, got int 5"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n"
         "    tables: [customers, {orders: {}}]\n",
         [":5: sources.db.tables.1: expected a table name (text), got a mapping {'orders': {}}"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n"
         "    tables:\n      2024: {primary_key: id}\n",
         [":6: sources.db.tables.2024: a table name is text, got int 2024; write it in quotes"]),
        ("sources:\n  db:\n    connector: [sql_database]\n",
         [":3: sources.db.connector: expected a connector name (text), got a list ['sql_database']; installed: "
          "filesystem, nats_jetstream, postgres_cdc, redis_streams, rest_api, sql_database"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n"
         "    naming: [snake_case]\n",
         [":5: sources.db.naming: unknown naming ['snake_case']; allowed: snake_case"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: false\n",
         [":4: sources.db.settings: must be a mapping of setting name -> value",
          ":4: sources.db.settings: connector 'sql_database' needs secret setting 'credentials'"]),
        ("example: [shop]\nsources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n",
         [":1: example: unknown example ['shop']; allowed: shop"]),
        ("project: {name: shop}\nsources:\n  db:\n    connector: sql_database\n"
         "    settings: {credentials: '${DB_URL}'}\n",
         [":1: project: expected the project's name (text), got a mapping {'name': 'shop'}"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\ntransform: false\n",
         [":5: transform: must be a mapping, e.g. {project_dir: transform, enabled: false}; got boolean False"]),
        ("sources:\n  db:\n    connector: sql_database\n    settings: {credentials: '${DB_URL}'}\n"
         "quality: {contracts_dir: 5}\n",
         [":5: quality.contracts_dir: expected a folder path (text), got int 5; write it in quotes"]),
    ],
    ids=["key-number", "key-mapping", "key-list-with-number", "key-empty", "key-number-with-deletes",
         "cursor-list", "deduplicate-by-number", "deleted-flag-boolean", "write-disposition-number", "options-list",
         "tables-number", "table-name-mapping", "table-name-number", "connector-list", "naming-list",
         "settings-false", "example-list", "project-mapping", "transform-false", "contracts-dir-number"],
)
def test_a_known_key_with_a_value_of_the_wrong_kind_names_line_key_and_expected_type(tmp_path, body, expected):
    path, problems = problems_of(tmp_path, body)
    for line in expected:
        assert any(problem.startswith(f"{path}{line}") for problem in problems), (line, problems)
    assert len(problems) == len(expected), problems


def test_a_project_without_a_name_is_named_after_its_folder_not_a_source(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "headwater.yaml").write_text(
        "sources:\n  zeta:\n    connector: filesystem\n    settings: {bucket_url: data, files: {t: '*.csv'}}\n")
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import load_project

    assert load_project(folder / "headwater.yaml", connector_registry()).name == "shop"
