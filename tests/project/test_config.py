"""headwater.yaml: valid configs load, broken ones stop with a message naming file, line and key."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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
             "installed: filesystem, rest_api, sql_database"],
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
    ],
    ids=["unknown-connector", "missing-setting", "wrong-type", "literal-secret", "unset-reference",
         "bad-write-disposition", "misspelt-key", "bad-source-name", "cursor-on-api-table", "renamed-cursor",
         "bad-pii-and-catalog"],
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


def test_broken_config_stops_the_daily_flow_before_anything_is_written(tmp_path, database_url):
    path = write_config(
        tmp_path,
        """\
        sources:
          files:
            connector: filesytem
            settings: {bucket_url: /data, files: {orders: "*.csv"}}
        """,
    )
    env = {**__import__("os").environ, "HEADWATER_CONFIG": str(path), "HEADWATER_DATABASE_URL": database_url}
    run = subprocess.run(
        [sys.executable, "-m", "flows.daily"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert "unknown connector 'filesytem'; did you mean 'filesystem'?" in run.stderr
    assert f"{path}:3" in run.stderr
    schemas = query(database_url, "select schema_name from information_schema.schemata where schema_name like 'raw_%'")
    assert schemas == []
    assert not (tmp_path / ".headwater").exists()
