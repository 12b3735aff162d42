"""`headwater connectors list/show` and `headwater check`: output, exit codes, and that a check writes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dlt
import pytest

from headwater import __version__
from headwater.cli import main
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from tests.conftest import free_port, query

# Wide enough that rich never wraps a table cell, so rows can be compared cell by cell.
WIDE = "250"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDE)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(output: str) -> dict[str, list[str]]:
    """Rows of the rich tables in output, by their first cell."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def write_config(folder, text: str):
    path = folder / "headwater.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_list_shows_every_builtin_connector_with_package_version_and_description(capsys):
    code, out, _ = run_cli(capsys, "connectors", "list")
    assert code == 0
    rows = table_rows(out)
    assert rows["filesystem"][:2] == ["filesystem", f"headwater {__version__}"]
    assert rows["filesystem"][2].startswith("Load CSV, JSONL and Parquet files")
    assert rows["sql_database"][:2] == ["sql_database", f"headwater {__version__}"]
    assert rows["rest_api"][2].startswith("Load the endpoints of a REST API")


def test_show_lists_settings_with_type_default_required_secret_and_docs(capsys):
    code, out, _ = run_cli(capsys, "connectors", "show", "sql_database")
    assert code == 0
    rows = table_rows(out)
    #                     setting        type   default  required secret
    assert rows["credentials"] == ["credentials", "str", "", "yes", "yes"]
    assert rows["chunk_size"] == ["chunk_size", "int", "50000", "no", "no"]
    assert rows["backend"][2:] == ["None", "no", "no"]  # unset: chosen by database
    assert rows["schema"] == ["schema", "str | None", "None", "no", "no"]
    assert f"package: headwater {__version__}" in out
    assert "docs: https://dlthub.com/docs/dlt-ecosystem/verified-sources/sql_database" in out
    assert "chunk_size: Rows per Arrow batch." in out  # from the source's docstring
    assert "Secret settings must be ${NAME} references" in out


def test_show_prints_known_keys_cursors_and_pii_per_resource(capsys, monkeypatch):
    @dlt.source
    def crm(api_token: str = dlt.secrets.value, page_size: int = 100):
        """Contacts and deals of a CRM."""
        return []

    registry = ConnectorRegistry()
    registry.registrar(Plugin("crm", "headwater-crm", "2.1.0"))(
        "crm",
        crm,
        docs_url="https://example.org/crm",
        primary_keys={"contacts": "contact_id", "deals": ["deal_id", "stage"]},
        cursors={"contacts": "modified_at"},
        pii={"contacts": ["email", "phone"]},
    )
    monkeypatch.setattr("headwater.plugins.manager.connector_registry", lambda: registry)

    code, out, _ = run_cli(capsys, "connectors", "show", "crm")
    assert code == 0
    rows = table_rows(out)
    assert rows["api_token"] == ["api_token", "str", "", "yes", "yes"]
    assert rows["page_size"] == ["page_size", "int", "100", "no", "no"]
    assert rows["contacts"] == ["contacts", "contact_id", "modified_at", "email, phone"]
    assert rows["deals"] == ["deals", "deal_id, stage", "", ""]
    assert "crm: Contacts and deals of a CRM." in out
    assert "plugin: crm  package: headwater-crm 2.1.0" in out


def test_show_unknown_connector_suggests_the_closest_name(capsys):
    code, out, err = run_cli(capsys, "connectors", "show", "sql_databse")
    assert code == 2
    assert out == ""
    assert "unknown connector 'sql_databse'; did you mean 'sql_database'?" in err
    assert "installed: filesystem, nats_jetstream, postgres_cdc, redis_streams, rest_api, sql_database" in err


def test_check_on_the_shop_reads_every_source_and_writes_nothing(shop_project, database_url, monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    code, out, err = run_cli(capsys, "check")
    assert code == 0, out + err
    rows = table_rows(out)
    version = query(database_url, "show server_version")[0][0]
    assert rows["destination"][2] == "OK" and rows["destination"][3].startswith(f"PostgreSQL {version} at ")
    assert rows["shop_files"][1:4] == ["filesystem", "OK", "read orders"]
    assert rows["shop_db"][1:4] == ["sql_database", "OK", "read customers, products"]
    assert rows["shop_api"][1:4] == ["rest_api", "OK", "read payments"]
    assert "Nothing was loaded." in out

    schemas = query(
        database_url,
        "select schema_name from information_schema.schemata where schema_name like 'raw_%' or schema_name = 'marts'",
    )
    assert schemas == []
    assert query(database_url, "select count(*) from information_schema.tables where table_schema = 'public'") == [(0,)]
    # No dlt pipeline was created: its working folder would be under .headwater/pipelines.
    assert not (shop_project / ".headwater" / "pipelines").exists()


def test_check_names_the_failing_sources_and_exits_1(tmp_path, database_url):
    closed_port = free_port()
    config = write_config(
        tmp_path,
        f"""\
        sources:
          shop_db:
            connector: sql_database
            settings:
              credentials: sqlite:///${{PROJECT_DIR}}/missing-folder/shop.db
          shop_api:
            connector: rest_api
            settings:
              client: {{base_url: "http://127.0.0.1:{closed_port}/"}}
              resources: [payments]
          landing:
            connector: filesystem
            settings: {{bucket_url: "${{PROJECT_DIR}}", files: {{orders: "*.csv"}}}}
        """,
    )
    (tmp_path / "orders.csv").write_text("order_id,amount\n1,9.5\n")
    env = {**os.environ, "HEADWATER_CONFIG": str(config), "HEADWATER_DATABASE_URL": database_url, "COLUMNS": WIDE}
    run = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "check"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "shop_db: cannot connect: OperationalError: unable to open database file" in run.stdout
    assert "shop_api: cannot connect: ConnectionRefusedError" in run.stdout
    rows = table_rows(run.stdout)
    assert rows["landing"][1:4] == ["filesystem", "OK", "read orders"]
    assert rows["destination"][2] == "OK"
    assert "2 of 4 checks failed." in run.stdout
    assert not (tmp_path / "missing-folder").exists()


def test_check_reports_an_unreachable_destination(tmp_path, monkeypatch, capsys):
    write_config(
        tmp_path,
        """\
        sources:
          landing:
            connector: filesystem
            settings: {bucket_url: "${PROJECT_DIR}", files: {orders: "*.csv"}}
        """,
    )
    (tmp_path / "orders.csv").write_text("order_id,amount\n1,9.5\n")
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nowhere")
    code, out, _ = run_cli(capsys, "check")
    assert code == 1
    assert "destination: postgresql://postgres:***@127.0.0.1:" in out
    assert "cannot connect: OperationalError:" in out
    assert "hunter2" not in out
    assert table_rows(out)["landing"][2] == "OK"


def test_check_gives_up_on_a_source_that_never_answers(tmp_path, database_url, monkeypatch, capsys):
    # A socket that accepts connections (the kernel's backlog) but never answers a request.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    write_config(
        tmp_path,
        f"""\
        sources:
          slow_api:
            connector: rest_api
            settings:
              client: {{base_url: "http://127.0.0.1:{port}/"}}
              resources: [payments]
        """,
    )
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    try:
        code, out, _ = run_cli(capsys, "check", "--timeout", "1")
    finally:
        silent.close()  # the abandoned request now fails and its thread ends
    assert code == 1
    assert "slow_api: no answer within 1 s while reading 'payments'" in out


def test_check_stops_at_an_invalid_config_with_exit_2(tmp_path, monkeypatch, capsys):
    path = write_config(
        tmp_path,
        """\
        sources:
          db:
            connector: sql_databse
        """,
    )
    monkeypatch.setenv("HEADWATER_CONFIG", str(path))
    code, out, err = run_cli(capsys, "check")
    assert code == 2
    assert f"{path}:3: sources.db.connector: unknown connector 'sql_databse'" in err
    assert out == ""


def test_check_stops_at_invalid_rest_api_settings_with_exit_2(tmp_path, monkeypatch, capsys):
    path = write_config(
        tmp_path,
        """\
        sources:
          api:
            connector: rest_api
            settings:
              client: {base_url: "http://127.0.0.1:9/"}
              resources:
                - name: payments
                  endpoint: {path: payments, paginator: {type: cursor, cursor_pth: next}}
        """,
    )
    monkeypatch.setenv("HEADWATER_CONFIG", str(path))
    code, out, err = run_cli(capsys, "check")
    assert code == 2
    assert (f"{path}:8: sources.api.settings.resources.0.endpoint.paginator.cursor_pth: unknown key; did you mean "
            "'cursor_path'? allowed: cursor_body_path, cursor_param, cursor_path, has_more_path, "
            "stop_after_empty_page, type") in err
    assert out == ""


def test_check_masks_secrets_that_an_error_message_quotes(tmp_path, database_url, monkeypatch, capsys):
    class Refusing(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    write_config(
        tmp_path,
        f"""\
        sources:
          api:
            connector: rest_api
            settings:
              client:
                base_url: "http://127.0.0.1:{server.server_port}/"
                auth: {{type: api_key, name: key, api_key: "${{CHECK_TEST_KEY}}", location: query}}
              resources: [payments]
        """,
    )
    monkeypatch.setenv("CHECK_TEST_KEY", "very-secret-value")
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    try:
        code, out, _ = run_cli(capsys, "check")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert "api: failed while reading 'payments': HTTPError: 401 Client Error" in out
    assert "key=***" in out
    assert "very-secret-value" not in out, out
