"""The `alerts:` section of headwater.yaml: which notifiers a run tells, checked against the installed ones.

    alerts:
      - webhook: {url: "${ALERT_WEBHOOK_URL}", timeout: 10, retries: 3,
                  headers: {Authorization: "Bearer ${prefect:alert-webhook-token}"}}
      - log: {level: warning}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.common.interpolation import Variables
from headwater.common.problems import Problem
from headwater.plugins.manager import notifier_registry
from headwater.plugins.notifiers import Notifier


@dataclass(frozen=True)
class AlertConfig:
    """One entry of `alerts:`: a notifier name and its options, as written (references unresolved)."""

    notifier: str
    options: dict = field(default_factory=dict)


def parse_alerts(raw: Any, variables: Variables, problems: list[Problem]) -> tuple[AlertConfig, ...]:
    """Validate the `alerts:` list against the installed notifiers; problems are appended, not raised."""
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
        # Options reading a Prefect Secret block are checked when the run resolves them: checking contacts no server.
        if _check_options(notifier, options, (*where, name), variables, problems) and not variables.blocks_in(options):
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
        for message in variables.reference_problems(value):
            problems.append(Problem((*where, key), message))
            ok = False
        if key in notifier.secret_options and not variables.references_in(value):
            problems.append(
                Problem((*where, key), f"{key!r} is a secret; reference it as ${{NAME}} and set NAME in the "
                                       f"environment or {variables.secrets_file}, or as a Prefect Secret block: "
                                       "${prefect:block-name}")
            )
    return ok


