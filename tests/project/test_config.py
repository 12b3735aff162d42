"""headwater.yaml: valid configs load, broken ones stop with a message naming file, line and key."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from headwater.common.yaml_source import read_yaml
from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project
from tests.conftest import REPO, query


def write_config(tmp_path, text: str):
    path = tmp_path / "headwater.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def load(path):
    return load_project(path, connector_registry())


def test_bundled_config_loads_with_every_source_and_table():
    project = load(REPO / "headwater.yaml")
    assert [source.name for source in project.sources] == ["shop_files", "shop_db", "shop_api"]
    assert [source.dataset for source in project.sources] == ["raw_shop_files", "raw_shop_db", "raw_shop_api"]
    customers = project.source("shop_db").tables[0]
    assert (customers.name, customers.primary_key, customers.cursor) == ("customers", "customer_id", "updated_at")
    assert customers.effective_write_disposition == "merge"
    assert project.example == "shop"
    assert project.transform_dir == REPO / "transform"
    assert customers.pii == ("name", "email")
    assert (project.catalog.pii_exposure, project.catalog.site_after_run) == ("warn", False)


@pytest.mark.parametrize(
    "body, expected_line, expected_fragments",
    [
        (
            """\
            sources:
              db:
                connector: sql_databse
            """,
            3,
            ["sources.db.connector", "unknown connector 'sql_databse'", "did you mean 'sql_database'",
             "installed: filesystem, nats_jetstream, postgres_cdc, redis_streams, rest_api, sql_database"],
        ),
        (
            """\
            sources:
              files:
                connector: filesystem
                settings:
                  files: {orders: "orders/*"}
            """,
            4,
            ["sources.files.settings", "needs setting 'bucket_url' (str)", "bucket_url: ..."],
        ),
        (
            """\
            sources:
              db:
                connector: sql_database
                settings:
                  credentials: ${DB_URL}
                  chunk_size: lots
            """,
            6,
            ["sources.db.settings.chunk_size", "expected int, got str 'lots'"],
        ),
        (
            """\
            sources:
              db:
                connector: sql_database
                settings:
                  credentials: postgresql://app:hunter2@db/app
            """,
            5,
            ["sources.db.settings.credentials", "'credentials' is a secret", "${CREDENTIALS}"],
        ),
        (
            """\
            sources:
              db:
                connector: sql_database
                settings:
                  credentials: ${NOT_SET_ANYWHERE}
            """,
            5,
            ["${NOT_SET_ANYWHERE} is not set", "export NOT_SET_ANYWHERE=..."],
        ),
        (
            """\
            sources:
              files:
                connector: filesystem
                settings: {bucket_url: /data, files: {orders: "*.csv"}}
                tables:
                  orders: {write_disposition: upsert}
            """,
            6,
            ["sources.files.tables.orders.write_disposition", "unknown write disposition 'upsert'",
             "allowed: append, merge, replace"],
        ),
        (
            """\
            sources:
              files:
                connector: filesystem
                setings: {bucket_url: /data}
            """,
            4,
            ["sources.files.setings", "unknown key; did you mean 'settings'?"],
        ),
        (
            """\
            sources:
              Bad-Name:
                connector: filesystem
            """,
            2,
            ["sources.Bad-Name", "lower-case letters, digits and _"],
        ),
        (
            """\
            sources:
              api:
                connector: rest_api
                settings: {client: {base_url: "http://127.0.0.1:1"}, resources: [items]}
                tables:
                  items: {primary_key: id, cursor: updated_at}
            """,
            6,
            ["sources.api.tables.items.cursor", "takes its incremental cursor in its settings", "type: incremental"],
        ),
        (
            """\
            sources:
              db:
                connector: sql_database
                settings: {credentials: "${DB_URL}"}
                tables:
                  customers:
                    primary_key: id
                    cursor: updated_at
                    steps:
                      - rename: {updated_at: modified_at}
            """,
            10,
            ["sources.db.tables.customers.steps.0.rename.updated_at", "primary key or cursor and must keep its name"],
        ),
        (
            """\
            sources:
              files:
                connector: filesystem
                settings: {bucket_url: /data, files: {orders: "*.csv"}}
                tables:
                  orders: {pii: {email: true}}
            catalog: {pii_exposure: block}
            """,
            6,
            ["sources.files.tables.orders.pii", "must be a list of column names",
             ":7: catalog.pii_exposure", "unknown action 'block'; allowed: warn, fail"],
        ),
        (
            """\
            sources:
              files:
                connector: filesystem
                settings:
                  bucket_url: /data
                  files:
                    orders: {glob: "orders/*", format: xml}
                    refunds: {csv: {delimiter: ";"}}
            """,
            7,
            ["sources.files.settings.files.orders.format: unknown format 'xml'; allowed: csv, jsonl, parquet",
             ":8: sources.files.settings.files.refunds: needs 'glob'; add `glob: orders/*.csv`"],
        ),
    ],
    ids=["unknown-connector", "missing-setting", "wrong-type", "literal-secret", "unset-reference",
         "bad-write-disposition", "misspelt-key", "bad-source-name", "cursor-on-api-table", "renamed-cursor",
         "bad-pii-and-catalog", "nested-setting"],
)
def test_broken_config_names_the_key_and_line(tmp_path, monkeypatch, body, expected_line, expected_fragments):
    monkeypatch.setenv("DB_URL", "postgresql://localhost/app")
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert f"{path}:{expected_line}:" in message
    for fragment in expected_fragments:
        assert fragment in message
    assert "nothing was run or written" in message


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_config(
        tmp_path,
        """\
        sources:
          a:
            connector: nope
          b:
            connector: filesystem
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert len(raised.value.problems) == 3  # unknown connector; bucket_url and files missing
    assert "3 problems" in str(raised.value)


def test_secret_references_resolve_from_environment_then_secrets_file(tmp_path, monkeypatch):
    monkeypatch.delenv("FILE_ONLY", raising=False)
    (tmp_path / ".headwater").mkdir()
    (tmp_path / ".headwater" / "secrets.env").write_text("# local secrets\nFILE_ONLY='from-file'\nBOTH=file\n")
    monkeypatch.setenv("BOTH", "env")
    path = write_config(
        tmp_path,
        """\
        sources:
          db:
            connector: sql_database
            settings:
              credentials: sqlite:///${PROJECT_DIR}/${FILE_ONLY}-${BOTH}.db
        """,
    )
    project = load(path)
    settings = project.resolved_settings(project.source("db"))
    assert settings["credentials"] == f"sqlite:///{tmp_path}/from-file-env.db"
    # The parsed config itself keeps the reference, never the secret.
    assert project.source("db").settings["credentials"] == "sqlite:///${PROJECT_DIR}/${FILE_ONLY}-${BOTH}.db"


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            """\
            sources:
              files:
                connector: filesytem
                settings: {bucket_url: /data, files: {orders: "*.csv"}}
            """,
            ":3: sources.files.connector: unknown connector 'filesytem'; did you mean 'filesystem'?",
        ),
        (
            """\
            sources:
              api:
                connector: rest_api
                settings:
                  client: {paginator: single_page}
                  resources: [orders]
            """,
            ":5: sources.api.settings.client: needs 'base_url'; add `base_url: https://api.example.com/v1`",
        ),
    ],
    ids=["unknown-connector", "rest-api-settings"],
)
def test_broken_config_stops_the_daily_flow_before_anything_is_written(tmp_path, database_url, body, expected):
    path = write_config(tmp_path, body)
    env = {**__import__("os").environ, "HEADWATER_CONFIG": str(path), "HEADWATER_DATABASE_URL": database_url}
    run = subprocess.run(
        [sys.executable, "-m", "flows.daily"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert f"{path}{expected}" in run.stderr
    schemas = query(database_url, "select schema_name from information_schema.schemata where schema_name like 'raw_%'")
    assert schemas == []
    assert not (tmp_path / ".headwater").exists()


# YAML syntax errors: line and column of the spot to fix, and what to do ------------------------------------------

@pytest.mark.parametrize(
    "body, expected",
    [
        ("sources:\n  db:\n\tconnector: sql_database\n",
         "3:1: not valid YAML: a tab character, where YAML allows only spaces; replace the tab with spaces"),
        ("sources:\n  db:\n    connector: sql_database\n   settings: {}\n",
         "4:4: not valid YAML: this line is indented 3 spaces, which lines up with no key above it (line 3 has 4); "
         "indent it like the keys it belongs with"),
        ("sources:\n  db:\n    connector: sql_database\n      settings: {}\n",
         "4:7: not valid YAML: this line is indented more than the key above it (6 spaces, line 3 has 4), so YAML "
         "reads it as part of that key's value; line it up with that key"),
        ('sources:\n  db:\n    connector: "sql_database\n    settings: {}\n',
         '3:16: not valid YAML: the quoted value that starts here is never closed; add the closing "'),
        ("sources:\n  db:\n    connector: 'sql_database\n    settings: {credentials: 'x'}\n",
         "3:16: not valid YAML: the quoted value that starts here runs on to line 4, column 29; add the closing ' "
         "on line 3"),
        ("sources:\n  db:\n    settings: {credentials: x, chunk_size: 5\n",
         "3:15: not valid YAML: the { that starts here is never closed; add }"),
        ("sources:\n  db\n  files:\n    connector: filesystem\n",
         "2:3: not valid YAML: this key has no `:`, so YAML reads it and line 3 as one value; end the key with `:`"),
        ("sources:\n  db: {connector: sql_database}\n  db: {connector: filesystem}\n",
         "3:3: not valid YAML: the key 'db' (first at line 2) appears twice in one mapping; keep one, with "
         "everything that belongs under it"),
        ("sources:\n  db:\n    connector: sql_database\n    tables: [customers, orders\n",
         "4:13: not valid YAML: the [ that starts here is never closed; add ]"),
    ],
    ids=["tab", "indented-less", "indented-more", "unclosed-quote", "quote-closed-lines-later", "unclosed-brace",
         "key-without-colon", "duplicate-key", "unclosed-bracket-at-end"],
)
def test_a_yaml_syntax_error_names_line_and_column_and_what_to_do(tmp_path, body, expected):
    path = tmp_path / "headwater.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert str(raised.value) == (
        "Invalid project config (1 problem); nothing was run or written. Fix and run again:\n"
        f"  {path}:{expected}"
    )


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_bytes("sources:\n  # café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert f"{path}:2:8: not UTF-8 text (byte 0xe9); save the file with the UTF-8 encoding" in str(raised.value)


# rest_api settings: checked like every connector's, each problem at its own key -----------------------------------

def test_rest_api_settings_are_checked_key_by_key_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "t0ken")
    path = write_config(
        tmp_path,
        """\
        sources:
          api:
            connector: rest_api
            settings:
              client:
                paginator: {type: pages}
                auth: {type: bearer, tokn: "${API_TOKEN}"}
              resources:
                - endpoint: orders
                - name: customers
                  endpoint: {path: customers, paginator: {type: offset}, data_selecter: data}
                - name: refunds
                  endpoint:
                    params:
                      since: {type: incremental, initial_value: "2024-01-01"}
                      order_id: {type: resolv}
          api2:
            connector: rest_api
            settings:
              client: {base_url: "api.example.com/v1", paginator: page}
              resources: []
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load(path)
    settings = f"{path}:{{}}: sources.api.settings"
    assert str(raised.value).splitlines()[1:] == [f"  {line}" for line in [
        settings.format(5) + ".client: needs 'base_url'; add `base_url: https://api.example.com/v1`",
        settings.format(6) + ".client.paginator.type: unknown type 'pages'; allowed: json_link, json_response, "
                             "header_link, header_cursor, auto, single_page, cursor, offset, page_number",
        settings.format(7) + ".client.auth: needs 'token'; add `token: ${API_TOKEN}`",
        settings.format(7) + ".client.auth.tokn: unknown key; did you mean 'token'? allowed: token, type",
        settings.format(9) + ".resources.0: needs 'name'; add `name: orders`",
        settings.format(11) + ".resources.1.endpoint.paginator: needs 'limit'; add `limit: 100`",
        settings.format(11) + ".resources.1.endpoint.data_selecter: unknown key; did you mean 'data_selector'? "
                              "allowed: auth, data, data_selector, headers, incremental, json, method, paginator, "
                              "params, path, response_actions",
        settings.format(15) + ".resources.2.endpoint.params.since: needs 'cursor_path'; add `cursor_path: updated_at`",
        settings.format(16) + ".resources.2.endpoint.params.order_id.type: unknown type 'resolv'; "
                              "allowed: incremental, resolve",
        f"{path}:20: sources.api2.settings.client.base_url: 'api.example.com/v1' is not an http(s) URL; write it "
        "whole, e.g. https://api.example.com/v1",
        f"{path}:20: sources.api2.settings.client.paginator: unknown paginator 'page'; allowed: json_link, "
        "json_response, header_link, header_cursor, auto, single_page, cursor, offset, page_number",
        f"{path}:21: sources.api2.settings.resources: lists no endpoint; add one, e.g. `- name: orders`",
    ]]


def test_a_key_that_overrides_a_merged_one_is_not_a_duplicate(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text("defaults: &db {connector: sql_database, settings: {credentials: 'sqlite:///a.db'}}\n"
                    "sources:\n  db:\n    <<: *db\n    settings: {credentials: 'sqlite:///b.db'}\n")
    document = read_yaml(path)
    assert document.data["sources"]["db"] == {"connector": "sql_database",
                                              "settings": {"credentials": "sqlite:///b.db"}}
    assert document.line_of(("sources", "db", "settings")) == 5


def test_run_settings_bound_parallel_sources_and_choose_where_loads_run(tmp_path):
    sources = "sources:\n  files:\n    connector: filesystem\n    settings: {bucket_url: /tmp, files: {a: 'a/*'}}\n"
    default = load(write_config(tmp_path, sources))
    assert default.run.max_parallel_sources == 0 and default.run.parallel_sources >= 1
    assert (default.run.task_runner, default.run.dask_address) == ("threads", None)

    chosen = load(write_config(tmp_path, sources + "run: {max_parallel_sources: 3, task_runner: dask, "
                                                   "dask_address: 'tcp://scheduler:8786'}\n"))
    assert (chosen.run.parallel_sources, chosen.run.task_runner, chosen.run.dask_address) == \
        (3, "dask", "tcp://scheduler:8786")


def test_broken_run_settings_are_named_with_what_to_write(tmp_path):
    path = write_config(tmp_path, "sources:\n  files:\n    connector: filesystem\n"
                                  "    settings: {bucket_url: /tmp, files: {a: 'a/*'}}\n"
                                  "run:\n  max_parallel_sources: 0\n  task_runner: ray\n  dask_address: scheduler\n")
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert f"{path}:6: run.max_parallel_sources: must be a whole number of at least 1 (got 0)" in message
    assert f"{path}:7: run.task_runner: unknown task runner 'ray'; allowed: threads, dask" in message
    assert "run.dask_address: must be a scheduler address such as tcp://scheduler:8786 (got 'scheduler')" in message
