"""The record of one run and the table people read at the end of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from headwater.loading import SourceLoad, TableLoad

if TYPE_CHECKING:
    from headwater.quality import ContractResult
    from headwater.transform import DbtRunResult


@dataclass
class RunSummary:
    loads: list[SourceLoad] = field(default_factory=list)
    dbt: "DbtRunResult | None" = None
    contracts: list["ContractResult"] = field(default_factory=list)
    seconds: float = 0.0
    destination: str = ""  # masked URL
    embedded: bool = False

    @property
    def failures(self) -> list[str]:
        """One line per failed step; empty when the run succeeded."""
        problems = [f"load {load.source}: {load.error}" for load in self.loads if not load.ok]
        if self.dbt is not None and not self.dbt.success:
            failed = ", ".join(node.name for node in self.dbt.failed_nodes) or self.dbt.error or "see dbt log"
            problems.append(f"dbt build: {failed}")
        for contract in self.contracts:
            if not contract.passed:
                failed_checks = [check.name for check in contract.checks if check.outcome == "failed"]
                reason = contract.error or ", ".join(failed_checks)
                problems.append(f"contract {contract.schema}.{contract.table}: {reason}")
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


def print_summary(summary: RunSummary, console: Console | None = None) -> None:
    # Logs and CI captures have no terminal width; keep the table readable there too.
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    console.print(summary_table(summary))
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
