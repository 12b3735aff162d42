"""The record of one run and the table people read at the end of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.common.file_rows import NO_MATCH
from headwater.load.pipeline import SourceLoad, TableLoad
from headwater.quarantine.naming import quarantine_table_name

if TYPE_CHECKING:
    from headwater.lineage.pii import PiiExposure
    from headwater.marts.publish import PublishResult
    from headwater.marts.quality import ContractResult
    from headwater.marts.rebuild import RebuildPlan
    from headwater.marts.transform import DbtRunResult
    from headwater.ops.freshness import FreshnessResult


@dataclass
class RunSummary:
    loads: list[SourceLoad] = field(default_factory=list)
    dbt: "DbtRunResult | None" = None
    contracts: list["ContractResult"] = field(default_factory=list)
    seconds: float = 0.0
    destination: str = ""  # masked URL
    embedded: bool = False
    rebuild: "RebuildPlan | None" = None  # what dbt was asked to build, which sources were held back
    publish: "PublishResult | None" = None  # mart contracts verified in audit, what was published or why not
    run_id: str = ""  # the Prefect flow run id, or a uuid outside Prefect (headwater.ops.history)
    freshness: list["FreshnessResult"] = field(default_factory=list)
    crash: str | None = None  # an unexpected error that ended the run early
    pii: list["PiiExposure"] = field(default_factory=list)  # published columns carrying unmasked PII
    pii_action: str = "warn"  # catalog.pii_exposure: warn reports them, fail also fails the run
    lineage_error: str | None = None  # lineage could not be built, so PII exposure was not checked
    contract_tables: set = field(default_factory=set)  # (schema, table) of every contract the project has
    site: Path | None = None  # the catalog site's index.html (catalog.site_after_run)
    site_error: str | None = None  # the catalog site could not be written
    crashed_runs: list = field(default_factory=list)  # ops.crashed_runs.CrashedRun: earlier runs found dead
    build_skipped: str | None = None  # why dbt and publish did not run (another run held the marts)
    marts_left: str | None = None  # a run that builds no marts by design says where they build (flows.source/build)
    roles: str | None = None  # with `grants:`: the roles the steps ran as, or why they ran as the URL's user
    reader_grants: str | None = None  # with `grants:`: what the reader role may read of the published marts
    reader_grants_error: str | None = None  # the reader's mart grants could not be set

    @property
    def failures(self) -> list[str]:
        """One line per failed step; empty when the run succeeded."""
        problems = [f"run crashed: {self.crash}"] if self.crash else []
        problems += [f"load {load.source}: {load.error}" for load in self.loads if not load.ok]
        problems += [f"deletes {load.source}.{table.table}: {table.deletes.error}" for load in self.loads
                     for table in load.tables if table.deletes and table.deletes.error]
        if self.dbt is not None and not self.dbt.success:
            failed = ", ".join(node.name for node in self.dbt.failed_nodes) or self.dbt.error or "see dbt log"
            problems.append(f"dbt build: {failed}")
        for contract in self.contracts:
            if not contract.passed:
                failed_checks = [check.name for check in contract.checks if check.outcome == "failed"]
                reason = contract.error or ", ".join(failed_checks)
                problems.append(f"contract {contract.schema}.{contract.table}: {reason}")
        if self.rebuild is not None:
            problems += [f"held back {held.source}: {held.reason}" for held in self.rebuild.held_back]
        if self.publish is not None and not self.publish.ok:
            problems.append(f"not published {', '.join(self.publish.withheld) or 'marts'}: {self.publish.reason}")
        # A warn-level breach is reported, only error_after fails the run (like dbt source freshness).
        problems += [f"freshness {result.message()}" for result in self.freshness if result.status == "error"]
        if self.pii_action == "fail":
            problems += [f"PII exposed: {exposure.column} (from {', '.join(map(str, exposure.sources))})"
                         for exposure in self.pii]
            if self.lineage_error:  # with `fail`, an unchecked run is not a passed check
                problems.append(f"lineage could not be built: {self.lineage_error} (PII exposure not checked)")
        if self.reader_grants_error:
            problems.append(f"reader grants on the marts could not be set: {self.reader_grants_error} "
                            "(run `headwater db grants`)")
        return problems

    @property
    def ok(self) -> bool:
        return not self.failures

    def rows_loaded(self, source: str, table: str) -> int | None:
        for load in self.loads:
            if load.source == source:
                for table_load in load.tables:
                    if table_load.table == table:
                        return table_load.rows
        return None

    def contract_for(self, schema: str, table: str) -> "ContractResult | None":
        for contract in self.contracts:
            if contract.schema == schema and contract.table == table:
                return contract
        return None


def _contract_cell(contract: "ContractResult | None", skipped: bool = False) -> str:
    if contract is None:
        return "[dim]skipped (no new rows)[/dim]" if skipped else "[dim]no contract[/dim]"
    total = len(contract.checks)
    if contract.passed:
        return f"[green]passed[/green] {total}/{total}"
    if contract.error:
        return f"[red]error[/red] {contract.error}"
    failed = [check.name for check in contract.checks if check.outcome == "failed"]
    return f"[red]failed[/red] {total - len(failed)}/{total}: {', '.join(failed)}"


def _rows_cell(load: TableLoad) -> str:
    # Every row read was loaded or quarantined; quarantined rows are flagged so they are not missed.
    quarantined = f"[yellow]{load.quarantined:,}[/yellow]" if load.quarantined else "0"
    return f"{load.read:,} / {load.loaded:,} / {quarantined}"


def summary_table(summary: RunSummary) -> Table:
    table = Table(title="Headwater run", title_justify="left")
    table.add_column("step")
    table.add_column("table")
    table.add_column("read / loaded / quarantined", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("contract")
    for load in summary.loads:
        if not load.ok:
            table.add_row(f"load {load.source}", load.dataset, "-", f"{load.seconds:.1f}s", f"[red]{load.error}[/red]")
            continue
        if load.skipped:
            table.add_row(f"load {load.source}", load.dataset, "-", f"{load.seconds:.1f}s", "[yellow]skipped[/yellow]")
            continue
        for index, table_load in enumerate(load.tables):
            table.add_row(
                f"load {load.source}" if index == 0 else "",
                f"{load.dataset}.{table_load.table}",
                _rows_cell(table_load),
                f"{load.seconds:.1f}s" if index == 0 else "",
                _contract_cell(summary.contract_for(load.dataset, table_load.table),
                               skipped=(load.dataset, table_load.table) in summary.contract_tables),
            )
    if summary.dbt is not None:
        models = [node for node in summary.dbt.nodes if node.resource_type == "model"]
        tests = [node for node in summary.dbt.nodes if node.resource_type in ("test", "unit_test")]
        failed = len(summary.dbt.failed_nodes)
        status = "[green]ok[/green]" if summary.dbt.success else f"[red]{failed} failed[/red]"
        seconds = sum(node.execution_time for node in summary.dbt.nodes)
        table.add_row(
            "dbt build", f"{len(models)} models, {len(tests)} tests", "", f"{seconds:.1f}s", status
        )
        # Models that carry a contract (the marts) get a line each; staging views do not.
        for node in models:
            contract = next(
                (c for c in summary.contracts if c.table == node.name and not c.schema.startswith("raw_")), None
            )
            if contract is not None:
                rows = "" if node.rows_affected is None else f"{node.rows_affected:,}"
                table.add_row(
                    "", f"{contract.schema}.{contract.table}", rows, f"{node.execution_time:.1f}s",
                    _contract_cell(contract),
                )
    return table


def _print_crashed_runs(summary: RunSummary, console: Console) -> None:
    for run in summary.crashed_runs:
        console.print(f"[yellow]Crashed[/yellow] earlier run {run.run_id} ({run.flow_name}, started "
                      f"{run.started_at:%Y-%m-%d %H:%M:%S %Z} by {run.started_by}) ended without finishing; "
                      "marked crashed. The next load of each of its sources completes what it left unfinished.",
                      highlight=False, soft_wrap=True)


def _print_skipped(summary: RunSummary, console: Console) -> None:
    """Sources and builds this run left to another run that was busy with them."""
    for load in summary.loads:
        if load.skipped:
            console.print(f"[yellow]Skipped[/yellow] {load.source}: {escape(load.skipped)}", highlight=False,
                          soft_wrap=True)
    if summary.build_skipped:
        console.print(f"[yellow]Skipped[/yellow] dbt build and publish: {escape(summary.build_skipped)}; the tables "
                      "this run loaded are rebuilt by the next run", highlight=False, soft_wrap=True)


def _print_file_problems(summary: RunSummary, console: Console) -> None:
    """Rows Postgres refused, landing files that gave no row, globs that matched no file, columns a load widened:
    each named, with what to do."""
    for load in summary.loads:
        for refused in load.set_aside:
            console.print(f"[yellow]Quarantined[/yellow] {refused.rows:,} rows of {load.dataset}.{refused.table} that "
                          f"Postgres refused: {escape(refused.reason)}", highlight=False)
        for table in load.tables:
            where = f"{load.dataset}.{table.table}"
            for report in table.problem_files:
                status = report.get("status")
                if status == NO_MATCH:  # the table loaded nothing: a misconfiguration until proven otherwise
                    console.print(f"[yellow]Warning[/yellow] {where}: {escape(str(report.get('reason')))}; nothing "
                                  "loads into it until files match (check bucket_url and the glob in headwater.yaml)",
                                  highlight=False, soft_wrap=True)
                    continue
                detail = {"empty": "the file is empty", "header only": "the file has a header and no rows"}.get(
                    status, f"{status}: {report.get('reason')}; quarantined as a whole")
                console.print(f"[yellow]No rows[/yellow] from {escape(report['file'])} ({where}): {escape(detail)}",
                              highlight=False)
            for widening in table.widened:
                console.print(
                    f"[yellow]Widened[/yellow] {where}.{widening.column}: {widening.before} -> {widening.after}, "
                    "to hold values the old type could not; declare the column's type in the connector's settings "
                    "to quarantine such values instead", highlight=False)


def _print_purges(summary: RunSummary, console: Console) -> None:
    """Resolved quarantine rows a source's retention deleted; nothing when none were."""
    for load in summary.loads:
        for purged in load.purged:
            console.print(f"Purged {_rows(purged.rows)} of {load.dataset}.{quarantine_table_name(purged.table)} "
                          "replayed or "
                          f"superseded more than {load.retention} ago (quarantine.retention)", highlight=False,
                          soft_wrap=True)


def _print_deletes(summary: RunSummary, console: Console) -> None:
    """Per table with `deletes:`, what comparing its keys with the source did (headwater.load.deletes)."""
    for load in summary.loads:
        for table in load.tables:
            if table.deletes is not None:
                style = "red" if table.deletes.error else "yellow" if table.deletes.changed else "dim"
                console.print(f"[{style}]Deletes[/{style}] {load.dataset}.{table.table}: "
                              f"{escape(table.deletes.describe())}", highlight=False)


def _print_backfills(summary: RunSummary, console: Console) -> None:
    """With --since/--until: per table, whether the window was re-read, and if not why and what was done instead."""
    for load in summary.loads:
        for table in load.tables:
            if table.backfill is None:
                continue
            where = f"{load.dataset}.{table.table}"
            # One line per table, never wrapped: easy to read in CI logs and to grep.
            if table.backfill.backfilled:
                console.print(f"Backfilled {where}: {escape(table.backfill.detail)}, {table.rows:,} rows",
                              highlight=False, soft_wrap=True)
            else:
                console.print(f"[yellow]Not backfilled[/yellow] {where}: {escape(table.backfill.detail)}",
                              highlight=False, soft_wrap=True)


def _print_rebuild_and_publish(summary: RunSummary, console: Console) -> None:
    """Warn-severity misses, what dbt skipped, and what reached the published schema."""
    for contract in summary.contracts:
        for check in contract.warned_checks:
            column = f"({check.column})" if check.column else ""
            console.print(f"[yellow]Warning[/yellow] contract {contract.dataset}: {check.name}{column} "
                          f"measured {check.measured}, expected {check.threshold}", highlight=False)
    rebuild = summary.rebuild
    if rebuild is not None:
        for schema, table in rebuild.unread:
            console.print(f"{_what_changed(summary, schema, table)} {schema}.{table}; no dbt model reads it",
                          highlight=False)
    if rebuild is not None and not rebuild.run and not rebuild.held_back:
        if rebuild.changed:
            console.print("dbt did not run: no model reads the tables that changed; the published marts are "
                          "unchanged.", highlight=False)
        else:
            which = "from the sources this run loaded" if any(load.skipped for load in summary.loads) else ""
            console.print(f"No new rows{' ' + which if which else ''}: dbt did not run, the published marts are "
                          "unchanged.", highlight=False)
    if summary.publish is not None and summary.publish.published:
        console.print(f"Published {', '.join(summary.publish.published)}", highlight=False)
    if summary.marts_left:
        console.print(escape(summary.marts_left), highlight=False, soft_wrap=True)


def _what_changed(summary: RunSummary, schema: str, table: str) -> str:
    """'1,000 rows loaded into' or '3 rows deleted from': what made a raw table count as changed."""
    for load in summary.loads:
        for table_load in load.tables:
            if load.dataset == schema and table_load.table == table:
                if table_load.loaded:
                    return f"{_rows(table_load.loaded)} loaded into"
                deletes = table_load.deletes
                if deletes is not None and deletes.changed:
                    return f"{_rows(deletes.rows + deletes.restored)} {deletes.action} in"
    return "rows changed in"


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def pii_table(summary: RunSummary) -> Table:
    table = Table(title="PII reaching published marts", title_justify="left")
    table.add_column("mart column", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("fix")
    for exposure in summary.pii:
        table.add_row(str(exposure.column), "\n".join(map(str, exposure.sources)), escape(exposure.fix))
    return table


def _print_pii(summary: RunSummary, console: Console) -> None:
    if summary.pii:
        console.print(pii_table(summary))
        if summary.pii_action == "warn":
            console.print(f"[yellow]Warning[/yellow] {len(summary.pii)} published column(s) carry unmasked PII "
                          "(catalog.pii_exposure: warn; `fail` makes this fail the run)", highlight=False)
    if summary.lineage_error and summary.pii_action == "warn":
        console.print(f"[yellow]Warning[/yellow] lineage could not be built: {escape(summary.lineage_error)} "
                      "(PII exposure not checked)", highlight=False)


def _print_roles(summary: RunSummary, console: Console) -> None:
    """With `grants:`: which roles the steps ran as, and what the reader may read of the marts."""
    for line in (summary.roles, summary.reader_grants):
        if line:
            console.print(f"Roles: {escape(line)}", highlight=False, soft_wrap=True)


def print_site(summary: RunSummary, console: Console | None = None) -> None:
    """The catalog site's link (or why it could not be written): the last line of a run's output."""
    console = console or _console()
    if summary.site is not None:
        console.print(f"Catalog site: {Path(summary.site).resolve().as_uri()}", highlight=False, soft_wrap=True)
    if summary.site_error:
        console.print(f"[yellow]Warning[/yellow] catalog site could not be written: {escape(summary.site_error)}",
                      highlight=False)


def _console() -> Console:
    # Logs and CI captures have no terminal width; keep the table readable there too.
    return Console(width=None if sys.stdout.isatty() else 120)


def print_summary(summary: RunSummary, console: Console | None = None) -> None:
    console = console or _console()
    _print_crashed_runs(summary, console)
    console.print(summary_table(summary))
    _print_skipped(summary, console)
    _print_file_problems(summary, console)
    _print_deletes(summary, console)
    _print_purges(summary, console)
    _print_backfills(summary, console)
    _print_rebuild_and_publish(summary, console)
    _print_pii(summary, console)
    _print_roles(summary, console)
    for result in summary.freshness:
        if result.status == "warn":
            console.print(f"[yellow]Stale data[/yellow] {result.message()}", highlight=False)
    if summary.destination:
        where = f"Data is in {summary.destination}"
        if summary.embedded:
            where += " (embedded PostgreSQL: `headwater db url` prints it, `headwater db stop` stops it)"
        console.print(where, highlight=False)
    if summary.ok:
        console.print(f"[green]Run succeeded[/green] in {summary.seconds:.1f}s.")
    else:
        console.print(f"[red]Run failed[/red] in {summary.seconds:.1f}s:")
        for line in summary.failures:
            console.print(f"  - {escape(line)}")
