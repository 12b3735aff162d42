"""The `deploy:` block of headwater.yaml: deployments per source, their work pools and schedules, and the
Prefect global concurrency limit that keeps the destination from taking too many loads at once.

    deploy:
      per_source: true            # `headwater deploy` registers load-<source> and build instead of daily
      destination_slots: 2        # loads writing to the destination at once (global concurrency limit)
      destination_limit: headwater-destination   # that limit's name on the Prefect server
      pools: {shop_db: databases}                # a source's work pool; default: daily's in prefect.yaml
      schedules: {shop_api: "0 * * * *"}         # a source's cron (UTC); default: daily's schedule
      build: {pool: headwater, schedule: "30 * * * *"}   # the build deployment; default: daily's pool, hourly
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.project.scalars import flag, found

DEPLOY_KEYS = ("per_source", "destination_slots", "destination_limit", "pools", "schedules", "build")
BUILD_KEYS = ("pool", "schedule")
DESTINATION_LIMIT = "headwater-destination"
DEFAULT_DESTINATION_SLOTS = 2
# Builds what the loads left pending; an hour with nothing pending builds nothing and ends in a second.
DEFAULT_BUILD_SCHEDULE = "0 * * * *"


@dataclass(frozen=True)
class DeploySettings:
    per_source: bool = False
    destination_slots: int = DEFAULT_DESTINATION_SLOTS
    destination_limit: str = DESTINATION_LIMIT
    pools: dict[str, str] = field(default_factory=dict)  # source name -> work pool
    schedules: dict[str, str] = field(default_factory=dict)  # source name -> cron (UTC)
    build_pool: str | None = None  # None: the pool of prefect.yaml's daily deployment
    build_schedule: str = DEFAULT_BUILD_SCHEDULE


def parse_deploy_settings(raw: Any, source_names: list[str], problems: list[Problem]) -> DeploySettings:
    if raw is None:
        return DeploySettings()
    if not isinstance(raw, dict):
        problems.append(Problem(("deploy",), "must be a mapping, e.g. {per_source: true, pools: {SOURCE: POOL}}"))
        return DeploySettings()
    _only(raw, DEPLOY_KEYS, ("deploy",), problems)
    build = raw.get("build") or {}
    if not isinstance(build, dict):
        example = "{pool: headwater, schedule: '30 6 * * *'}"
        problems.append(Problem(("deploy", "build"), f"must be a mapping, e.g. {example}"))
        build = {}
    _only(build, BUILD_KEYS, ("deploy", "build"), problems)
    build_schedule = build.get("schedule", DEFAULT_BUILD_SCHEDULE)
    return DeploySettings(
        per_source=flag(raw.get("per_source", False), ("deploy", "per_source"), problems, False),
        destination_slots=_slots(raw.get("destination_slots", DEFAULT_DESTINATION_SLOTS), problems),
        destination_limit=_name(raw.get("destination_limit", DESTINATION_LIMIT), ("deploy", "destination_limit"),
                                problems) or DESTINATION_LIMIT,
        pools=_per_source(raw.get("pools"), "pools", source_names, _name, problems),
        schedules=_per_source(raw.get("schedules"), "schedules", source_names, _cron, problems),
        build_pool=_name(build.get("pool"), ("deploy", "build", "pool"), problems) if "pool" in build else None,
        build_schedule=_cron(build_schedule, ("deploy", "build", "schedule"), problems) or DEFAULT_BUILD_SCHEDULE,
    )


def _only(mapping: dict, allowed: tuple[str, ...], where: KeyPath, problems: list[Problem]) -> None:
    for key in mapping:
        if key not in allowed:
            problems.append(Problem((*where, key), f"unknown key; allowed: {', '.join(allowed)}"))


def _slots(value: Any, problems: list[Problem]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    problems.append(Problem(("deploy", "destination_slots"),
                            f"expected a whole number of at least 1 (loads writing at once), got {found(value)}"))
    return DEFAULT_DESTINATION_SLOTS


def _name(value: Any, where: KeyPath, problems: list[Problem]) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    problems.append(Problem(where, f"expected a name, got {found(value)}"))
    return None


def _cron(value: Any, where: KeyPath, problems: list[Problem]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(where, f"expected a cron expression such as \"0 6 * * *\" (UTC), got {found(value)}"))
        return None
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError  # Prefect's own check, read only when a schedule is set

    try:
        return CronSchedule(cron=value.strip(), timezone="UTC").cron
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        problems.append(Problem(where, f"not a cron expression Prefect accepts: {reason}"))
        return None


def _per_source(raw: Any, key: str, source_names: list[str], value_of, problems: list[Problem]) -> dict[str, str]:
    """A mapping of configured source name -> value; an unknown source is a problem naming the configured ones."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(Problem(("deploy", key), "must be a mapping of source name -> value"))
        return {}
    values = {}
    for name, value in raw.items():
        if name not in source_names:
            problems.append(Problem(("deploy", key, name), f"`{name}` is not a source of this project; its sources: "
                                                           f"{', '.join(source_names) or 'none'}"))
            continue
        checked = value_of(value, ("deploy", key, name), problems)
        if checked is not None:
            values[str(name)] = checked
    return values
