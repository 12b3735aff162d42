"""`headwater init DIR`: the generated project runs as written (real dlt, dbt, Soda, Prefect); used folders refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from headwater.cli import main
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import query

PROJECT_FILES = [
    ".gitignore",
    "README.md",
    "headwater.yaml",
    "landing/orders/orders_2026-01-05.csv",
    "quality/contracts/raw_landing/orders.yml",
    "quality/datasource.yml",
    "transform/dbt_project.yml",
    "transform/macros/generate_schema_name.sql",
    "transform/models/staging/__sources.yml",
    "transform/models/staging/stg_landing__orders.sql",
    "transform/models/staging/stg_landing__orders.yml",
    "transform/profiles.yml",
]
# The sample file as written, then a second day's file: two new orders and one update (1005 gets paid).
SAMPLE_ORDERS = [
    (1001, 1, 19.9, "paid", datetime(2026, 1, 5, 9, 12, tzinfo=timezone.utc)),
    (1002, 2, 5.0, "paid", datetime(2026, 1, 5, 10, 40, tzinfo=timezone.utc)),
    (1003, 1, 42.5, "refunded", datetime(2026, 1, 5, 14, 3, tzinfo=timezone.utc)),
    (1004, 3, 12.0, "paid", datetime(2026, 1, 5, 16, 55, tzinfo=timezone.utc)),
    (1005, 2, 7.25, "pending", datetime(2026, 1, 5, 17, 30, tzinfo=timezone.utc)),
]
SECOND_DAY_CSV = """\
order_id,customer_id,amount,status,ordered_at
1005,2,7.25,paid,2026-01-05T17:30:00Z
1006,4,99.99,paid,2026-01-06T08:01:00Z
1007,1,3.10,pending,2026-01-06T11:45:00Z
"""
CONTRACT_CHECKS = 7  # quality/contracts/raw_landing/orders.yml: row_count and six column checks


def files_below(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def command_env(database_url: str) -> dict[str, str]:
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url}
    env.pop("HEADWATER_CONFIG", None)  # the project is found the way its README says
    return env


def test_init_writes_a_project_and_says_how_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    assert main(["init", "my-shop"]) == 0

    project = tmp_path / "my-shop"
    assert files_below(project) == PROJECT_FILES
    out = capsys.readouterr().out
    assert out.startswith("Created project my_shop in ./my-shop:\n  .gitignore\n  README.md\n")
    assert "cd ./my-shop && headwater run" in out
    assert "HEADWATER_CONFIG=./my-shop/headwater.yaml python -m flows.daily" in out
    # The folder name becomes the project name; dbt needs an identifier, so - becomes _.
    assert "\nproject: my_shop\n" in (project / "headwater.yaml").read_text()
    dbt_project = (project / "transform" / "dbt_project.yml").read_text()
    assert "\nname: my_shop\n" in dbt_project and "\n  my_shop:\n    staging:\n" in dbt_project
    assert "var('headwater_audit_schemas', {})" in (project / "transform/macros/generate_schema_name.sql").read_text()
    ignored = (project / ".gitignore").read_text().splitlines()
    assert ".headwater/" in ignored and "secrets.env" in ignored
    readme = (project / "README.md").read_text()
    assert "headwater run" in readme
    assert "HEADWATER_CONFIG=path/to/my-shop/headwater.yaml python -m flows.daily" in readme


def test_init_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    folder = tmp_path / "existing"
    (folder / "data").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")

    assert main(["init", str(folder)]) == 2

    assert capsys.readouterr().err == (
        f"error: {folder} is not empty (it holds data/, notes.txt); choose a new or empty folder, or add --force "
        "to write the project's files into it (files of the same name are replaced, others are left alone)\n"
    )
    assert files_below(folder) == ["notes.txt"]


def test_init_with_force_writes_into_a_used_folder_and_says_what_it_replaced(tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "headwater.yaml").write_text("sources: {}\n")

    assert main(["init", "--force", str(folder)]) == 0

    assert files_below(folder) == sorted([*PROJECT_FILES, "notes.txt"])
    assert (folder / "notes.txt").read_text() == "mine"
    assert "\nproject: existing\n" in (folder / "headwater.yaml").read_text()
    out = capsys.readouterr().out
    assert "  headwater.yaml  (replaced)\n" in out and "  README.md\n" in out


def test_a_folder_holding_only_git_counts_as_empty(tmp_path):
    folder = tmp_path / "2024 Sales"
    (folder / ".git").mkdir(parents=True)

    assert main(["init", str(folder)]) == 0

    # A name that is no identifier still gives dbt one.
    assert "\nname: project_2024_sales\n" in (folder / "transform" / "dbt_project.yml").read_text()


def test_init_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "headwater.yaml"
    target.write_text("")

    assert main(["init", str(target)]) == 2

    assert capsys.readouterr().err == f"error: {target} is a file; give a folder for the new project\n"


def uncommented_examples(text: str) -> str:
    """headwater.yaml with the commented `app_db` and `billing_api` sources turned on, as a user would."""
    lines, inside = [], False
    for line in text.splitlines(keepends=True):
        if re.fullmatch(r"  # (app_db|billing_api):\n", line):
            inside = True
        elif not line.startswith("  #   "):
            inside = False
        lines.append(line.replace("  # ", "  ", 1) if inside else line)
    return "".join(lines)


def test_the_commented_sources_are_valid_once_uncommented_and_their_secrets_set(tmp_path, monkeypatch):
    assert main(["init", str(tmp_path / "project")]) == 0
    config = tmp_path / "project" / "headwater.yaml"
    config.write_text(uncommented_examples(config.read_text()))
    monkeypatch.setenv("APP_DB_URL", "sqlite:///app.db")
    monkeypatch.setenv("API_TOKEN", "token")

    project = load_project(config, connector_registry())

    assert [(source.name, source.connector, [table.name for table in source.tables]) for source in project.sources] == [
        ("landing", "filesystem", ["orders"]),
        ("app_db", "sql_database", ["customers"]),
        ("billing_api", "rest_api", ["invoices"]),
    ]


@pytest.mark.slow
def test_the_generated_project_runs_as_generated(tmp_path, database_url, prefect_api, monkeypatch):
    project = tmp_path / "orders"
    assert main(["init", str(project)]) == 0
    headwater = Path(sys.executable).parent / "headwater"

    # As the README says: cd DIR && headwater run.
    first = subprocess.run([str(headwater), "run"], cwd=project, env=command_env(database_url),
                           capture_output=True, text=True, timeout=600)

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Run succeeded" in first.stdout
    assert re.search(r"raw_landing\.orders\s+│\s+5 / 5 / 0\s+│.*│ passed 7/7 ", first.stdout), first.stdout
    raw = "select order_id, customer_id, amount, status, ordered_at from raw_landing.orders order by order_id"
    assert query(database_url, raw) == SAMPLE_ORDERS
    assert query(database_url, "select order_id, amount, source_file_name from staging.stg_landing__orders "
                               "where order_id = 1001") == [(1001, Decimal("19.90"), "orders/orders_2026-01-05.csv")]
    assert query(database_url, "select count(*), count(*) filter (where outcome = 'passed') "
                               "from headwater_ops.check_results where contract = 'raw_landing.orders'") == [
        (CONTRACT_CHECKS, CONTRACT_CHECKS)
    ]
    assert query(database_url, "select resource_type, status from headwater_ops.dbt_nodes "
                               "where name = 'stg_landing__orders'") == [("model", "success")]

    # A second file lands; the other documented way to run: HEADWATER_CONFIG, from another folder.
    (project / "landing" / "orders" / "orders_2026-01-06.csv").write_text(SECOND_DAY_CSV)
    second = subprocess.run([sys.executable, "-m", "flows.daily"], cwd=tmp_path,
                            env={**command_env(database_url), "HEADWATER_CONFIG": str(project / "headwater.yaml")},
                            capture_output=True, text=True, timeout=600)

    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert re.search(r"raw_landing\.orders\s+│\s+3 / 3 / 0\s+│", second.stdout), second.stdout
    assert query(database_url, "select order_id, status, amount from staging.stg_landing__orders "
                               "where order_id >= 1005 order by order_id") == [
        (1005, "paid", Decimal("7.25")), (1006, "paid", Decimal("99.99")), (1007, "pending", Decimal("3.10")),
    ]
    assert query(database_url, "select status, count(*) from headwater_ops.runs group by status") == [("succeeded", 2)]

    # The generated source definitions already describe every raw column: nothing to add.
    sources = project / "transform" / "models" / "staging" / "__sources.yml"
    before = sources.read_bytes()
    monkeypatch.setenv("HEADWATER_CONFIG", str(project / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    assert main(["dbt", "sources"]) == 0
    assert sources.read_bytes() == before
