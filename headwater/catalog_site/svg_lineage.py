"""The lineage diagram of one table as inline SVG: its upstream and downstream neighbourhood, left to right.

Tables are boxes listing the columns that take part; a column edge is a cubic Bézier from the right
side of the input column's row to the left side of the column it feeds (solid: direct, dashed:
indirect). Layout, computed here and deterministic:

1. neighbourhood: every edge on a path into or out of a column of the focus table;
2. layer of a table = longest path to it over table-level edges (resource → raw → staging → marts);
3. order within a layer: barycenter of the neighbours' positions, sweeping down, up and down again;
4. rows inside a box: the table's own column order.

Elements carry ``data-table`` (boxes), ``data-table``/``data-column`` (column rows) and
``data-from``/``data-to``/``data-kind`` (edges) so tests and readers can find them.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from headwater.lineage.model import DIRECT, ColumnRef, Edge, Lineage

ROW_HEIGHT = 20
HEADER_HEIGHT = 24
BOX_GAP = 22
LAYER_GAP = 110
MARGIN = 12
CHAR_WIDTH = 6.8  # average width of an 11.5px sans-serif character, for box widths
MIN_BOX_WIDTH, MAX_BOX_WIDTH = 170, 340
TAG_WIDTH = 58  # room at the right of a row for its PII badge
TAG_LABELS = {"pii": "PII", "derived": "from PII", "masked": "masked"}


@dataclass
class Neighbourhood:
    focus: str  # schema.table
    columns: dict[str, list[str]]  # table key -> columns shown, in the table's order
    edges: list[Edge]  # sorted, between shown columns of different tables


@dataclass
class Box:
    table: str
    layer: int
    x: float
    y: float
    width: float
    columns: list[str]

    @property
    def height(self) -> float:
        return HEADER_HEIGHT + ROW_HEIGHT * len(self.columns)

    def row_y(self, column: str) -> float:
        return self.y + HEADER_HEIGHT + ROW_HEIGHT * self.columns.index(column) + ROW_HEIGHT / 2


@dataclass
class Layout:
    boxes: dict[str, Box] = field(default_factory=dict)
    width: float = 0
    height: float = 0


def neighbourhood(lineage: Lineage, table_key: str) -> Neighbourhood:
    """The focus table's columns and everything they come from or feed, transitively."""
    inputs: dict[ColumnRef, list[Edge]] = defaultdict(list)
    outputs: dict[ColumnRef, list[Edge]] = defaultdict(list)
    for edge in lineage.edges:
        inputs[edge.target].append(edge)
        outputs[edge.source].append(edge)
    focus = lineage.tables.get(table_key)
    start = {ColumnRef(focus.schema, focus.name, name) for name in focus.columns} if focus else set()
    start |= {ref for ref in (*inputs, *outputs) if ref.table_key == table_key}
    edges: set[Edge] = set()
    for index, next_of in ((inputs, lambda edge: edge.source), (outputs, lambda edge: edge.target)):
        seen, queue = set(start), deque(sorted(start))
        while queue:
            for edge in index.get(queue.popleft(), ()):
                edges.add(edge)
                following = next_of(edge)
                if following not in seen:
                    seen.add(following)
                    queue.append(following)
    # A diagram runs left to right: an edge inside one table has nowhere to go and is left out.
    edges = {edge for edge in edges if edge.source.table_key != edge.target.table_key}
    shown: dict[str, set[str]] = defaultdict(set)
    shown[table_key] |= {ref.column for ref in start}
    for edge in edges:
        shown[edge.source.table_key].add(edge.source.column)
        shown[edge.target.table_key].add(edge.target.column)
    columns = {key: _in_table_order(lineage, key, names) for key, names in sorted(shown.items())}
    return Neighbourhood(table_key, columns, sorted(edges, key=_edge_key))


def layout(hood: Neighbourhood) -> Layout:
    parents: dict[str, set[str]] = defaultdict(set)
    children: dict[str, set[str]] = defaultdict(set)
    for edge in hood.edges:
        parents[edge.target.table_key].add(edge.source.table_key)
        children[edge.source.table_key].add(edge.target.table_key)
    layer = _layers(list(hood.columns), parents)
    layers: dict[int, list[str]] = defaultdict(list)
    for table in sorted(hood.columns):
        layers[layer[table]].append(table)
    _order(layers, parents, children)

    result = Layout()
    widths = {index: _box_width(tables, hood) for index, tables in layers.items()}
    heights = {index: sum(HEADER_HEIGHT + ROW_HEIGHT * len(hood.columns[table]) for table in tables)
               + BOX_GAP * (len(tables) - 1) for index, tables in layers.items()}
    tallest = max(heights.values(), default=0)
    x = MARGIN
    for index in sorted(layers):
        y = MARGIN + (tallest - heights[index]) / 2  # centre each layer vertically
        for table in layers[index]:
            box = Box(table, index, x, y, widths[index], hood.columns[table])
            result.boxes[table] = box
            y += box.height + BOX_GAP
        x += widths[index] + LAYER_GAP
    result.width = x - LAYER_GAP + MARGIN if layers else 2 * MARGIN
    result.height = tallest + 2 * MARGIN
    return result


def render_lineage(
    lineage: Lineage,
    table_key: str,
    *,
    tags: dict[ColumnRef, str] | None = None,
    exposed: set[ColumnRef] | frozenset[ColumnRef] = frozenset(),
    link: Callable[[str], str | None] = lambda table_key: None,
) -> str:
    """The diagram of table_key as an ``<svg>`` string.

    tags: PII tag per column ("pii", "derived", "masked"); exposed: mart columns carrying unmasked PII
    (drawn red); link: the page of a table (schema.table), or None for no link.
    """
    tags = tags or {}
    hood = neighbourhood(lineage, table_key)
    geometry = layout(hood)
    width, height = round(geometry.width), round(geometry.height)
    out = [f'<svg class="lineage" data-focus="{escape(table_key)}" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{escape(f"Column lineage of {table_key}")}">'
           f"<title>{escape(f'Column lineage of {table_key}')}</title>", '<g class="edges">']
    for edge in hood.edges:
        out.append(_edge(edge, geometry))
    out.append("</g>")
    for table in sorted(geometry.boxes, key=lambda key: (geometry.boxes[key].x, geometry.boxes[key].y)):
        out.append(_box(geometry.boxes[table], lineage, table == table_key, tags, exposed, link(table)))
    out.append("</svg>")
    return "".join(out)


def _edge(edge: Edge, geometry: Layout) -> str:
    source, target = geometry.boxes[edge.source.table_key], geometry.boxes[edge.target.table_key]
    x1, y1 = source.x + source.width, source.row_y(edge.source.column)
    x2, y2 = target.x, target.row_y(edge.target.column)
    bend = max(abs(x2 - x1) / 2, 40)
    kind = "direct" if edge.kind == DIRECT else "indirect"
    classes = f"edge {kind}" + (" masking" if edge.masking else "")
    label = f"{edge.source} → {edge.target} ({kind}{', masking' if edge.masking else ''})"
    if edge.transformation:
        label += f": {edge.transformation}"
    return (f'<path class="{classes}" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" data-from="{escape(str(edge.source))}" data-to="{escape(str(edge.target))}" '
            f'data-kind="{kind}"><title>{escape(label)}</title></path>')


def _box(box: Box, lineage: Lineage, is_focus: bool, tags: dict[ColumnRef, str], exposed, href: str | None) -> str:
    info = lineage.tables.get(box.table)
    layer_name = info.layer if info else ""
    title = f'<text class="table-name" x="{box.x + 8:.1f}" y="{box.y + 16:.1f}">{escape(box.table)}</text>'
    if href and not is_focus:
        title = f'<a href="{escape(href)}">{title}</a>'
    out = [f'<g class="table{" focus" if is_focus else ""}" data-table="{escape(box.table)}" '
           f'data-layer="{escape(layer_name)}">',
           f'<rect class="box" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
           'rx="5"/>', title]
    schema, _, name = box.table.partition(".")
    for index, column in enumerate(box.columns):
        ref = ColumnRef(schema, name, column)
        tag = tags.get(ref)
        top = box.y + HEADER_HEIGHT + ROW_HEIGHT * index
        classes = "column" + (" exposed" if ref in exposed else "") + (f" pii-{tag}" if tag else "")
        out.append(f'<g class="{classes}" data-table="{escape(box.table)}" data-column="{escape(column)}"'
                   + (f' data-pii="{escape(tag)}"' if tag else "") + (' data-exposed="true"' if ref in exposed else "")
                   + ">")
        out.append(f'<rect class="row" x="{box.x:.1f}" y="{top:.1f}" width="{box.width:.1f}" height="{ROW_HEIGHT}"/>'
                   f'<text x="{box.x + 8:.1f}" y="{top + 14:.1f}">{escape(column)}</text>')
        if tag:
            badge = "exposed" if ref in exposed else TAG_LABELS.get(tag, tag)
            out.append(f'<text class="tag" x="{box.x + box.width - 6:.1f}" y="{top + 14:.1f}" '
                       f'text-anchor="end">{escape(badge)}</text>')
        out.append("</g>")
    out.append("</g>")
    return "".join(out)


def _layers(tables: list[str], parents: dict[str, set[str]]) -> dict[str, int]:
    """Longest path from a table without inputs; an edge closing a cycle is ignored."""
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(table: str) -> int:
        if table in layer:
            return layer[table]
        visiting.add(table)
        inputs = [parent for parent in sorted(parents.get(table, ())) if parent not in visiting]
        layer[table] = 1 + max((depth(parent) for parent in inputs), default=-1)
        visiting.discard(table)
        return layer[table]

    for table in sorted(tables):
        depth(table)
    return layer


def _order(layers: dict[int, list[str]], parents: dict[str, set[str]], children: dict[str, set[str]]) -> None:
    """Barycenter ordering in place: down (by parents), up (by children), down again."""
    position = {table: float(i) for tables in layers.values() for i, table in enumerate(tables)}
    indexes = sorted(layers)
    for sweep, neighbours in ((indexes[1:], parents), (indexes[-2::-1], children), (indexes[1:], parents)):
        for index in sweep:
            def centre(table: str, neighbours=neighbours) -> tuple[float, str]:
                near = [position[other] for other in neighbours.get(table, ()) if other in position]
                return (sum(near) / len(near) if near else position[table], table)

            layers[index].sort(key=centre)
            for i, table in enumerate(layers[index]):
                position[table] = float(i)


def _box_width(tables: list[str], hood: Neighbourhood) -> float:
    longest = max((len(text) for table in tables for text in (table, *hood.columns[table])), default=10)
    return float(min(MAX_BOX_WIDTH, max(MIN_BOX_WIDTH, round(longest * CHAR_WIDTH) + 16 + TAG_WIDTH)))


def _in_table_order(lineage: Lineage, table_key: str, names: set[str]) -> list[str]:
    info = lineage.tables.get(table_key)
    known = [name for name in (info.columns if info else ()) if name in names]
    return known + sorted(names - set(known))


def _edge_key(edge: Edge) -> tuple:
    return (edge.source, edge.target, edge.kind, edge.transformation, edge.masking)
