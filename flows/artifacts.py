"""Prefect artifacts of a run: the loads as a table, data quality (with PII exposure) as a markdown report.

Keys are stable per project (``<project>-loads``, ``<project>-quality``), so the Prefect UI shows each
as one artifact with a version per run.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from headwater.ops.summary import RunSummary
from headwater.project.freshness import format_age


def artifact_key(project: str, what: str) -> str:
    """Prefect keys allow only lower-case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{project}-{what}".lower()).strip("-")


def load_rows(summary: RunSummary) -> list[dict]:
    rows = []
    for load in summary.loads:
        for table in load.tables or [None]:
            rows.append({
                "source": load.source,
                "table": table.table if table else "-",
                "read": table.read if table else None,
                "loaded": table.loaded if table else None,
                "quarantined": table.quarantined if table else None,
                "duration_s": round(load.seconds, 1),
                "error": load.error or "",
            })
    return rows


def quality_markdown(summary: RunSummary, project: str) -> str:
    """Contracts, every failed check with its measured value, and freshness, as markdown."""
    lines = [f"# Data quality: {project}", "", f"Run `{summary.run_id}`: {'succeeded' if summary.ok else 'failed'}", ""]
    lines += ["## Contracts", "", "| contract | result | checks |", "|---|---|---|"]
    for contract in summary.contracts:
        failed = [check for check in contract.checks if check.outcome != "passed"]
        result = "passed" if contract.passed else ("error" if contract.error and not failed else "failed")
        lines.append(f"| {contract.schema}.{contract.table} | {result} | "
                     f"{len(contract.checks) - len(failed)}/{len(contract.checks)} passed |")
    failed_checks = [(c, check) for c in summary.contracts for check in c.checks if check.outcome != "passed"]
    if failed_checks or any(c.error for c in summary.contracts):
        lines += ["", "## Failed checks", "", "| contract | check | column | outcome | measured | threshold |",
                  "|---|---|---|---|---|---|"]
        for contract, check in failed_checks:
            lines.append(f"| {contract.schema}.{contract.table} | {check.name} | {check.column or ''} | "
                         f"{check.outcome} | {check.measured} | {check.threshold or ''} |")
        for contract in summary.contracts:
            if contract.error:
                lines.append(f"| {contract.schema}.{contract.table} | contract | | error | | {contract.error} |")
    if summary.freshness:
        lines += ["", "## Freshness", "", "| table | age | basis | SLA | status |", "|---|---|---|---|---|"]
        for result in summary.freshness:
            age = "no data" if result.age_seconds is None else format_age(result.age_seconds)
            sla = ", ".join(f"{name} {format_age(value)}" for name, value in
                            (("warn_after", result.warn_after_seconds), ("error_after", result.error_after_seconds))
                            if value)
            lines.append(f"| {result.relation} | {age} | {result.basis} | {sla} | {result.status} |")
    lines += pii_markdown(summary)
    if summary.site is not None:
        lines += ["", "## Catalog site", "", f"[{summary.site}]({Path(summary.site).resolve().as_uri()})"]
    return "\n".join(lines) + "\n"


def pii_markdown(summary: RunSummary) -> list[str]:
    """Published columns carrying unmasked PII (and what the run did about them), as markdown lines."""
    if not summary.pii and not summary.lineage_error:
        return []
    lines = ["", "## PII reaching published marts", ""]
    if summary.lineage_error:
        lines.append(f"Lineage could not be built: {summary.lineage_error} (PII exposure not checked)")
    if summary.pii:
        lines += [f"catalog.pii_exposure: `{summary.pii_action}`", "", "| mart column | from | fix |", "|---|---|---|"]
        for exposure in summary.pii:
            sources, fix = ", ".join(map(str, exposure.sources)), exposure.fix.replace("|", r"\|")
            lines.append(f"| {exposure.column} | {sources} | {fix} |")
    return lines


def publish_artifacts(summary: RunSummary, project: str) -> None:
    """Attach both artifacts to the current flow run."""
    create_table_artifact(
        table=load_rows(summary), key=artifact_key(project, "loads"),
        description=f"Rows read, loaded and quarantined per table ({project})",
    )
    create_markdown_artifact(
        markdown=quality_markdown(summary, project), key=artifact_key(project, "quality"),
        description=f"Contracts, failed checks, freshness and PII exposure ({project})",
    )
