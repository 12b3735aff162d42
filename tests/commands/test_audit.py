"""`headwater audit verify` and `headwater audit list` on a project's destination."""

from __future__ import annotations

import getpass

import psycopg
import pytest

from headwater.cli import main
from headwater.ops.audit import read_records, record_config, record_event
from headwater.postgres.address import PostgresAddress
from tests.commands.test_recover import table_rows
from tests.landing_project import landing_project


@pytest.fixture
def project(tmp_path, database_url, monkeypatch) -> PostgresAddress:
    """A project whose destination is a fresh database; returns that database's address."""
    _, config = landing_project(tmp_path, {"items": "*.csv"})
    monkeypatch.setenv("HEADWATER_CONFIG", str(config.path))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    return PostgresAddress.from_url(database_url)


def run(capsys, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, [line.rstrip() for line in capsys.readouterr().out.splitlines()]


def test_verify_says_intact_then_names_an_edited_and_a_deleted_record(project, database_url, capsys):
    assert run(capsys, "audit", "verify") == (0, [
        f"No audit records yet in {project.safe_url}: runs, replays, recovers and grant changes record themselves "
        "in headwater_ops.audit_log."])
    for number in range(3):
        record_event(project, "grants", {"step": number})
    first, second, third = read_records(project)
    assert run(capsys, "audit", "verify") == (0, [
        f"Audit log intact: 3 records, {first.label} to {third.label}.",
        f"Last record: #3 hash {third.hash}. Kept elsewhere, it lets a later `headwater audit verify --expect "
        f"3:{third.hash}` show a chain rewritten since."])
    assert run(capsys, "audit", "verify", "--expect", f"3:{third.hash}")[0] == 0

    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("update headwater_ops.audit_log set details = '{\"step\": 5}' where seq = 2")
    assert run(capsys, "audit", "verify") == (1, [
        f"Audit log BROKEN: 1 problem in 3 records ({first.label} to {third.label}):",
        f"  {second.label} was edited: its contents no longer give its hash"])

    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("delete from headwater_ops.audit_log where seq = 2")
    assert run(capsys, "audit", "verify") == (1, [
        f"Audit log BROKEN: 1 problem in 2 records ({first.label} to {third.label}):",
        f"  #2 deleted: missing between {first.label} and {third.label}"])


def test_verify_refuses_an_expected_record_it_cannot_read(project, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", "--expect", "3:abc"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "headwater audit verify: error: argument --expect: expected SEQ:HASH as `headwater audit verify` prints it "
        "(42:3f2a…, 64 hex digits); got '3:abc'")


def test_list_shows_the_newest_records_of_a_kind_with_who_and_from_where(project, tmp_path, capsys):
    assert run(capsys, "audit", "list") == (0, [f"No audit records in {project.safe_url}."])
    record_config(project, tmp_path / "headwater.yaml", run_id="run-1")
    record_event(project, "recover", {"source": "drops", "outcome": "loaded"})
    record_event(project, "recover", {"source": "drops", "outcome": "discarded"})

    code, lines = run(capsys, "audit", "list", "--kind", "recover", "--limit", "1")
    assert code == 0 and lines[0] == "Audit log, newest first (1 shown)"
    [[seq, at, kind, who, where, details]] = table_rows(lines)
    newest = read_records(project)[-1]
    assert (seq, at, kind) == ("3", newest.at.strftime("%Y-%m-%d %H:%M:%S"), "recover")
    assert (who.replace(" ", ""), where.replace(" ", "")) == (
        f"{project.user},osuser{getpass.getuser()}", newest.where.replace(" ", ""))
    assert details == 'outcome: "discarded" source: "drops"'

    rows = table_rows(run(capsys, "audit", "list")[1])
    assert [(row[0], row[2]) for row in rows] == [("3", "recover"), ("2", "recover"), ("1", "config")]
    config_details = rows[2][5]
    assert "sha256: " in config_details and "sections" not in config_details  # the digests per section stay out
