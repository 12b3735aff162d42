"""Run history: every run leaves a record in schema headwater_ops of the destination.

A run writes a 'running' row when it starts, so a run that crashes stays visible, and everything
else (loads, checks, dbt nodes, freshness, PII exposures) in one transaction at its end. The schema
is created and migrated on first use: MIGRATIONS is append-only, each step applied once, under an
advisory lock so concurrent runs do not race.
"""

from __future__ import annotations

import getpass
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headwater import __version__
from headwater.postgres.copy_streams import OPEN_LOADS_TABLE, OPEN_REFRESHES_TABLE

if TYPE_CHECKING:
    from headwater.load.deletes import DeleteResult
    from headwater.ops.summary import RunSummary
    from headwater.postgres.address import PostgresAddress

SCHEMA = "headwater_ops"
# Never edit a released step: add a new one. Index = version - 1.
MIGRATIONS: tuple[str, ...] = (
    """
    create table headwater_ops.runs (
        run_id text primary key,
        flow_name text not null,
        parameters jsonb not null default '{}',
        started_at timestamptz not null,
        ended_at timestamptz,
        status text not null,                -- running | succeeded | failed (| crashed: see below)
        started_by text not null,            -- deployment:<name> or manual:<os user>
        headwater_version text not null,
        seconds double precision,
        rows_loaded bigint,
        failures jsonb not null default '[]'
    );
    create index runs_started_at on headwater_ops.runs (started_at desc);
    create table headwater_ops.table_loads (
        run_id text not null references headwater_ops.runs on delete cascade,
        source text not null,
        table_name text,                     -- null: the source failed before it reported tables
        rows_read bigint,
        rows_loaded bigint,
        rows_quarantined bigint,
        load_ids text[] not null default '{}',
        seconds double precision,            -- the source's load; dlt loads a source's tables together
        error text
    );
    create index table_loads_run on headwater_ops.table_loads (run_id);
    create table headwater_ops.check_results (
        run_id text not null references headwater_ops.runs on delete cascade,
        contract text not null,              -- schema.table
        check_name text not null,
        column_name text,
        measured jsonb,
        threshold text,
        outcome text not null,               -- passed | failed | warned | error
        severity text,
        message text
    );
    create index check_results_run on headwater_ops.check_results (run_id);
    create table headwater_ops.dbt_nodes (
        run_id text not null references headwater_ops.runs on delete cascade,
        unique_id text not null,
        name text not null,
        resource_type text not null,
        status text not null,
        seconds double precision,
        rows_affected bigint,
        message text
    );
    create index dbt_nodes_run on headwater_ops.dbt_nodes (run_id);
    create table headwater_ops.freshness (
        run_id text not null references headwater_ops.runs on delete cascade,
        source text not null,
        table_name text not null,
        basis text not null,                 -- cursor:<column> or load
        last_value timestamptz,
        age_seconds double precision,
        warn_after_seconds double precision,
        error_after_seconds double precision,
        status text not null,                -- pass | warn | error
        breached boolean not null,
        checked_at timestamptz not null
    );
    create index freshness_run on headwater_ops.freshness (run_id);
    """,
    """
    -- Raw tables loaded by a run whose rows did not reach published marts (headwater.ops.pending).
    create table headwater_ops.pending_rebuilds (
        schema_name text not null,
        table_name text not null,
        since_run text not null,
        since timestamptz not null default now(),
        primary key (schema_name, table_name)
    )
    """,
    """
    -- Published columns carrying declared PII unmasked, found by the run's lineage (headwater.lineage.pii).
    create table headwater_ops.pii_exposures (
        run_id text not null references headwater_ops.runs on delete cascade,
        mart_column text not null,           -- schema.table.column
        sources jsonb not null,              -- declared PII columns it carries: ["raw_shop_db.customers.email"]
        path jsonb not null,                 -- one unmasked path, source first
        action text not null,                -- catalog.pii_exposure: warn | fail
        fix text,
        recorded_at timestamptz not null default now()
    );
    create index pii_exposures_run on headwater_ops.pii_exposures (run_id)
    """,
    """
    -- Every landing file a run read, with its line accounting (headwater.common.file_rows), and every column
    -- whose type a load widened (headwater.common.widening).
    create table headwater_ops.file_loads (
        run_id text not null references headwater_ops.runs on delete cascade,
        source text not null,
        table_name text not null,
        file_name text not null,
        modified_at timestamptz,
        format text,
        status text not null,                -- loaded | empty | header only | unreadable
        lines bigint,                        -- lines in the file (Parquet: rows)
        rows_read bigint,                    -- records handed on to the table
        rows_rejected bigint,                -- records the reader quarantined
        lines_skipped bigint,                -- preamble, header, blank and comment lines
        rows_padded bigint,                  -- records shorter than the header, completed with nulls
        dialect text,
        reason text,
        notes jsonb not null default '[]'
    );
    create index file_loads_run on headwater_ops.file_loads (run_id);
    create table headwater_ops.column_widenings (
        run_id text not null references headwater_ops.runs on delete cascade,
        source text not null,
        table_name text not null,
        column_name text not null,
        type_before text not null,
        type_after text not null
    );
    create index column_widenings_run on headwater_ops.column_widenings (run_id)
    """,
    """
    -- Rows whose key was gone from the source, per table load with `deletes:` (headwater.load.deletes).
    alter table headwater_ops.table_loads
        add column deletes_action text,          -- removed | flagged | retired; null: deletes not compared
        add column rows_deleted bigint,          -- rows removed or flagged, current versions retired
        add column rows_restored bigint,         -- flagged rows whose key came back: flag cleared
        add column source_keys bigint,           -- keys read from the source to compare
        add column deletes_seconds double precision,
        add column deletes_error text            -- the comparison failed and changed nothing
    """,
    """
    -- A source a run did not load because another run held it (headwater.load.source_lock); runs.status
    -- gains 'crashed': a later run found the run gone without finishing (headwater.ops.crashed_runs).
    alter table headwater_ops.table_loads add column skipped text
    """,
    """
    -- The audit trail (headwater.ops.audit): append-only for every role but the owner, each record chained to
    -- the one before by hash. Numbered last + 1 under a lock, so a deleted record leaves a gap.
    create table headwater_ops.audit_log (
        seq bigint primary key,
        at timestamptz not null,             -- the database's clock
        db_user text not null,               -- current_user
        db_session_user text not null,       -- session_user
        os_user text,
        host text,                           -- host name of the machine that wrote the record
        client_addr text,                    -- inet_client_addr() as the database saw it; null over a socket
        deployment text,                     -- Prefect deployment, inside a flow run
        flow_run_id text,                    -- Prefect flow run, inside one
        kind text not null,                  -- run.start | run.end | config | full_refresh | backfill | ...
        details jsonb not null,
        prev_hash text not null unique,      -- unique: two records can never follow the same one (no fork)
        hash text not null
    );
    create index audit_log_kind on headwater_ops.audit_log (kind, seq);
    -- search_path pinned: a role that may create functions elsewhere cannot put its own pg_has_role first.
    create function headwater_ops.audit_log_append_only() returns trigger language plpgsql
        set search_path = pg_catalog, pg_temp as $$
    begin
        if not pg_catalog.pg_has_role(current_user, (select c.relowner from pg_catalog.pg_class c
                                                     where c.oid = TG_RELID), 'USAGE') then
            raise exception 'headwater_ops.audit_log is append-only: role % may not %', current_user, TG_OP
                using errcode = 'insufficient_privilege',
                      hint = 'Only the owner of the table can change records, and the hash chain shows it.';
        end if;
        if TG_OP = 'DELETE' then
            return old;
        end if;
        return new;
    end
    $$;
    create trigger audit_log_append_only before update or delete on headwater_ops.audit_log
        for each row execute function headwater_ops.audit_log_append_only();
    create trigger audit_log_no_truncate before truncate on headwater_ops.audit_log
        for each statement execute function headwater_ops.audit_log_append_only();
    revoke update, delete, truncate on headwater_ops.audit_log from public
    """,
    """
    -- Each pending mark numbered anew whenever a load marks its table again: a build forgets only the marks it
    -- read, so rows a load committed while the build ran stay pending (headwater.ops.pending).
    create sequence headwater_ops.pending_marks;
    alter table headwater_ops.pending_rebuilds
        add column mark bigint not null default nextval('headwater_ops.pending_marks')
    """,
    # headwater_ops.open_loads: a copy job creates it too when a load runs before any run record.
    OPEN_LOADS_TABLE,
    # headwater_ops.open_refreshes: a full refresh passed through creates it too when it runs before any run record.
    OPEN_REFRESHES_TABLE,
    # Every batch of `headwater stream` (headwater.ops.stream_batches).
    """
    create table headwater_ops.stream_batches (
        run_id text not null,                -- the stream's run in headwater_ops.runs
        source text not null,
        batch bigint not null,               -- 1, 2, ... within the run
        started_at timestamptz not null,
        seconds double precision not null,
        rows_loaded bigint not null,
        rows_quarantined bigint not null,
        tables jsonb not null default '{}',  -- table -> rows loaded
        lag jsonb,                           -- the feed's lag after the batch, as its connector reports it:
                                             -- lag_bytes, retained_wal_bytes, behind_seconds
        error text,
        primary key (run_id, batch)
    );
    create index stream_batches_source on headwater_ops.stream_batches (source, started_at desc)
    """,
)


@dataclass
class RunInfo:
    """Who and what started a run; filled from the Prefect run context when there is one."""

    run_id: str
    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    started_by: str = "manual"
    version: str = __version__

    @classmethod
    def current(cls, flow_name: str) -> "RunInfo":
        """The running Prefect flow run (its id becomes the run id), or a fresh uuid outside Prefect."""
        run_id, parameters, deployment = None, {}, None
        try:
            from prefect.runtime import flow_run

            run_id, parameters, deployment = flow_run.id, dict(flow_run.parameters or {}), prefect_deployment_name()
        except Exception:  # not inside a flow run
            pass
        try:
            user = getpass.getuser()
        except Exception:  # no user name in some containers
            user = "unknown"
        return cls(
            run_id=str(run_id or uuid.uuid4()),
            flow_name=flow_name,
            parameters=parameters,
            started_by=f"deployment:{deployment}" if deployment else f"manual:{user}",
        )


def prefect_deployment_name() -> str | None:
    """The deployment of the Prefect flow run this process is in; None for a run started from the shell.

    Read from the run's context first: `prefect.runtime.deployment.name` asks the API for the flow run on
    every read (it looks for the deployment id on the context, not on the context's flow run), a round trip
    each time the run's records name who started it.
    """
    from prefect.context import FlowRunContext
    from prefect.runtime import deployment

    flow_run = getattr(FlowRunContext.get(), "flow_run", None)
    if flow_run is not None and flow_run.deployment_id is None:
        return None
    return deployment.name  # Prefect caches the deployment it reads


def ensure_schema(connection) -> int:
    """Create or migrate headwater_ops in the connection's transaction; returns the schema version.

    Every write of a run's records calls it: when the schema is current (almost always), two queries and no
    lock; else the migration lock, and the version read again under it.
    """
    if connection.execute(f"select to_regclass('{SCHEMA}.schema_version')").fetchone()[0] is not None:
        current = connection.execute(f"select coalesce(max(version), 0) from {SCHEMA}.schema_version").fetchone()[0]
        if current >= len(MIGRATIONS):
            return len(MIGRATIONS)
    connection.execute("select pg_advisory_xact_lock(hashtext('headwater_ops'))")
    connection.execute(f"create schema if not exists {SCHEMA}")
    connection.execute(
        f"create table if not exists {SCHEMA}.schema_version "
        "(version integer primary key, applied_at timestamptz not null default now())"
    )
    current = connection.execute(f"select coalesce(max(version), 0) from {SCHEMA}.schema_version").fetchone()[0]
    for version in range(current + 1, len(MIGRATIONS) + 1):
        connection.execute(MIGRATIONS[version - 1])
        connection.execute(f"insert into {SCHEMA}.schema_version (version) values (%s)", (version,))
    return len(MIGRATIONS)


def start_run(address: "PostgresAddress", run: RunInfo) -> None:
    """Record the run as 'running' before anything else happens."""
    with address.connect() as connection:
        write_running(connection, run)


def write_running(connection, run: RunInfo) -> None:
    """`start_run` in the connection's transaction (headwater.ops.audit.begin_run adds the audit record to it)."""
    ensure_schema(connection)
    connection.execute(
        f"insert into {SCHEMA}.runs (run_id, flow_name, parameters, started_at, status, started_by, "
        "headwater_version) values (%s, %s, %s, %s, 'running', %s, %s) on conflict (run_id) do nothing",
        (run.run_id, run.flow_name, _json(run.parameters), run.started_at, run.started_by, run.version),
    )


def record_run(address: "PostgresAddress", summary: "RunSummary", run: RunInfo, status: str | None = None) -> None:
    """Write the finished run and everything it did in one transaction (replacing a retry's earlier record)."""
    with address.connect() as connection:
        write_record(connection, summary, run, status)


def write_record(connection, summary: "RunSummary", run: RunInfo, status: str | None = None) -> None:
    """`record_run` in the connection's transaction (headwater.ops.audit.end_run adds the audit record to it)."""
    status = status or ("succeeded" if summary.ok else "failed")
    rows = sum(table.rows for load in summary.loads for table in load.tables)
    with connection.cursor() as cursor:
        ensure_schema(connection)
        cursor.execute(
            f"insert into {SCHEMA}.runs (run_id, flow_name, parameters, started_at, ended_at, status, started_by, "
            "headwater_version, seconds, rows_loaded, failures) values (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, %s) "
            "on conflict (run_id) do update set ended_at = now(), status = excluded.status, "
            "seconds = excluded.seconds, rows_loaded = excluded.rows_loaded, failures = excluded.failures",
            (run.run_id, run.flow_name, _json(run.parameters), run.started_at, status, run.started_by, run.version,
             summary.seconds, rows, _json(summary.failures)),
        )
        # A retry of the same flow run replaces what the first attempt recorded: one statement, one round trip.
        cursor.execute("with " + ", ".join(
            f"{table} as (delete from {SCHEMA}.{table} where run_id = %(run_id)s)"
            for table in ("table_loads", "check_results", "dbt_nodes", "freshness", "pii_exposures", "file_loads",
                          "column_widenings")) + " select 1", {"run_id": run.run_id})
        cursor.executemany(
            f"insert into {SCHEMA}.table_loads (run_id, source, table_name, rows_read, rows_loaded, rows_quarantined, "
            "load_ids, seconds, error, deletes_action, rows_deleted, rows_restored, source_keys, deletes_seconds, "
            "deletes_error, skipped) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            _load_rows(run, summary),
        )
        cursor.executemany(
            f"insert into {SCHEMA}.check_results values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            _check_rows(run, summary),
        )
        cursor.executemany(
            f"insert into {SCHEMA}.file_loads values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            _file_rows(run, summary),
        )
        cursor.executemany(
            f"insert into {SCHEMA}.column_widenings values (%s, %s, %s, %s, %s, %s)",
            [(run.run_id, load.source, table.table, w.column, w.before, w.after)
             for load in summary.loads for table in load.tables for w in table.widened],
        )
        if summary.dbt is not None:
            cursor.executemany(
                f"insert into {SCHEMA}.dbt_nodes values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(run.run_id, n.unique_id, n.name, n.resource_type, n.status, n.execution_time, n.rows_affected,
                  n.message) for n in summary.dbt.nodes],
            )
        cursor.executemany(
            f"insert into {SCHEMA}.freshness values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(run.run_id, f.source, f.table, f.basis, f.last_value, f.age_seconds, f.warn_after_seconds,
              f.error_after_seconds, f.status, f.breached, f.checked_at) for f in summary.freshness],
        )
        cursor.executemany(
            f"insert into {SCHEMA}.pii_exposures (run_id, mart_column, sources, path, action, fix) "
            "values (%s, %s, %s, %s, %s, %s)",
            [(run.run_id, str(e.column), _json([str(s) for s in e.sources]), _json([str(s) for s in e.path]),
              summary.pii_action, e.fix) for e in summary.pii],
        )


def _load_rows(run: RunInfo, summary: "RunSummary") -> list[tuple]:
    rows = []
    for load in summary.loads:
        if not load.tables:
            rows.append((run.run_id, load.source, None, None, None, None, load.load_ids, load.seconds, load.error,
                         *_NO_DELETES, load.skipped))
        for table in load.tables:
            rows.append((run.run_id, load.source, table.table, table.read, table.loaded, table.quarantined,
                         load.load_ids, load.seconds, load.error, *_deletes_columns(table.deletes), None))
    return rows


def _file_rows(run: RunInfo, summary: "RunSummary") -> list[tuple]:
    rows = []
    for load in summary.loads:
        for table in load.tables:
            for f in table.files:
                rows.append((run.run_id, load.source, table.table, f.get("file"), f.get("modified_at"), f.get("format"),
                             f.get("status"), f.get("lines"), f.get("rows"), f.get("rejected"), f.get("skipped"),
                             f.get("padded"), f.get("dialect"), f.get("reason"), _json(f.get("notes") or [])))
    return rows


_NO_DELETES = (None,) * 6


def _deletes_columns(deletes: "DeleteResult | None") -> tuple:
    if deletes is None:
        return _NO_DELETES
    return (deletes.action, deletes.rows, deletes.restored, deletes.source_keys, deletes.seconds, deletes.error)


def _check_rows(run: RunInfo, summary: "RunSummary") -> list[tuple]:
    rows = []
    for contract in summary.contracts:
        name = f"{contract.schema}.{contract.table}"
        if contract.error and not contract.checks:  # the contract could not run at all: keep why
            rows.append((run.run_id, name, "contract", None, None, None, "error", None, contract.error))
        for check in contract.checks:
            rows.append((run.run_id, name, check.name, check.column, _json(check.measured), check.threshold,
                         check.outcome, getattr(check, "severity", None), getattr(check, "title", None)))
    return rows


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)
