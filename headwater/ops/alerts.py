"""Alerts: when a run fails, a contract fails or a table breaches its freshness SLA, tell someone.

The notifiers come from the `register_notifiers` hook (headwater.plugins.notifiers) and are chosen in
`alerts:` (headwater.project.alerting). A run sends at most one event, to every configured notifier.
Delivering it is best effort: a notifier that fails is logged and never changes the outcome of the run.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headwater import __version__
from headwater.plugins.manager import notifier_registry
from headwater.plugins.notifiers import LOGGER

if TYPE_CHECKING:
    from headwater.ops.summary import RunSummary
    from headwater.project.config import ProjectConfig


def build_event(summary: "RunSummary", project: str) -> dict | None:
    """The run's alert event, or None when nothing is wrong.

    ``kind`` is the most serious reason: ``run_failed`` (a load, dbt or another step failed),
    ``contract_failed``, then ``freshness_breach``; ``details`` always lists all of them.
    """
    failed_checks = [
        {
            "contract": f"{contract.schema}.{contract.table}",
            "check": check.name,
            "column": check.column,
            "outcome": check.outcome,
            "measured": check.measured,
            "threshold": check.threshold,
            "severity": getattr(check, "severity", None),
        }
        for contract in summary.contracts
        for check in contract.checks
        if check.outcome in ("failed", "error")
    ]
    contract_errors = [
        {"contract": f"{c.schema}.{c.table}", "error": c.error} for c in summary.contracts if c.error
    ]
    breached = [
        {
            "table": result.relation,
            "status": result.status,
            "basis": result.basis,
            "last_value": result.last_value,
            "age_seconds": result.age_seconds,
            "warn_after_seconds": result.warn_after_seconds,
            "error_after_seconds": result.error_after_seconds,
            "message": result.message(),
        }
        for result in getattr(summary, "freshness", [])
        if result.breached
    ]
    failures = summary.failures
    # A failed load or dbt build outranks what follows from it; steps held back because a contract
    # failed are part of that contract failure, so only failures of other steps make it a run failure.
    broken = [f"run crashed: {summary.crash}"] if getattr(summary, "crash", None) else []
    broken += [f"load {load.source}: {load.error}" for load in summary.loads if not load.ok]
    if summary.dbt is not None and not summary.dbt.success:
        broken.append("dbt build failed")
    contracts = sorted({item["contract"] for item in failed_checks + contract_errors})
    if broken or (failures and not contracts and not breached):
        reasons = broken or failures
        kind, message = "run_failed", f"{project}: run failed: {reasons[0]}" + (
            f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
    elif contracts:
        kind, message = "contract_failed", f"{project}: contract failed: {', '.join(contracts)}"
    elif breached:
        kind, message = "freshness_breach", f"{project}: stale data: " + "; ".join(b["message"] for b in breached)
    else:
        return None
    return _jsonable(
        {
            "kind": kind,
            "run_id": getattr(summary, "run_id", None),
            "project": project,
            "status": "succeeded" if summary.ok else "failed",
            "message": message,
            "sent_at": datetime.now(timezone.utc),
            "headwater_version": __version__,
            "details": {
                "failures": failures,
                "failed_checks": failed_checks,
                "contract_errors": contract_errors,
                "breached_tables": breached,
            },
        }
    )


def _jsonable(value: Any) -> Any:
    # Measured values may be Decimals, times are datetimes: everything leaves as plain JSON.
    return json.loads(json.dumps(value, default=lambda item: item.isoformat() if hasattr(item, "isoformat")
                                 else str(item)))


def notify(project: "ProjectConfig", summary: "RunSummary", logger: Any = None) -> list[str]:
    """Send the run's event (if any) to every configured notifier; returns the delivery problems."""
    logger = logger or LOGGER
    if not project.alerts:
        return []
    event = build_event(summary, project.name)
    if event is None:
        return []
    return _send(project, event, logger)


def notify_lag(project: "ProjectConfig", source: str, behind_seconds: float, threshold: float,
               logger: Any = None) -> list[str]:
    """Tell every configured notifier that a stream's feed trails its source past ``threshold`` seconds."""
    logger = logger or LOGGER
    if not project.alerts:
        return []
    event = _jsonable({
        "kind": "stream_lag", "run_id": None, "project": project.name, "status": "running",
        "message": f"{project.name}: {source} trails its source by {behind_seconds:.1f} s "
                   f"(alert_lag_seconds: {threshold:g})",
        "sent_at": datetime.now(timezone.utc), "headwater_version": __version__,
        "details": {"source": source, "behind_seconds": behind_seconds, "threshold_seconds": threshold},
    })
    return _send(project, event, logger)


def _send(project: "ProjectConfig", event: dict, logger: Any) -> list[str]:
    problems = []
    for alert in project.alerts:
        notifier = notifier_registry().get(alert.notifier)
        try:
            if notifier is None:
                raise LookupError(f"notifier {alert.notifier!r} is no longer installed")
            notifier.factory(project.variables.resolve(alert.options))(event)
        except Exception as error:  # a broken notifier must never fail the run
            problem = f"alert via {alert.notifier} not delivered: {type(error).__name__}: {error}"
            logger.warning(problem)
            problems.append(problem)
    return problems


