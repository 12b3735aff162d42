"""The audit trail in headwater_ops.audit_log: who, when, from where; append-only but for the owner; a hash chain
whose edits, deletions and reorderings `verify_chain` names; concurrent appenders that never fork it."""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import socket
import textwrap
import threading
import uuid
from contextlib import contextmanager

import psycopg
import pytest

from headwater.ops.audit import (
    GENESIS,
    audit_run_end,
    read_records,
    record_config,
    record_event,
    verify_chain,
)
from headwater.postgres.address import PostgresAddress
from tests.conftest import query
from tests.landing_project import landing_project


@pytest.fixture
def address(database_url) -> PostgresAddress:
    return PostgresAddress.from_url(database_url)


def labels(address: PostgresAddress) -> dict[int, str]:
    return {record.seq: record.label for record in read_records(address)}


def owner_executes(database_url: str, sql: str) -> None:
    """As the table's owner (the tests' superuser), who can change records: the chain is what shows it."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql)


def test_each_record_says_who_when_and_from_where_and_links_to_the_one_before(address, database_url):
    kinds = ["grants", "quarantine.replay", "recover"]
    written = [record_event(address, kind, {"step": number, "ratio": 1e20}) for number, kind in enumerate(kinds)]
    records = read_records(address)
    assert records == written  # what was hashed is what a reader gets back (jsonb rewrote 1e20 the same way)
    assert [(r.seq, r.kind, r.details) for r in records] == [
        (1, "grants", {"step": 0, "ratio": 10**20}), (2, "quarantine.replay", {"step": 1, "ratio": 10**20}),
        (3, "recover", {"step": 2, "ratio": 10**20})]
    assert [r.prev_hash for r in records] == [GENESIS, records[0].hash, records[1].hash]
    assert records[0].at < records[1].at < records[2].at
    [(server_now,)] = query(database_url, "select now()")
    assert abs((server_now - records[2].at).total_seconds()) < 60  # the database's clock
    first = records[0]
    assert (first.db_user, first.db_session_user, first.os_user, first.host, first.client_addr) == (
        address.user, address.user, getpass.getuser(), socket.gethostname(), "127.0.0.1")
    assert (first.deployment, first.flow_run_id) == (None, None)  # not inside a Prefect flow run
    assert first.who == f"{address.user}, os user {getpass.getuser()}"
    assert first.where == f"{socket.gethostname()}, client 127.0.0.1"

    report = verify_chain(records)
    assert (report.ok, report.count, report.first.seq, report.last.seq) == (True, 3, 1, 3)


def test_an_edited_record_is_named_and_one_rehashed_breaks_the_link_after_it(address, database_url):
    for number in range(4):
        record_event(address, "grants", {"step": number})
    names = labels(address)
    owner_executes(database_url, "update headwater_ops.audit_log set details = '{\"step\": 99}' where seq = 2")
    assert verify_chain(read_records(address)).breaks == [
        f"{names[2]} was edited: its contents no longer give its hash"]

    # An owner who also writes the edited record's new hash moves the break to the next record's link.
    edited = read_records(address)[1]
    owner_executes(database_url, f"update headwater_ops.audit_log set hash = '{edited.computed_hash}' where seq = 2")
    assert verify_chain(read_records(address)).breaks == [
        f"{names[3]} does not follow {names[2]}: the record it was chained after is gone or was changed; a record "
        "was deleted, inserted or moved here"]


def test_deleted_records_leave_a_gap_that_is_named(address, database_url):
    for number in range(5):
        record_event(address, "recover", {"step": number})
    names = labels(address)
    owner_executes(database_url, "delete from headwater_ops.audit_log where seq in (2, 3)")
    report = verify_chain(read_records(address))
    assert (report.ok, report.count) == (False, 3)
    assert report.breaks == [f"#2 to #3 deleted: missing between {names[1]} and {names[4]}"]

    owner_executes(database_url, "delete from headwater_ops.audit_log where seq = 1")
    # The first record left is #4: everything before it is one gap.
    assert verify_chain(read_records(address)).breaks == [f"#1 to #3 deleted: missing before {names[4]}"]


def test_reordered_records_are_named_with_the_record_each_followed(address, database_url):
    for number in range(4):
        record_event(address, "grants", {"step": number})
    names = labels(address)
    owner_executes(database_url, "update headwater_ops.audit_log set seq = case seq when 2 then -3 else -2 end "
                                 "where seq in (2, 3); update headwater_ops.audit_log set seq = -seq where seq < 0")
    moved = {record.seq: record.label for record in read_records(address)}  # #2 is the old #3 now
    assert verify_chain(read_records(address)).breaks == [
        f"{moved[2]} does not follow {names[1]}: it was chained after {moved[3]}; records were reordered",
        f"{moved[2]} was edited: its contents no longer give its hash",
        f"{moved[3]} does not follow {moved[2]}: it was chained after {names[1]}; records were reordered",
        f"{moved[3]} was edited: its contents no longer give its hash",
        f"{names[4]} does not follow {moved[3]}: it was chained after {moved[2]}; records were reordered",
    ]


def test_a_chain_rewritten_with_fresh_hashes_shows_against_a_hash_noted_earlier(address, database_url):
    for number in range(3):
        record_event(address, "grants", {"step": number})
    noted = read_records(address)[-1]
    assert verify_chain(read_records(address), expect=(noted.seq, noted.hash)).ok
    # The owner edits #2 and recomputes every hash from there: the chain alone is consistent again.
    owner_executes(database_url, "update headwater_ops.audit_log set details = '{\"step\": 7}' where seq = 2")
    for record in read_records(address)[1:]:
        previous = read_records(address)[record.seq - 2].hash
        rewired = dataclasses.replace(record, prev_hash=previous)
        owner_executes(database_url, f"update headwater_ops.audit_log set prev_hash = '{previous}', "
                                     f"hash = '{rewired.computed_hash}' where seq = {record.seq}")
    records = read_records(address)
    assert verify_chain(records).ok
    assert verify_chain(records, expect=(noted.seq, noted.hash)).breaks == [
        f"{records[2].label} has hash {records[2].hash}, not the {noted.hash} noted earlier: the chain was "
        "rewritten from there or before"]
    assert verify_chain(records, expect=(9, noted.hash)).breaks == [
        f"#9, expected with hash {noted.hash}, is not in the log"]


@contextmanager
def login_role(database_url: str, *privileges: str):
    """A LOGIN role of its own (unique name) with these privileges on headwater_ops.audit_log; dropped after."""
    role = f"hw_audit_{uuid.uuid4().hex[:10]}"
    server = database_url.rsplit("/", 1)[0]
    owner_executes(database_url, f"create role {role} login password 'secret-{role}'")
    try:
        owner_executes(database_url, f"grant usage on schema headwater_ops to {role}; "
                                     f"grant {', '.join(privileges)} on headwater_ops.audit_log to {role}")
        address = PostgresAddress.from_url(database_url)
        yield PostgresAddress(address.host, address.port, role, f"secret-{role}", address.database)
    finally:
        owner_executes(database_url, f"drop owned by {role}")
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"drop role {role}")


def refusal(address: PostgresAddress, sql: str) -> str:
    with psycopg.connect(address.url, autocommit=True) as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            connection.execute(sql)
    return str(refused.value).splitlines()[0]


CHANGES = ("update headwater_ops.audit_log set details = '{}'", "delete from headwater_ops.audit_log",
           "truncate headwater_ops.audit_log")


def test_a_role_that_does_not_own_the_log_appends_but_never_changes_a_record(address, database_url):
    record_event(address, "grants", {"step": 0})  # the owner creates the log
    with login_role(database_url, "select", "insert") as loader:
        appended = record_event(loader, "recover", {"source": "shop_db"})
        assert (appended.seq, appended.db_user, appended.db_session_user) == (2, loader.user, loader.user)
        assert [refusal(loader, sql) for sql in CHANGES] == ["permission denied for table audit_log"] * 3

    # Granted every privilege by mistake, it is still refused: by the trigger, whatever the grants say.
    with login_role(database_url, "all") as careless:
        assert [refusal(careless, sql) for sql in CHANGES] == [
            f"headwater_ops.audit_log is append-only: role {careless.user} may not {operation}"
            for operation in ("UPDATE", "DELETE", "TRUNCATE")]
    records = read_records(address)
    assert [(r.seq, r.kind) for r in records] == [(1, "grants"), (2, "recover")] and verify_chain(records).ok


def test_appenders_running_at_once_make_one_unbroken_chain(address):
    record_event(address, "grants", {"step": "first"})  # the log exists; the threads race on appending only
    threads, per_thread = 4, 8
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            start.wait()
            for number in range(per_thread):
                record_event(address, "run.start", {"worker": worker, "number": number})
        except BaseException as error:  # reported below, with the others
            errors.append(error)

    workers = [threading.Thread(target=append, args=(worker,)) for worker in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    records = read_records(address)
    assert [r.seq for r in records] == list(range(1, threads * per_thread + 2))
    assert sorted((r.details["worker"], r.details["number"]) for r in records[1:]) == [
        (worker, number) for worker in range(threads) for number in range(per_thread)]
    report = verify_chain(records)
    assert report.ok and report.count == threads * per_thread + 1


CONFIG = textwrap.dedent("""\
    sources:
      shop_api:
        connector: rest_api
        settings: {token: "${SHOP_API_TOKEN}"}
      shop_db:
        connector: sql_database
        settings: {credentials: "${SHOP_DB_URL}"}
    catalog: {pii_exposure: warn}
    """)
# shop_api disabled, shop_db gone, shop_files new, catalog changed.
CHANGED_CONFIG = textwrap.dedent("""\
    sources:
      shop_api:
        connector: rest_api
        enabled: false
        settings: {token: "${SHOP_API_TOKEN}"}
      shop_files:
        connector: filesystem
    catalog: {pii_exposure: fail}
    """)


def test_a_changed_config_is_recorded_once_with_what_changed_and_never_a_secret(address, database_url, tmp_path,
                                                                              monkeypatch):
    sentinel = "sentinel-secret-3f9a"
    monkeypatch.setenv("SHOP_API_TOKEN", sentinel)
    config = tmp_path / "headwater.yaml"
    config.write_text(CONFIG)
    first = record_config(address, config, run_id="run-1")
    assert first.kind == "config" and first.details["previous_sha256"] is None
    assert sorted(first.details["sections"]) == ["catalog", "sources.shop_api", "sources.shop_db"]
    assert record_config(address, config, run_id="run-2") is None  # unchanged: nothing recorded

    config.write_text(CHANGED_CONFIG)
    second = record_config(address, config, run_id="run-3")
    assert {key: second.details[key] for key in ("file", "sha256", "previous_sha256", "seen_by_run", "added",
                                                 "removed", "changed")} == {
        "file": str(config), "sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "previous_sha256": first.details["sha256"], "seen_by_run": "run-3",
        "added": ["sources.shop_files"], "removed": ["sources.shop_db"], "changed": ["catalog", "sources.shop_api"]}
    [(stored,)] = query(database_url, "select string_agg(details::text, ' ') from headwater_ops.audit_log")
    assert sentinel not in stored and "${SHOP_API_TOKEN}" not in stored


def test_a_run_end_records_its_status_rows_and_failures(address):
    from headwater.ops.history import RunInfo
    from headwater.ops.summary import RunSummary

    summary = RunSummary(run_id="r1", crash="RuntimeError: boom")
    summary.seconds = 1.23456
    audit_run_end(address, RunInfo(run_id="r1", flow_name="daily"), summary, status="failed")
    [record] = read_records(address, kind="run.end")
    assert record.details == {"run_id": "r1", "status": "failed", "seconds": 1.235, "rows_loaded": 0,
                              "failures": len(summary.failures)}
    assert summary.failures  # the crash counts as one



def test_a_killed_runs_end_is_recorded_by_the_run_that_finds_it(address):
    from headwater.ops.crashed_runs import mark_crashed_runs
    from headwater.ops.history import RunInfo, start_run

    killed = RunInfo(run_id="killed-run", flow_name="daily")
    start_run(address, killed)  # 'running', and no process holds its lock: it died
    assert [run.run_id for run in mark_crashed_runs(address, "next-run")] == ["killed-run"]
    assert mark_crashed_runs(address, "later-run") == []  # marked once, recorded once
    assert [(r.kind, r.details) for r in read_records(address)] == [
        ("run.end", {"run_id": "killed-run", "status": "crashed", "found_by_run": "next-run"})]

@pytest.mark.slow
def test_runs_record_their_start_end_full_refresh_and_a_changed_config(tmp_path, address, prefect_api,
                                                                       monkeypatch):
    landing, project = landing_project(tmp_path, {"items": "*.csv"})
    (landing / "items.csv").write_text("id,qty\n1,5\n2,7\n")
    config = project.path
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", address.url)
    from flows.daily import daily

    first = daily(full_refresh=["drops.items"])
    config.write_text(config.read_text() + "run: {lock_wait: 5m}\n")
    second = daily()

    records = read_records(address)
    assert [(r.kind, r.details.get("run_id", r.details.get("seen_by_run"))) for r in records] == [
        ("config", first.run_id), ("run.start", first.run_id), ("full_refresh", first.run_id),
        ("run.end", first.run_id), ("config", second.run_id), ("run.start", second.run_id),
        ("run.end", second.run_id)]
    # Inside the Prefect flow run: its id (the run's id) and no deployment, since the flow was called directly.
    assert [(r.flow_run_id, r.deployment, r.db_user) for r in records] == [
        (run.run_id, None, address.user) for run in (first, first, first, first, second, second, second)]
    assert records[2].details == {"run_id": first.run_id, "tables": {"drops": ["items"]}}
    assert {key: records[3].details[key] for key in ("status", "rows_loaded", "failures")} == {
        "status": "succeeded", "rows_loaded": 2, "failures": 0}
    assert records[1].details["parameters"]["full_refresh"] == ["drops.items"]
    assert records[0].details["previous_sha256"] is None
    assert {key: records[4].details[key] for key in ("previous_sha256", "added", "removed", "changed")} == {
        "previous_sha256": records[0].details["sha256"], "added": ["run"], "removed": [], "changed": []}
    assert verify_chain(records).ok
