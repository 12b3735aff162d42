"""The column lineage graph: tables and columns of every layer, the edges between columns, what could not be traced.

Layers, left to right:

| layer | schema in a ColumnRef | what a table is |
|---|---|---|
| `resource` | `source:<source name>` | a connector resource (dlt resource); its columns are the fields it yields |
| `raw` | `raw_<source>` | a table dlt loaded (nested child tables included) |
| `staging`, `marts`, ... | the dbt model's schema | a dbt model (`layer` is the model's schema) |

An edge runs from an input column to the column it feeds. `direct` edges carry the value (possibly
transformed); `indirect` edges are columns that decide which rows or groups a value comes from
(join keys, filters, group by), as OpenLineage distinguishes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RESOURCE_PREFIX = "source:"
DIRECT, INDIRECT = "direct", "indirect"


@dataclass(frozen=True, order=True)
class ColumnRef:
    schema: str
    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"

    @property
    def table_key(self) -> str:
        return f"{self.schema}.{self.table}"

    @classmethod
    def parse(cls, text: str) -> "ColumnRef":
        """``SCHEMA.TABLE.COLUMN``; a connector resource is ``source:SOURCE.RESOURCE.FIELD``."""
        parts = text.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{text!r}: expected SCHEMA.TABLE.COLUMN, e.g. marts.customers.email")
        return cls(*parts)


@dataclass
class ColumnInfo:
    ref: ColumnRef
    data_type: str | None = None
    description: str = ""
    pii: bool = False  # declared PII here: headwater.yaml `pii:` of the table, or the connector's metadata
    masked: bool = False  # arrives hashed, masked or dropped already (a `pii` step at load time)
    checks: list[str] = field(default_factory=list)  # quality checks watching the column, e.g. "missing", "invalid"


@dataclass
class TableInfo:
    schema: str
    name: str
    layer: str  # "resource", "raw", or the dbt model's schema ("staging", "marts", ...)
    description: str = ""
    columns: dict[str, ColumnInfo] = field(default_factory=dict)
    materialized: str | None = None  # dbt: view, table, ...; raw tables: "table"
    source: str | None = None  # the Headwater source a resource or raw table belongs to
    resource: str | None = None  # raw tables: the connector resource that produced it (the root's, for nested)
    parent: str | None = None  # nested raw tables: the parent table's name
    row_count: int | None = None  # exact, or the planner's estimate for a big table (headwater.postgres.row_counts)
    row_count_estimated: bool = False
    sql: str | None = None  # dbt models: the compiled SQL lineage was read from
    checks: list[str] = field(default_factory=list)  # table-level quality checks, e.g. "row_count"
    quarantine_of: str | None = None  # raw `<table>__quarantine` tables: the table whose rejected rows it holds

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Edge:
    source: ColumnRef
    target: ColumnRef
    kind: str = DIRECT  # DIRECT or INDIRECT
    transformation: str = ""  # the SQL that computes the target from the source, when not a plain copy
    masking: bool = False  # the value passes through a hashing or masking function on the way
    # OpenLineage's subtype: IDENTITY, TRANSFORMATION, AGGREGATION (direct); JOIN, GROUP_BY, FILTER, SORT,
    # WINDOW, CONDITIONAL (indirect). Empty where lineage does not know it.
    subtype: str = ""


@dataclass(frozen=True)
class Unresolved:
    """A column (or a whole model, column None) whose inputs could not be traced, and why."""

    table: str  # schema.table
    column: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}: {self.reason}" if self.column else f"{self.table}: {self.reason}"


@dataclass
class Lineage:
    tables: dict[str, TableInfo] = field(default_factory=dict)  # by schema.table
    edges: list[Edge] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    _by_source: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_target: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed_edges: tuple = field(default=(), init=False, repr=False, compare=False)

    def add_table(self, table: TableInfo) -> TableInfo:
        return self.tables.setdefault(table.key, table)

    def column(self, ref: ColumnRef) -> ColumnInfo | None:
        table = self.tables.get(ref.table_key)
        return table.columns.get(ref.column) if table else None

    def inputs(self, ref: ColumnRef, kinds: tuple[str, ...] = (DIRECT, INDIRECT)) -> list[Edge]:
        return [edge for edge in self._index()[1].get(ref, ()) if edge.kind in kinds]

    def outputs(self, ref: ColumnRef, kinds: tuple[str, ...] = (DIRECT, INDIRECT)) -> list[Edge]:
        return [edge for edge in self._index()[0].get(ref, ()) if edge.kind in kinds]

    def _index(self) -> tuple[dict[ColumnRef, list[Edge]], dict[ColumnRef, list[Edge]]]:
        """Edges by source and by target column, rebuilt when edges were added or replaced (builders append)."""
        if self._indexed_edges != (id(self.edges), len(self.edges)):
            by_source: dict[ColumnRef, list[Edge]] = {}
            by_target: dict[ColumnRef, list[Edge]] = {}
            for edge in self.edges:
                by_source.setdefault(edge.source, []).append(edge)
                by_target.setdefault(edge.target, []).append(edge)
            self._by_source, self._by_target = by_source, by_target
            self._indexed_edges = (id(self.edges), len(self.edges))
        return self._by_source, self._by_target

    def upstream(self, ref: ColumnRef, kinds: tuple[str, ...] = (DIRECT, INDIRECT)) -> list[Edge]:
        """Every edge on a path into ``ref``, nearest first (breadth first)."""
        return self._walk(ref, kinds, self.inputs, lambda edge: edge.source)

    def downstream(self, ref: ColumnRef, kinds: tuple[str, ...] = (DIRECT, INDIRECT)) -> list[Edge]:
        """Every edge on a path out of ``ref``: everything the column feeds, nearest first."""
        return self._walk(ref, kinds, self.outputs, lambda edge: edge.target)

    def _walk(self, start: ColumnRef, kinds, step, next_of) -> list[Edge]:
        seen_edges: list[Edge] = []
        seen: set[ColumnRef] = {start}
        queue = deque([start])
        while queue:
            for edge in step(queue.popleft(), kinds):
                seen_edges.append(edge)
                following = next_of(edge)
                if following not in seen:
                    seen.add(following)
                    queue.append(following)
        return seen_edges

    def unresolved_for(self, table_key: str) -> list[Unresolved]:
        return [item for item in self.unresolved if item.table == table_key]
