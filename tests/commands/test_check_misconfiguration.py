"""Misconfiguration as a user meets it: `headwater check` and a run exit non-zero (or warn) with a message, never
with a traceback, and never report a silent success.

Config errors stop both commands with exit code 2 before anything is written. A filesystem table whose glob
matches no file fails `headwater check` with the source, table, glob, folder and what to do; a run loads the
other tables and warns about that one, and records the warning.
"""

from __future__ import annotations

import gzip
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.cli import main
from tests.conftest import free_port, query
from tests.project.test_config_files import PNG, billion_laughs

HEADWATER = str(Path(sys.executable).parent / "headwater")
SOURCE = '    connector: filesystem\n    settings: {bucket_url: "${PROJECT_DIR}", files: {orders: "*.csv"}}\n'


def run(command: list[str], cwd: Path, database_url: str, config: Path | None = None, timeout: int = 300):
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url, "COLUMNS": "250"}
    env.pop("HEADWATER_CONFIG", None)
    if config is not None:
        env["HEADWATER_CONFIG"] = str(config)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


CONFIG_ERRORS = ["quoted-boolean", "duplicate-source", "primary-key-number", "write-disposition-list", "png", "gzip",
                 "alias-bomb", "deep-nesting"]
# Also run as `headwater check` and `python -m flows.daily` in processes of their own.
IN_PROCESSES = ("quoted-boolean", "png")
assert set(IN_PROCESSES) <= set(CONFIG_ERRORS)


@pytest.mark.parametrize(
    "content, expected",
    [
        ('sources:\n  files:\n    enabled: "false"\n' + SOURCE,
         ":3: sources.files.enabled: 'false' in quotes is text, not a boolean; write false without quotes"),
        ("sources:\n  files:\n" + SOURCE + "  files:\n" + SOURCE,
         ":5:3: not valid YAML: the key 'files' (first at line 2) appears twice in one mapping; keep one, with "
         "everything that belongs under it"),
        ("sources:\n  files:\n" + SOURCE + "    tables:\n      orders: {primary_key: 5}\n",
         ":6: sources.files.tables.orders.primary_key: expected a column name or a list of them, e.g. id or "
         "[order_id, line], got int 5"),
        ("sources:\n  files:\n" + SOURCE + "    tables: {orders: {write_disposition: [merge]}}\n",
         ":5: sources.files.tables.orders.write_disposition: unknown write disposition a list ['merge']; allowed: "
         "append, merge, replace, scd2"),
        (PNG, ": not a text YAML file: it looks like a PNG image. Is this the file you meant?"),
        (gzip.compress(SOURCE.encode()), ": not a text YAML file: it looks like a gzip archive. Is this the file you "
                                         "meant?"),
        (billion_laughs(), ":6:10: *l4 repeats 66,430 values, which makes the file hold more than 100,000"),
        ("sources:\n  files:\n" + SOURCE + "catalog: " + "[" * 5000 + "]" * 5000 + "\n",
         ":5:59: nested more than 50 levels deep"),
    ],
    ids=CONFIG_ERRORS,
)
def test_a_config_error_stops_check_and_run_with_exit_2_and_no_traceback(tmp_path, database_url, content,
                                                                          expected, request, monkeypatch, capsys):
    config = tmp_path / "headwater.yaml"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    (tmp_path / "orders.csv").write_text("order_id\n1\n")

    # `headwater check` in this process; a run, and check, in processes of their own for two of the errors (the
    # same config reading stops both)
    monkeypatch.chdir(tmp_path)
    for name, value in (("HEADWATER_CONFIG", str(config)), ("HEADWATER_DATABASE_URL", database_url),
                        ("COLUMNS", "250")):
        monkeypatch.setenv(name, value)
    code = main(["check"])
    captured = capsys.readouterr()
    outcomes = [("headwater check", code, captured.out, captured.err)]
    if request.node.callspec.id in IN_PROCESSES:
        for command in ([HEADWATER, "check"], [sys.executable, "-m", "flows.daily"]):
            result = run(command, tmp_path, database_url, config)
            outcomes.append((" ".join(command), result.returncode, result.stdout, result.stderr))
    for command, code, out, err in outcomes:
        assert code == 2, (command, out, err)
        assert f"{config}{expected}" in err, (command, err)
        assert "nothing was run or written" in err
        assert "Traceback" not in err + out
    assert not (tmp_path / ".headwater").exists()
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name like 'raw_%'") == [
        (0,)]


def misconfigure(root: Path) -> Path:
    """To `headwater init`'s project, add a table whose glob matches no file and a source over no folder."""
    config = root / "headwater.yaml"
    text = config.read_text()
    text = text.replace('        orders: "orders/*.csv"\n',
                        '        orders: "orders/*.csv"\n        refunds: "refunds/*.csv"\n')
    text = text.replace("          - required: [order_id, ordered_at]\n",
                        "          - required: [order_id, ordered_at]\n      refunds: {primary_key: refund_id}\n")
    text = text.replace("  # A database,", "  archive:\n    connector: filesystem\n    settings:\n"
                                           "      bucket_url: ${PROJECT_DIR}/archive\n"
                                           "      files: {orders: \"orders/*.csv\"}\n\n  # A database,")
    config.write_text(text)
    return config


def test_check_fails_on_a_glob_that_matches_no_file_and_names_source_table_glob_and_folder(tmp_path, database_url):
    project = tmp_path / "shop"
    assert main(["init", str(project)]) == 0
    generated = run([HEADWATER, "check"], project, database_url)
    assert generated.returncode == 0, generated.stdout + generated.stderr  # the project as generated checks OK

    misconfigure(project)
    result = run([HEADWATER, "check"], project, database_url)

    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"landing: table refunds: no file matches refunds/*.csv under {project}/landing; drop the files there, "
            "or fix the glob (files.refunds) or bucket_url") in result.stdout
    assert (f"archive: table orders: folder {project}/archive does not exist, so no file matches orders/*.csv; "
            "create it and drop the files there, or fix bucket_url") in result.stdout
    assert "2 of 3 checks failed." in result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name like 'raw_%'") == [
        (0,)]


@pytest.mark.slow
def test_a_run_loads_the_other_tables_and_warns_about_a_table_whose_glob_matches_no_file(tmp_path, database_url,
                                                                                          prefect_api):
    project = tmp_path / "shop"
    assert main(["init", str(project)]) == 0
    misconfigure(project)

    result = run([HEADWATER, "run"], project, database_url, timeout=600)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"raw_landing\.orders\s+│\s+5 / 5 / 0\s+│", result.stdout), result.stdout
    assert (f"Warning raw_landing.refunds: no file matches refunds/*.csv under {project}/landing; nothing loads into "
            "it until files match (check bucket_url and the glob in headwater.yaml)") in result.stdout
    assert (f"Warning raw_archive.orders: folder {project}/archive does not exist, so no file matches orders/*.csv; "
            "nothing loads into it until files match") in result.stdout
    assert query(database_url, "select count(*) from raw_landing.orders") == [(5,)]
    # Recorded with the run, beside the files it read.
    assert query(database_url, "select source, table_name, file_name, status, reason from headwater_ops.file_loads "
                               "where status = 'no match' order by source") == [
        ("archive", "orders", "orders/*.csv", "no match",
         f"folder {project}/archive does not exist, so no file matches orders/*.csv"),
        ("landing", "refunds", "refunds/*.csv", "no match", f"no file matches refunds/*.csv under {project}/landing"),
    ]


def secret_block_project(root: Path, database_url: str, url_block: str, salt_block: str) -> Path:
    """A database source whose URL is one Prefect Secret block and whose PII salt is another."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("create table orders (id int primary key, email text)")
        connection.execute("insert into orders values (1, 'ada@example.com')")
    config = root / "headwater.yaml"
    config.write_text(
        "sources:\n  orders_db:\n    connector: sql_database\n"
        f'    settings: {{credentials: "${{prefect:{url_block}}}"}}\n'
        "    tables:\n      orders:\n        primary_key: id\n"
        f'        steps: [{{pii: {{email: {{hash: {{salt: "${{prefect:{salt_block}}}"}}}}}}}}]\n'
    )
    return config


@pytest.mark.slow
def test_check_reads_every_secret_block_and_names_a_missing_one_with_its_server(tmp_path, database_url,
                                                                                 prefect_api):
    from prefect.blocks.system import Secret

    suffix = secrets.token_hex(4)
    url_block, salt_block = f"orders-db-url-{suffix}", f"pii-salt-{suffix}"
    source_url = database_url.replace("postgresql://", "postgresql+psycopg://")
    Secret(value=source_url).save(url_block)
    config = secret_block_project(tmp_path, database_url, url_block, salt_block)
    try:
        result = run([HEADWATER, "check"], tmp_path, database_url, config)
    finally:
        Secret.delete(url_block)

    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert re.search(rf"prefect:{url_block}\s+│\s+secret block\s+│\s+OK\s+│\s+found on {re.escape(prefect_api)}",
                     out), out
    assert (f"prefect:{salt_block}: secret block '{salt_block}' not found on {prefect_api}; create it there: "
            f"Prefect UI, Blocks, Secret named {salt_block}; or Secret(value=...).save('{salt_block}') from "
            "prefect.blocks.system") in out
    assert source_url not in out + result.stderr
    assert "Traceback" not in out + result.stderr


@pytest.mark.slow
def test_check_says_when_the_server_holding_the_secret_blocks_is_unreachable(tmp_path, database_url, monkeypatch):
    unreachable = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", unreachable)
    config = secret_block_project(tmp_path, database_url, "orders-db-url", "pii-salt")

    result = run([HEADWATER, "check"], tmp_path, database_url, config)

    assert result.returncode == 1, result.stdout + result.stderr
    for block in ("orders-db-url", "pii-salt"):
        assert (f"prefect:{block}: secret block '{block}': the Prefect server {unreachable} is unreachable "
                "(ConnectError: ") in result.stdout
    assert "orders_db: secret block 'orders-db-url': the Prefect server" in result.stdout
    assert "3 of 4 checks failed." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_prefect_api_that_does_not_answer_stops_the_run_with_one_line(tmp_path, database_url):
    project = tmp_path / "shop"
    assert main(["init", str(project)]) == 0
    api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url, "PREFECT_API_URL": api_url, "COLUMNS": "250"}
    env.pop("HEADWATER_CONFIG", None)

    result = subprocess.run([HEADWATER, "run"], cwd=project, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == (
        f"error: Prefect's API at {api_url}/ does not answer (ConnectError: [Errno 111] Connection refused); "
        "PREFECT_API_URL is set to it in the environment. Start that server, or unset PREFECT_API_URL so that runs "
        "report to this project's own server (headwater up starts it). Nothing was loaded.\n")
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name like 'raw_%'") == [
        (0,)]
