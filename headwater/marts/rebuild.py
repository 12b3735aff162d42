"""Decide what dbt rebuilds after the loads: only what changed, never what a failed source feeds.

After the loads Headwater knows which raw tables received rows. Only their raw contracts are
verified; a source with a failing raw contract is held back (circuit breaker): every model
downstream of any of its tables is excluded, even one that also reads a healthy source, so no mart
is published half-updated. The other changed tables select their downstream models with dbt's
``source:<source>.<table>+``. No change means no dbt run at all.

The mapping from a Headwater table (``raw_<source>.<table>``) to a dbt source comes from dbt's
manifest: the dbt source whose schema and identifier name that relation. Everything here except
:func:`load_manifest_sources` is pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from headwater.load.pipeline import SourceLoad
from headwater.marts.quality import ContractResult

# (schema, table) of a relation in the warehouse, e.g. ("raw_shop_db", "products").
Relation = tuple[str, str]


@dataclass
class HeldBack:
    """A source that does not feed dbt this run, and why."""

    source: str  # the Headwater source, e.g. shop_api
    reason: str  # e.g. "contract raw_shop_api.payments failed: duplicate(payment_id)=3"
    excluded: list[str] = field(default_factory=list)  # dbt selectors whose models were left out


@dataclass
class RebuildPlan:
    """What dbt builds this run. ``run`` is False when nothing changed (or everything was held back)."""

    changed: list[Relation] = field(default_factory=list)  # raw relations that received rows
    select: list[str] | None = None  # dbt --select; None = the whole project
    exclude: list[str] = field(default_factory=list)  # dbt --exclude
    held_back: list[HeldBack] = field(default_factory=list)
    full_build: bool = False
    run: bool = True
    unread: list[Relation] = field(default_factory=list)  # changed relations no dbt source reads

    @property
    def held_back_sources(self) -> list[str]:
        return [item.source for item in self.held_back]


def changed_relations(loads: Iterable[SourceLoad]) -> list[Relation]:
    """The raw relations that received or lost rows in this run (quarantined rows alone change nothing)."""
    return sorted(
        (load.dataset, table.table) for load in loads if load.ok for table in load.tables if table.changed
    )


def dbt_sources_by_relation(manifest: dict) -> dict[Relation, str]:
    """(schema, identifier) of every dbt source → its selector name ``<source_name>.<name>``."""
    return {
        (node["schema"], node.get("identifier") or node["name"]): f"{node['source_name']}.{node['name']}"
        for node in manifest.get("sources", {}).values()
    }


def load_manifest_sources(target_dir: Path) -> dict[Relation, str]:
    """Read the dbt sources from the manifest dbt wrote into ``target_dir`` (by `dbt parse`)."""
    manifest = json.loads((Path(target_dir) / "manifest.json").read_text())
    return dbt_sources_by_relation(manifest)


def describe_failure(contract: ContractResult) -> str:
    """One line: which blocking checks failed, with the value Soda measured."""
    if contract.error:
        return f"contract {contract.dataset} errored: {contract.error.splitlines()[0]}"
    failed = [
        f"{check.name}({check.column})={check.measured}" if check.column else f"{check.name}={check.measured}"
        for check in contract.checks
        if check.blocking
    ]
    return f"contract {contract.dataset} failed: {', '.join(failed)}"


def plan_rebuild(
    changed: Iterable[Relation],
    raw_contracts: Iterable[ContractResult],
    dbt_sources: dict[Relation, str],
    *,
    full_build: bool = False,
) -> RebuildPlan:
    """Select the models downstream of changed raw tables, excluding those of held-back sources.

    Args:
        changed: raw relations that received rows this run.
        raw_contracts: results of the raw contracts verified this run.
        dbt_sources: (schema, identifier) → dbt source name, from :func:`dbt_sources_by_relation`.
        full_build: build every model (held-back sources are still excluded).
    """
    changed = sorted(set(changed))
    reasons: dict[str, list[str]] = {}
    for contract in raw_contracts:
        if not contract.passed and contract.schema.startswith("raw_"):
            reasons.setdefault(contract.schema, []).append(describe_failure(contract))

    held_back = []
    for schema, why in sorted(reasons.items()):
        # Every table of the source is held back: a load is one unit, half of it is not trusted.
        selectors = [f"source:{name}+" for (s, _), name in sorted(dbt_sources.items()) if s == schema]
        held_back.append(HeldBack(source=schema.removeprefix("raw_"), reason="; ".join(why), excluded=selectors))
    exclude = [selector for item in held_back for selector in item.excluded]

    unread = [relation for relation in changed if relation not in dbt_sources]
    if full_build:
        return RebuildPlan(changed=changed, select=None, exclude=exclude, held_back=held_back, full_build=True,
                           unread=unread)
    select = [
        f"source:{dbt_sources[relation]}+"
        for relation in changed
        if relation in dbt_sources and relation[0] not in reasons
    ]
    return RebuildPlan(changed=changed, select=select, exclude=exclude, held_back=held_back, run=bool(select),
                       unread=unread)
