"""Personal data along the lineage graph: which published columns carry it unmasked, and every column's PII state.

A column is *declared* PII where its data enters (``ColumnInfo.pii``): the table's ``pii:`` list in
headwater.yaml, the connector's ``pii`` metadata, or a dlt ``x-pii`` column hint. Its value travels
along DIRECT edges only: an INDIRECT edge (join key, filter, group by) decides which rows a value
comes from, not what the value is. A value stops being personal data where it passes a masking edge
(``Edge.masking``: md5, sha256, digest, left, ... in a model) or a column that is masked at load
(``ColumnInfo.masked``: a ``pii`` step hashed or masked it before it reached the database).

A published column is *exposed* when some path of unmasked DIRECT edges leads to it from a declared
PII column. ``concat(md5(email), name)`` exposes ``name`` only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from headwater.lineage.model import DIRECT, RESOURCE_PREFIX, ColumnRef, Lineage

PII, DERIVED, MASKED = "pii", "derived", "masked"


@dataclass
class PiiExposure:
    """A published column that carries declared PII unmasked."""

    column: ColumnRef  # the published (mart) column
    sources: list[ColumnRef]  # the declared PII columns it carries, nearest to the source (resource or raw)
    path: list[ColumnRef] = field(default_factory=list)  # one unmasked path, sources[0] first, column last
    fix: str = ""  # one line: how to stop the exposure

    @property
    def reason(self) -> str:
        sources, path = ", ".join(map(str, self.sources)), " -> ".join(map(str, self.path))
        return f"{self.column} carries {sources} unmasked via {path}"


def pii_exposures(lineage: Lineage, published_schemas: tuple[str, ...] | None = None) -> list[PiiExposure]:
    """Every published column reached from a declared PII column by unmasked DIRECT edges, sorted by column."""
    if published_schemas is None:
        from headwater.marts.publish import PUBLISHED_SCHEMAS  # what the run publishes; imported late: it pulls in dbt

        published_schemas = PUBLISHED_SCHEMAS
    graph = _Graph(lineage)
    origins = [ref for ref in graph.declared if not graph.masked_at_load(ref)]
    reached = {origin: graph.reach([origin], through_masking=False) for origin in origins}
    carried: dict[ColumnRef, set[ColumnRef]] = {}
    for origin, parents in reached.items():
        for ref in parents:
            if ref.schema in published_schemas:
                carried.setdefault(ref, set()).add(origin)
    exposures = []
    for column, found in sorted(carried.items()):
        # Nearest to the source: drop a declared column that another declared one feeds (raw email <- resource email).
        sources = sorted(o for o in found if not any(other != o and o in reached[other] for other in found))
        sources = sources or sorted(found)
        path = _path(reached[sources[0]], column)
        exposures.append(PiiExposure(column, sources, path, _fix(lineage, column, path)))
    return exposures


def pii_tags(lineage: Lineage) -> dict[ColumnRef, str]:
    """The PII state of every column that has one; columns PII never reaches are left out.

    ``pii``: declared here; ``derived``: reached from declared PII without masking (its value is
    personal data too); ``masked``: reached only through masking, or masked at load.
    """
    graph = _Graph(lineage)
    at_load = {ref for ref in graph.columns if graph.masked_at_load(ref)}
    origins = [ref for ref in graph.declared if ref not in at_load]
    tags = {ref: MASKED for ref in graph.reach([*graph.declared, *at_load], through_masking=True)}
    tags.update({ref: DERIVED for ref in graph.reach(origins, through_masking=False)})
    tags.update({ref: PII for ref in origins})
    tags.update({ref: MASKED for ref in at_load})
    return tags


class _Graph:
    """The lineage with its columns' PII declarations, read once."""

    def __init__(self, lineage: Lineage):
        self.lineage = lineage
        self.columns = [info.ref for table in lineage.tables.values() for info in table.columns.values()]
        self.declared = sorted(ref for ref in self.columns if lineage.column(ref).pii)

    def masked_at_load(self, ref: ColumnRef) -> bool:
        info = self.lineage.column(ref)
        return bool(info and info.masked)

    def reach(self, starts: list[ColumnRef], through_masking: bool) -> dict[ColumnRef, ColumnRef | None]:
        """Columns reachable from ``starts`` (included), each with the column it was first reached from.

        Without ``through_masking``, a masking edge or a column masked at load ends a path.
        """
        parents: dict[ColumnRef, ColumnRef | None] = dict.fromkeys(starts)
        queue = deque(starts)
        while queue:
            ref = queue.popleft()
            for edge in self.lineage.outputs(ref, (DIRECT,)):
                if edge.target in parents:
                    continue
                if not through_masking and (edge.masking or self.masked_at_load(edge.target)):
                    continue
                parents[edge.target] = ref
                queue.append(edge.target)
        return parents


def _path(parents: dict[ColumnRef, ColumnRef | None], end: ColumnRef) -> list[ColumnRef]:
    path = [end]
    while parents[path[-1]] is not None:
        path.append(parents[path[-1]])
    return path[::-1]


def _fix(lineage: Lineage, column: ColumnRef, path: list[ColumnRef]) -> str:
    """``hash it in the model (md5(x)), add a pii step to <source>.<table> ..., or drop it from <mart>``."""
    model_input = path[-2].column if len(path) > 1 else column.column
    hints = [f"hash it in the model (md5({model_input}))"]
    table, loaded_as = _configured_table(lineage, path)
    if table:
        hints.append(f'add a pii step to {table} in headwater.yaml ({{pii: {{{loaded_as}: mask}}}} or '
                     f'{{pii: {{{loaded_as}: {{hash: {{salt: "${{PII_SALT}}"}}}}}}}})')
    hints.append(f"drop it from {column.table_key}")
    return ", ".join(hints[:-1]) + ", or " + hints[-1]


def _configured_table(lineage: Lineage, path: list[ColumnRef]) -> tuple[str | None, str]:
    """The headwater.yaml table (``source.table``) where a pii step would mask the path's value, and the column."""
    loaded = next((ref for ref in path if ref.schema.startswith("raw_")), None)
    if loaded is not None:
        info = lineage.tables.get(loaded.table_key)
        source = (info.source if info else None) or loaded.schema.removeprefix("raw_")
        return f"{source}.{(info.resource if info else None) or loaded.table}", loaded.column
    resource = next((ref for ref in path if ref.schema.startswith(RESOURCE_PREFIX)), None)
    if resource is not None:
        return f"{resource.schema.removeprefix(RESOURCE_PREFIX)}.{resource.table}", resource.column
    return None, path[0].column
