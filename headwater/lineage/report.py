"""One column's upstream (where it comes from) or downstream (what it feeds) as a tree, for the CLI and JSON.

Each node of the tree is a column; each child is a column one edge away, with the edge(s) between
them: direct (the value, perhaps transformed or masked) and/or indirect (it decides which rows or
groups). A column reached a second time is listed again but not expanded (``repeated``), so the
tree stays finite and small.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from headwater.lineage.model import DIRECT, INDIRECT, ColumnRef, Edge, Lineage, Unresolved

UPSTREAM, DOWNSTREAM = "upstream", "downstream"


@dataclass
class Step:
    """A column in the tree and how it is linked to its parent node (no links at the root)."""

    ref: ColumnRef
    edges: list[Edge] = field(default_factory=list)  # between this column and its parent node
    children: list["Step"] = field(default_factory=list)
    repeated: bool = False  # shown earlier in the tree; its own links are not repeated

    @property
    def indirect_only(self) -> bool:
        return bool(self.edges) and _all_indirect(self.edges)


def column_tree(lineage: Lineage, ref: ColumnRef, direction: str = UPSTREAM, *, direct_only: bool = False) -> Step:
    """The tree of ``ref``'s upstream or downstream columns; ``direct_only`` follows direct edges only."""
    kinds = (DIRECT,) if direct_only else (DIRECT, INDIRECT)
    step_of = lineage.inputs if direction == UPSTREAM else lineage.outputs
    other_end = (lambda edge: edge.source) if direction == UPSTREAM else (lambda edge: edge.target)
    expanded: set[ColumnRef] = set()

    def grow(step: Step, path: frozenset[ColumnRef]) -> None:
        expanded.add(step.ref)
        grouped: dict[ColumnRef, list[Edge]] = {}
        for edge in step_of(step.ref, kinds):
            grouped.setdefault(other_end(edge), []).append(edge)
        for neighbour in sorted(grouped, key=lambda item: (_all_indirect(grouped[item]), str(item))):
            child = Step(neighbour, sorted(grouped[neighbour], key=lambda edge: (edge.kind, edge.subtype)))
            step.children.append(child)
            if neighbour in expanded or neighbour in path:
                child.repeated = bool(step_of(neighbour, kinds))
            else:
                grow(child, path | {neighbour})

    root = Step(ref)
    grow(root, frozenset({ref}))
    return root


def tree_columns(root: Step) -> list[ColumnRef]:
    found, stack = [], [root]
    while stack:
        step = stack.pop()
        if step.ref not in found:
            found.append(step.ref)
        stack.extend(reversed(step.children))
    return found


def unresolved_on(lineage: Lineage, columns: list[ColumnRef]) -> list[Unresolved]:
    """Unresolved items about these columns, or about their whole tables."""
    wanted = {(ref.table_key, ref.column) for ref in columns}
    tables = {ref.table_key for ref in columns}
    return [item for item in lineage.unresolved
            if (item.table, item.column) in wanted or (item.column is None and item.table in tables)]


def close_matches(lineage: Lineage, text: str, limit: int = 5) -> list[str]:
    """Known columns whose name is close to ``text`` (a mistyped SCHEMA.TABLE.COLUMN, or a bare column name)."""
    names = [str(info.ref) for table in lineage.tables.values() for info in table.columns.values()]
    matches = difflib.get_close_matches(text, names, n=limit, cutoff=0.6)
    if len(matches) < limit:  # the column name alone, e.g. `emial` -> every table's `email`
        tail = text.rsplit(".", 1)[-1]
        columns = sorted({name.rsplit(".", 1)[-1] for name in names})
        by_column = difflib.get_close_matches(tail, columns, n=3, cutoff=0.7)
        for name in names:
            if name.rsplit(".", 1)[-1] in by_column and name not in matches and len(matches) < limit:
                matches.append(name)
    return matches


def tree_dict(lineage: Lineage, step: Step, direction: str = UPSTREAM) -> dict:
    """The tree as plain JSON-ready data."""
    info = lineage.column(step.ref)
    table = lineage.tables.get(step.ref.table_key)
    node = {
        "column": str(step.ref),
        "layer": table.layer if table else None,
        "type": info.data_type if info else None,
        "pii": bool(info and info.pii),
        "masked_at_load": bool(info and info.masked),
        "checks": list(info.checks) if info else [],
        "table_checks": list(table.checks) if table else [],
    }
    if step.edges:
        node["edges"] = [edge_dict(edge) for edge in step.edges]
    if step.repeated:
        node["repeated"] = True
    node["inputs" if direction == UPSTREAM else "outputs"] = [tree_dict(lineage, child, direction)
                                                              for child in step.children]
    return node


def edge_dict(edge: Edge) -> dict:
    return {"source": str(edge.source), "target": str(edge.target), "kind": edge.kind, "subtype": edge.subtype,
            "transformation": edge.transformation, "masking": edge.masking}


def _all_indirect(edges: list[Edge]) -> bool:
    return all(edge.kind == INDIRECT for edge in edges)
