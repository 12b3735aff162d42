"""The audit trail: who changed what on the platform, when and from where, in headwater_ops.audit_log.

One record per event: a run's start and end, the full refresh or backfill it was asked for, a changed
headwater.yaml, a quarantine replay, a recover, a change of grants. Every role but the table's owner
may only append (a trigger refuses UPDATE, DELETE and TRUNCATE), so a leaked loader credential cannot
rewrite history. The owner still can, which is why each record carries the hash of the one before it:
an edited, deleted, inserted or reordered record breaks the chain, and `verify_chain` says where.

A record's hash is the SHA-256 of its canonical form (`canonical_text`): a JSON object of every column
but `hash`, keys sorted, no spaces, `at` in UTC as 2026-01-31T06:00:00.123456Z. Anyone can recompute it
from the rows alone. Appends take a transaction-level advisory lock and number records last + 1, so two
processes appending at once never fork the chain and the numbers have no gaps a deletion could hide in.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.common.yaml_source import YamlSyntaxError, read_yaml
from headwater.ops.history import SCHEMA, ensure_schema, prefect_deployment_name, write_record, write_running
from headwater.postgres.advisory_locks import lock_key

if TYPE_CHECKING:
    from headwater.load.recovery import Discarded, PendingLoads, Recovery
    from headwater.load.reload import Reload
    from headwater.load.replay import TableReplay
    from headwater.ops.history import RunInfo
    from headwater.ops.summary import RunSummary
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig
    from headwater.quarantine.selection import Selection

TABLE = f"{SCHEMA}.audit_log"
GENESIS = "0" * 64  # the prev_hash of record #1
SECTION_DIGEST_CHARACTERS = 16  # enough to tell that a section changed; the file's own hash is the full one
_APPEND_LOCK = lock_key("headwater_ops.audit_log append")

# The kinds Headwater records; record_event takes others too (a plugin's or an operator's own).
KINDS = ("run.start", "run.end", "config", "full_refresh", "backfill", "quarantine.replay", "recover", "grants")


@dataclass(frozen=True)
class AuditRecord:
    """One row of headwater_ops.audit_log; the attribute names are its column names."""

    seq: int
    at: datetime
    db_user: str  # current_user: the role the statement ran as (after any SET ROLE)
    db_session_user: str  # session_user: the role that logged in
    os_user: str | None
    host: str | None  # the machine the record came from (its own host name)
    client_addr: str | None  # the address the database saw it connect from; None over a Unix socket
    deployment: str | None  # inside a Prefect flow run: its deployment, if it has one
    flow_run_id: str | None  # inside a Prefect flow run: its id
    kind: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def computed_hash(self) -> str:
        """The hash the record's contents give now; differs from `hash` once the contents were edited."""
        return hashlib.sha256(canonical_text(self).encode("utf-8")).hexdigest()

    @property
    def who(self) -> str:
        user = self.db_user if self.db_user == self.db_session_user else f"{self.db_session_user} as {self.db_user}"
        parts = [user] + ([f"os user {self.os_user}"] if self.os_user else [])
        parts += [f"deployment {self.deployment}"] if self.deployment else []
        parts += [f"flow run {self.flow_run_id}"] if self.flow_run_id else []
        return ", ".join(parts)

    @property
    def where(self) -> str:
        return ", ".join(part for part in (self.host, self.client_addr and f"client {self.client_addr}") if part)

    @property
    def label(self) -> str:
        """How a message names the record: #7 (run.end at 2026-01-31 06:00:12 UTC)."""
        return f"#{self.seq} ({self.kind} at {self.at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"


COLUMNS = tuple(column.name for column in fields(AuditRecord))


def canonical_text(record: AuditRecord) -> str:
    """What a record's hash is computed over: every column but `hash`, as compact JSON with sorted keys."""
    values = {name: value for name, value in asdict(record).items() if name != "hash"}
    values["at"] = record.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Actor:
    """Who this process is and where it runs, beyond what the database itself knows (its user, client address)."""

    os_user: str | None
    host: str | None
    deployment: str | None
    flow_run_id: str | None


def current_actor() -> Actor:
    deployment, flow_run_id = _prefect_run()
    try:
        os_user = getpass.getuser()
    except Exception:  # no user name in some containers
        os_user = None
    return Actor(os_user=os_user, host=socket.gethostname() or None, deployment=deployment, flow_run_id=flow_run_id)


def _prefect_run() -> tuple[str | None, str | None]:
    """(deployment name, flow run id) of the Prefect flow run this process is in, else (None, None)."""
    if "prefect" not in sys.modules:  # nothing imported Prefect: no flow run, and no reason to import it here
        return None, None
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
        return (prefect_deployment_name() if run_id else None), (str(run_id) if run_id else None)
    except Exception:  # Prefect without a run context or without its API: outside a flow run as far as we know
        return None, None


class _Chain:
    """The audit log inside one transaction that holds the append lock: each append links to the last record."""

    def __init__(self, connection, actor: Actor):
        self.connection = connection
        self.actor = actor
        connection.execute("select pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
        last = connection.execute(f"select seq, hash from {TABLE} order by seq desc limit 1").fetchone()
        self.seq, self.head = last if last else (0, GENESIS)

    def append(self, kind: str, details: dict[str, Any]) -> AuditRecord:
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(f"an audit record needs a kind (such as {', '.join(KINDS)}), got {kind!r}")
        # The database's clock and users, and the details as jsonb gives them back: the hash is computed over
        # exactly what a reader of the row will see (jsonb rewrites numbers such as 1e20).
        at, db_user, db_session_user, client_addr, stored = self.connection.execute(
            "select clock_timestamp(), current_user::text, session_user::text, host(inet_client_addr()), %s::jsonb",
            (_json(details),)).fetchone()
        unhashed = AuditRecord(self.seq + 1, at, db_user, db_session_user, self.actor.os_user, self.actor.host,
                               client_addr, self.actor.deployment, self.actor.flow_run_id, kind, stored, self.head, "")
        record = replace(unhashed, hash=unhashed.computed_hash)
        values = [_json(value) if name == "details" else value for name, value in asdict(record).items()]
        self.connection.execute(
            f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('%s' for _ in COLUMNS)})", values)
        self.seq, self.head = record.seq, record.hash
        return record

    def last_details(self, kind: str) -> dict[str, Any] | None:
        row = self.connection.execute(f"select details from {TABLE} where kind = %s order by seq desc limit 1",
                                      (kind,)).fetchone()
        return row[0] if row else None


@contextmanager
def _appending(address: "PostgresAddress") -> Iterator[_Chain]:
    """One transaction that appends to the chain; committed when the block ends, rolled back if it raises."""
    with address.connect() as connection:
        yield _chain_on(connection)


def _chain_on(connection) -> _Chain:
    """The chain, appended to in the connection's transaction (the schema created first when missing)."""
    # Migrating takes CREATE on the database; a role granted only INSERT and SELECT here can still append.
    if connection.execute("select to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        ensure_schema(connection)
    return _Chain(connection, current_actor())


def record_event(address: "PostgresAddress", kind: str, details: dict[str, Any]) -> AuditRecord:
    """Append one record to the audit log and return it. ``details`` is JSON: never put secret values in it."""
    with _appending(address) as chain:
        return chain.append(kind, details)


def begin_run(address: "PostgresAddress", project: "ProjectConfig", run: "RunInfo", reload: "Reload") -> None:
    """The run's 'running' row (headwater.ops.history) and its start in the audit trail, in one transaction:
    one connection and one commit where a run's start took two."""
    with address.connect() as connection:
        write_running(connection, run)
        _append_run_start(_chain_on(connection), project, run, reload)


def end_run(address: "PostgresAddress", run: "RunInfo", summary: "RunSummary", status: str | None = None) -> None:
    """The run's record with everything it did (headwater.ops.history) and its end in the audit trail, in one
    transaction."""
    with address.connect() as connection:
        write_record(connection, summary, run, status)
        _chain_on(connection).append("run.end", _run_end(run, summary, status))


def audit_run_start(address: "PostgresAddress", project: "ProjectConfig", run: "RunInfo", reload: "Reload") -> None:
    """A run begins: headwater.yaml if it changed since the last record, the run, its full refresh and backfill."""
    with _appending(address) as chain:
        _append_run_start(chain, project, run, reload)


def _append_run_start(chain: _Chain, project: "ProjectConfig", run: "RunInfo", reload: "Reload") -> None:
    _record_config(chain, project.path, run.run_id)
    chain.append("run.start", {"run_id": run.run_id, "flow": run.flow_name, "parameters": run.parameters,
                               "started_by": run.started_by, "headwater_version": run.version})
    if reload.full_refresh:
        chain.append("full_refresh", {"run_id": run.run_id, "tables": {
            source: sorted(tables) or "all" for source, tables in sorted(reload.full_refresh.items())}})
    if reload.backfills:
        chain.append("backfill", {"run_id": run.run_id, "since": _shown(reload.since),
                                  "until": _shown(reload.until)})


def audit_run_end(address: "PostgresAddress", run: "RunInfo", summary: "RunSummary", status: str | None = None) -> None:
    """A run ends: its status (succeeded, failed), how long it took, rows loaded and how many failures."""
    record_event(address, "run.end", _run_end(run, summary, status))


def _run_end(run: "RunInfo", summary: "RunSummary", status: str | None) -> dict[str, Any]:
    return {"run_id": run.run_id, "status": status or ("succeeded" if summary.ok else "failed"),
            "seconds": round(summary.seconds, 3),
            "rows_loaded": sum(table.rows for load in summary.loads for table in load.tables),
            "failures": len(summary.failures)}


def audit_replay(address: "PostgresAddress", source: str, table: str | None, selection: "Selection",
                 edits: dict[str, str], results: "list[TableReplay]") -> AuditRecord:
    """`headwater quarantine replay`: what was picked and what each table made of it.

    Of --where and --set only the field names are kept: their values may be personal data.
    """
    return record_event(address, "quarantine.replay", {
        "source": source, "table": table or None, "rule": selection.rule, "locations": list(selection.locations),
        "where_fields": [name for name, _ in selection.fields], "set_fields": sorted(edits),
        "tables": {result.table: {"replayed": result.replayed, "superseded": result.superseded,
                                  "still_quarantined": result.still_quarantined, "skipped": result.skipped}
                   for result in results}})


def audit_recover(address: "PostgresAddress", source: str, pending: "PendingLoads", *,
                  recovered: "Recovery | None" = None, discarded: "Discarded | None" = None,
                  failed: BaseException | None = None) -> AuditRecord:
    """`headwater recover`: the pending loads of a source, and whether they were loaded, discarded or failed again.

    A failure is kept as its kind only: its message may quote the rows it failed on.
    """
    details: dict[str, Any] = {"source": source, "load_ids": pending.load_ids,
                               "pending_rows": {entry.table: entry.rows for entry in pending.tables}}
    if discarded is not None:
        deleted: dict[str, int] = {}
        for _, table, rows in discarded.deleted:
            deleted[table] = deleted.get(table, 0) + rows
        details.update(outcome="discarded", rows_deleted=deleted, cursors_restored=discarded.state_restored)
    elif recovered is not None:
        quarantined = {refused.table: refused.rows for refused in recovered.set_aside}
        loaded = {table: rows - quarantined.get(table, 0) for table, rows in recovered.row_counts.items()}
        details.update(outcome="loaded", rows_loaded=loaded, quarantined=quarantined)
    else:
        details.update(outcome="failed", error=type(failed).__name__ if failed else None)
    return record_event(address, "recover", details)


def record_config(address: "PostgresAddress", path: Path, run_id: str | None = None) -> AuditRecord | None:
    """Record headwater.yaml's hash if it differs from the last one recorded; returns the record, or None."""
    with _appending(address) as chain:
        return _record_config(chain, path, run_id)


def _record_config(chain: _Chain, path: Path, run_id: str | None) -> AuditRecord | None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    previous = chain.last_details("config")
    if previous is not None and previous.get("sha256") == digest:
        return None
    sections = config_sections(path)
    details: dict[str, Any] = {"file": str(path), "sha256": digest, "seen_by_run": run_id,
                               "previous_sha256": previous.get("sha256") if previous else None}
    if previous is not None:
        details.update(section_changes(previous.get("sections") or {}, sections))
    details["sections"] = sections
    return chain.append("config", details)


def config_sections(path: Path) -> dict[str, str]:
    """A short digest per top-level key of the file, and per source under `sources:` (`sources.<name>`).

    The file as written is read, not the resolved settings: `${NAME}` references stay references, so no
    secret value is ever digested or recorded. Empty when the file cannot be read as YAML any more.
    """
    try:
        data = read_yaml(path).data
    except YamlSyntaxError:
        return {}
    if not isinstance(data, dict):
        return {}
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key == "sources" and isinstance(value, dict):
            sections.update({f"sources.{name}": source for name, source in value.items()})
        else:
            sections[str(key)] = value
    return {name: _digest(value) for name, value in sorted(sections.items())}


def section_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Which sections were added, removed or changed between two `config_sections`."""
    return {"added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(name for name in after.keys() & before.keys() if after[name] != before[name])}


def _digest(value: Any) -> str:
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:SECTION_DIGEST_CHARACTERS]


def _plain(value: Any) -> Any:
    """YAML values with every mapping key as text, so that keys of mixed kinds sort."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def read_records(address: "PostgresAddress", kind: str | None = None, limit: int | None = None
                 ) -> list[AuditRecord] | None:
    """Records in sequence order (with ``limit``, the newest ``limit``); None when no audit log exists yet."""
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        if connection.execute(f"select to_regclass('{TABLE}')").fetchone()[0] is None:
            return None
        rows = connection.execute(
            f"select {', '.join(COLUMNS)} from {TABLE} where %(kind)s::text is null or kind = %(kind)s "
            "order by seq desc limit %(limit)s", {"kind": kind, "limit": limit}).fetchall()
    return [AuditRecord(*row) for row in reversed(rows)]


@dataclass
class ChainReport:
    """What `verify_chain` found: how many records, their range, and each break in words."""

    count: int = 0
    first: AuditRecord | None = None
    last: AuditRecord | None = None
    breaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify_chain(records: Iterable[AuditRecord], expect: tuple[int, str] | None = None) -> ChainReport:
    """Walk the records in sequence order: every record's hash, every link to the one before, no gaps.

    ``expect`` is (seq, hash) noted down earlier, elsewhere: it catches an owner who rewrote the chain
    from some record on with freshly computed hashes, which leaves the chain itself consistent.
    """
    records = list(records)
    report = ChainReport(count=len(records), first=records[0] if records else None,
                         last=records[-1] if records else None)
    by_hash = {record.hash: record for record in records}
    previous = None
    for record in records:
        report.breaks += _link_breaks(previous, record, by_hash)
        if record.computed_hash != record.hash:
            report.breaks.append(f"{record.label} was edited: its contents no longer give its hash")
        previous = record
    if expect is not None:
        report.breaks += _expectation_breaks(records, *expect)
    return report


def _link_breaks(previous: AuditRecord | None, record: AuditRecord, by_hash: dict[str, AuditRecord]) -> list[str]:
    expected_seq = previous.seq + 1 if previous else 1
    if record.seq > expected_seq:
        missing = f"#{expected_seq}" if record.seq == expected_seq + 1 else f"#{expected_seq} to #{record.seq - 1}"
        between = f"between {previous.label} and {record.label}" if previous else f"before {record.label}"
        return [f"{missing} deleted: missing {between}"]
    expected_prev = previous.hash if previous else GENESIS
    if record.prev_hash == expected_prev:
        return []
    after = f"does not follow {previous.label}" if previous else "is not the first record of the chain"
    linked = by_hash.get(record.prev_hash)
    if linked is not None and linked is not record:
        return [f"{record.label} {after}: it was chained after {linked.label}; records were reordered"]
    if record.prev_hash == GENESIS:
        return [f"{record.label} {after}: it claims to be the first record; it was inserted or its links rewritten"]
    return [f"{record.label} {after}: the record it was chained after is gone or was changed; a record was "
            "deleted, inserted or moved here"]


def _expectation_breaks(records: list[AuditRecord], seq: int, expected: str) -> list[str]:
    record = next((record for record in records if record.seq == seq), None)
    if record is None:
        return [f"#{seq}, expected with hash {expected}, is not in the log"]
    if record.hash != expected:
        return [f"{record.label} has hash {record.hash}, not the {expected} noted earlier: the chain was rewritten "
                "from there or before"]
    return []


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False)
