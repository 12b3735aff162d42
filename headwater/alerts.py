"""Alerts: when a run fails, a contract fails or a table breaches its freshness SLA, tell someone.

Notifiers are registered through the `register_notifiers` hook (built-ins below, plugins alike) and
chosen in headwater.yaml::

    alerts:
      - webhook: {url: "${ALERT_WEBHOOK_URL}", timeout: 10, retries: 3}
      - log: {level: warning}

A run sends at most one event, to every configured notifier. Delivering it is best effort: a notifier
that fails is logged and never changes the outcome of the run.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from headwater import __version__
from headwater.hookspecs import hookimpl
from headwater.problems import Problem
from headwater.registry import PluginRegistry, RegistrationError, check_metadata, check_name, first_line

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.interpolation import Variables
    from headwater.summary import RunSummary

LOGGER = logging.getLogger("headwater.alerts")

Send = Callable[[dict], None]


@dataclass(frozen=True)
class Notifier:
    name: str
    factory: Callable[[dict], Send]
    plugin: Any  # headwater.connectors.Plugin that registered it
    description: str = ""
    # Options that carry credentials (a webhook URL usually does): only ${NAME} references are accepted.
    secret_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertConfig:
    """One entry of `alerts:`: a notifier name and its options, as written (references unresolved)."""

    notifier: str
    options: dict = field(default_factory=dict)


class NotifierRegistry(PluginRegistry[Notifier]):
    """Notifiers by name, filled by the register_notifiers hook of the built-ins and every plugin."""

    kind = "notifier"

    def __init__(self) -> None:
        super().__init__(_make_notifier)


NOTIFIER_METADATA = frozenset({"description", "secret_options"})


def _make_notifier(plugin: Any, name: Any, factory: Any, metadata: dict[str, Any]) -> Notifier:
    name = check_name("notifier", name)
    if not callable(factory):
        raise RegistrationError(f"notifier {name!r}: expected a factory(options) -> send, got {type(factory).__name__}")
    check_metadata("notifier", name, metadata, NOTIFIER_METADATA)
    return Notifier(
        name=name,
        factory=factory,
        plugin=plugin,
        description=first_line(metadata.get("description")),
        secret_options=tuple(metadata.get("secret_options", ())),
    )


def parse_alerts(raw: Any, variables: "Variables", problems: list[Problem]) -> tuple[AlertConfig, ...]:
    """Validate the `alerts:` list against the installed notifiers; problems are appended, not raised."""
    from headwater.plugins import notifier_registry

    registry = notifier_registry()
    example = '[{webhook: {url: "${ALERT_WEBHOOK_URL}"}}, {log: {}}]'
    if not isinstance(raw, list):
        problems.append(Problem(("alerts",), f"must be a list of notifiers, e.g. {example}"))
        return ()
    alerts = []
    for index, entry in enumerate(raw):
        where = ("alerts", index)
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(Problem(where, f"each entry names one notifier with its options, e.g. {example}"))
            continue
        (name, options), = entry.items()
        options = options or {}
        notifier = registry.get(str(name))
        if notifier is None:
            broken = "".join(f"; note: {problem}" for problem in registry.problems)
            problems.append(
                Problem((*where, name), f"unknown notifier {name!r}; installed: {', '.join(registry.names())}{broken}")
            )
            continue
        if not isinstance(options, dict):
            problems.append(Problem((*where, name), "options must be a mapping"))
            continue
        if _check_options(notifier, options, (*where, name), variables, problems):
            try:  # the notifier rejects bad options now, not when the first alert is due
                notifier.factory(variables.resolve(options))
            except (ValueError, TypeError) as error:
                problems.append(Problem((*where, name), str(error)))
        alerts.append(AlertConfig(notifier=notifier.name, options=options))
    return tuple(alerts)


def _check_options(notifier: Notifier, options: dict, where: tuple, variables, problems: list[Problem]) -> bool:
    """References are set and secrets are references; True when the options can be resolved."""
    ok = True
    for key, value in options.items():
        for missing in sorted(variables.missing(value)):
            problems.append(
                Problem((*where, key), f"${{{missing}}} is not set: export {missing}=... or add it to "
                                       f"{variables.secrets_file}")
            )
            ok = False
        if key in notifier.secret_options and not variables.references_in(value):
            problems.append(
                Problem((*where, key), f"{key!r} is a secret; reference it as ${{NAME}} and set NAME in the "
                                       f"environment or {variables.secrets_file}")
            )
    return ok


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
    from headwater.plugins import notifier_registry

    logger = logger or LOGGER
    if not project.alerts:
        return []
    event = build_event(summary, project.name)
    if event is None:
        return []
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


def webhook(options: dict) -> Send:
    """POST the event as JSON to `url`; `timeout` seconds per attempt, `retries` attempts in all."""
    unknown = set(options) - {"url", "timeout", "retries", "headers"}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; allowed: url, timeout, retries, headers")
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("webhook needs `url:` an http(s) URL, e.g. url: \"${ALERT_WEBHOOK_URL}\"")
    timeout = float(options.get("timeout", 10))
    attempts = int(options.get("retries", 3))
    if timeout <= 0 or attempts < 1:
        raise ValueError("timeout must be positive and retries at least 1")
    headers = {"Content-Type": "application/json", "User-Agent": f"headwater/{__version__}",
               **{str(k): str(v) for k, v in (options.get("headers") or {}).items()}}

    def send(event: dict) -> None:
        body = json.dumps(event).encode()
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=timeout):
                    return
            except urllib.error.HTTPError as error:
                # A client error other than timeout/rate limit will not improve by asking again.
                if 400 <= error.code < 500 and error.code not in (408, 429) or attempt == attempts - 1:
                    raise RuntimeError(f"webhook answered HTTP {error.code}") from None
            except OSError as error:
                if attempt == attempts - 1:
                    # The URL is a secret: the message names only the reason.
                    raise RuntimeError(f"webhook unreachable after {attempts} attempts: {error}") from None
            time.sleep(0.5 * 2**attempt)

    return send


def log(options: dict) -> Send:
    """Write the event as one JSON line to the `headwater.alerts` logger (level: warning by default)."""
    level_name = str(options.get("level", "warning")).upper()
    level = logging.getLevelName(level_name)
    if set(options) - {"level"} or not isinstance(level, int):
        raise ValueError("log takes only `level:` (debug, info, warning, error)")

    def send(event: dict) -> None:
        LOGGER.log(level, "%s", json.dumps(event))

    return send


@hookimpl
def register_notifiers(register):
    register("webhook", webhook, description="JSON POST to a URL, retried", secret_options=("url",))
    register("log", log, description="one JSON line in the headwater.alerts log")
