"""The record of one run and the table people read at the end of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from headwater.loading import SourceLoad, TableLoad

if TYPE_CHECKING:
    from headwater.freshness import FreshnessResult
    from headwater.publish import PublishResult
    from headwater.quality import ContractResult
    from headwater.rebuild import RebuildPlan
    from headwater.transform import DbtRunResult


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
    run_id: str = ""  # the Prefect flow run id, or a uuid outside Prefect (headwater.history)
    freshness: list["FreshnessResult"] = field(default_factory=list)
    crash: str | None = None  # an unexpected error that ended the run early

    @property
    def failures(self) -> list[str]:
        """One line per failed step; empty when the run succeeded."""
        problems = [f"run crashed: {self.crash}"] if self.crash else []
        problems += [f"load {load.source}: {load.error}" for load in self.loads if not load.ok]
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


def _contract_cell(contract: "ContractResult | None") -> str:
    if contract is None:
        return "[dim]no contract[/dim]"
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
        for index, table_load in enumerate(load.tables):
            table.add_row(
                f"load {load.source}" if index == 0 else "",
                f"{load.dataset}.{table_load.table}",
                _rows_cell(table_load),
                f"{load.seconds:.1f}s" if index == 0 else "",
                _contract_cell(summary.contract_for(load.dataset, table_load.table)),
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


def _print_rebuild_and_publish(summary: RunSummary, console: Console) -> None:
    """Warn-severity misses, what dbt skipped, and what reached the published schema."""
    for contract in summary.contracts:
        for check in contract.warned_checks:
            column = f"({check.column})" if check.column else ""
            console.print(f"[yellow]Warning[/yellow] contract {contract.dataset}: {check.name}{column} "
                          f"measured {check.measured}, expected {check.threshold}", highlight=False)
    if summary.rebuild is not None and not summary.rebuild.run and not summary.rebuild.held_back:
        console.print("No new rows: dbt did not run, the published marts are unchanged.", highlight=False)
    if summary.publish is not None and summary.publish.published:
        console.print(f"Published {', '.join(summary.publish.published)}", highlight=False)


def print_summary(summary: RunSummary, console: Console | None = None) -> None:
    # Logs and CI captures have no terminal width; keep the table readable there too.
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(summary))
    _print_rebuild_and_publish(summary, console)
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
            console.print(f"  - {line}")
