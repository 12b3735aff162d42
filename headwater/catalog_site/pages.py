"""The catalog pages: index (everything by layer), one page per table, one page per source."""

from __future__ import annotations

from collections import Counter, defaultdict

from headwater.catalog_site.collect import RowCount, SiteData
from headwater.catalog_site.html import (
    DASHBOARD,
    INDEX,
    badge,
    duration,
    esc,
    frame,
    grid,
    link,
    number,
    short_run,
    source_page,
    table_page,
    when,
)
from headwater.catalog_site.svg_lineage import TAG_LABELS, render_lineage
from headwater.lineage.model import RESOURCE_PREFIX, ColumnRef, TableInfo

RESOURCE, RAW = "resource", "raw"
LAYER_TITLES = {RESOURCE: "Sources and their resources", RAW: "Raw tables"}


# ---------------------------------------------------------------- shared


def page_of(data: SiteData, table_key: str) -> str | None:
    """The page that documents a table: its own, or its source's for a connector resource."""
    table = data.lineage.tables.get(table_key)
    if table is None:
        return None
    if table.layer == RESOURCE:
        source = table.source or table.schema.removeprefix(RESOURCE_PREFIX)
        return f"{source_page(source)}#resource-{table.name}"
    return table_page(table_key)


def layer_order(data: SiteData) -> list[str]:
    """resource, raw, then the dbt layers by their deepest table in the graph (staging before marts)."""
    parents: dict[str, set[str]] = defaultdict(set)
    for edge in data.lineage.edges:
        if edge.source.table_key != edge.target.table_key:
            parents[edge.target.table_key].add(edge.source.table_key)
    depth: dict[str, int] = {}

    def depth_of(key: str, seen: frozenset = frozenset()) -> int:
        if key not in depth:
            inputs = [parent for parent in parents.get(key, ()) if parent not in seen]
            depth[key] = 1 + max((depth_of(parent, seen | {key}) for parent in inputs), default=-1)
        return depth[key]

    levels: dict[str, list[int]] = defaultdict(list)
    for key, table in data.lineage.tables.items():
        levels[table.layer].append(depth_of(key))
    fixed = [layer for layer in (RESOURCE, RAW) if layer in levels]
    others = sorted((layer for layer in levels if layer not in (RESOURCE, RAW)),
                    key=lambda layer: (max(levels[layer]), sum(levels[layer]) / len(levels[layer]), layer))
    return fixed + others


def tables_in(data: SiteData, layer: str) -> list[TableInfo]:
    return sorted((table for table in data.lineage.tables.values() if table.layer == layer), key=lambda t: t.key)


def pii_badge(data: SiteData, ref: ColumnRef) -> str:
    tag = data.tags.get(ref)
    if ref in data.exposed:
        return badge("exposed PII", "exposed") + " " + badge(TAG_LABELS.get(tag or "", tag or "PII"), f"pii-{tag}")
    return badge(TAG_LABELS.get(tag, tag), f"pii-{tag}") if tag else ""


def rows_text(count: RowCount | None) -> str:
    if count is None or count.rows is None:
        return "-"
    return ("≈ " if count.estimated else "") + number(count.rows)


def page(data: SiteData, title: str, body: str, active: str = "") -> str:
    return frame(title, body, project=data.project.name, generated_at=data.generated_at, active=active)


def exposure_box(items: list[tuple[str, str]], heading: str) -> str:
    """items: (column as text, explanation) pairs."""
    lis = "".join(f"<li><code>{esc(column)}</code>: {esc(text)}</li>" for column, text in items)
    return f'<section class="alert" id="pii-exposures"><h2>{esc(heading)}</h2><ul>{lis}</ul></section>'


def lineage_notice(data: SiteData) -> str:
    if not data.lineage_error:
        return ""
    if data.lineage.edges:  # built, without the dbt layers
        return (f'<div class="alert notice" id="lineage-missing"><h3>Column lineage is incomplete</h3>'
                f"<p>{esc(data.lineage_error)}</p></div>")
    return (f'<div class="alert notice" id="lineage-missing"><h3>Column lineage is not available</h3>'
            f"<p>{esc(data.lineage_error)}</p><p>Sources and raw tables are listed from the destination; "
            "fix the problem above and run <code>headwater docs</code> again for lineage diagrams and models.</p>"
            "</div>")


# ---------------------------------------------------------------- index


def render_index(data: SiteData) -> str:
    history = data.history
    parts = [f"<h1>{esc(data.project.name)}: data catalog</h1>",
             f'<p class="lead">Every source, raw table and dbt model of project <code>{esc(data.project.name)}</code>'
             ", with column lineage, personal data and quality history. "
             f'{link(DASHBOARD, "Quality dashboard")}.</p>']
    recorded = history.last_exposures()
    if recorded:
        parts.append(exposure_box(
            [(row.mart_column, f"carries {row.sources} unmasked" + (f" via {row.path}" if row.path else "")
                    + (f". Fix: {row.fix}" if row.fix else "") + (f" (catalog.pii_exposure: {row.action})"
                                                                 if row.action else "")) for row in recorded],
            f"The last run found {len(recorded)} published column{'s' if len(recorded) != 1 else ''} "
            "carrying personal data"))
    parts.append(lineage_notice(data))
    parts.append(_status_cards(data))
    parts.append(_sources_section(data))
    for layer in layer_order(data):
        parts.append(_layer_section(data, layer))
    if not data.lineage.tables:
        parts.append('<p class="empty-note">No tables yet: run the pipeline (<code>python -m flows.daily</code>) '
                     "and then <code>headwater docs</code>.</p>")
    return page(data, "Catalog", "\n".join(part for part in parts if part), INDEX)


def _status_cards(data: SiteData) -> str:
    last = data.history.last_run
    tables = data.lineage.tables.values()
    layers = Counter(table.layer for table in tables)
    models = sum(count for layer, count in layers.items() if layer not in (RESOURCE, RAW))
    columns = sum(len(table.columns) for table in tables if table.layer != RESOURCE)
    flagged = sum(1 for ref in data.tags if data.tags[ref] in ("pii", "derived") and not ref.schema.startswith(
        RESOURCE_PREFIX))
    if last is None:
        run = ('<div class="card" id="last-run"><div class="label">Last run</div>'
               '<div class="value">none yet</div><div class="label">no run recorded in headwater_ops</div></div>')
    else:
        run = (f'<div class="card" id="last-run" data-status="{esc(last.status)}"><div class="label">Last run '
               f"{esc(short_run(last.run_id))}</div><div class=\"value\">{badge(last.status, last.status)}</div>"
               f'<div class="label">{esc(when(last.started_at))} · {esc(duration(last.seconds))} · '
               f"{esc(number(last.rows_loaded))} rows</div></div>")
    cards = [run]
    for value, label, key in ((len(data.project.sources), "sources", "sources"), (layers.get(RAW, 0), "raw tables",
                              "raw"), (models, "dbt models", "models"), (columns, "columns", "columns"),
                              (flagged, "columns with personal data", "pii"),
                              (len(data.exposures), "published columns exposing PII", "exposed")):
        cards.append(f'<div class="card" data-count="{key}"><div class="value">{value:,}</div>'
                     f'<div class="label">{esc(label)}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _layer_section(data: SiteData, layer: str) -> str:
    title = LAYER_TITLES.get(layer, f"{layer} models")
    if layer == RESOURCE:
        return ""  # listed with their sources below the raw tables' source section
    items = []
    for table in tables_in(data, layer):
        count = data.row_counts.get(table.key)
        pii = sum(1 for name in table.columns if data.tags.get(ColumnRef(table.schema, table.name, name)) in
                  ("pii", "derived"))
        exposed = sum(1 for name in table.columns if ColumnRef(table.schema, table.name, name) in data.exposed)
        meta = [f"{len(table.columns)} columns", f"{rows_text(count)} rows"]
        if table.materialized and layer != RAW:
            meta.append(table.materialized)
        flags = (" " + badge(f"{pii} PII", "pii-pii") if pii else "") + (
            " " + badge(f"{exposed} exposed", "exposed") if exposed else "")
        description = f"<br><span class=\"meta\">{esc(_first_line(table.description))}</span>" \
            if table.description else ""
        items.append(f'<li data-table="{esc(table.key)}">{link(table_page(table.key), table.key)}{flags} '
                     f'<span class="meta">{esc(" · ".join(meta))}</span>{description}</li>')
    return (f'<section class="layer" data-layer="{esc(layer)}"><h2>{esc(title)} <span class="badge">{len(items)}'
            f'</span></h2><ul class="tables">{"".join(items)}</ul></section>')


def _sources_section(data: SiteData) -> str:
    items = []
    for source in data.project.sources:
        resources = [table for table in tables_in(data, RESOURCE) if _source_of(table) == source.name]
        names = ", ".join(link(f"{source_page(source.name)}#resource-{table.name}", table.name) for table in resources)
        if not names:
            names = esc(", ".join(table.name for table in source.tables))
        state = "" if source.enabled else " " + badge("disabled")
        items.append(f'<li data-source="{esc(source.name)}">{link(source_page(source.name), source.name)}{state} '
                     f'<span class="meta">connector {esc(source.connector)} · resources: </span>'
                     f'<span class="meta">{names}</span></li>')
    return (f'<section class="layer" data-layer="{RESOURCE}"><h2>{esc(LAYER_TITLES[RESOURCE])} <span class="badge">'
            f'{len(items)}</span></h2><ul class="tables sources">{"".join(items)}</ul></section>')


# ---------------------------------------------------------------- one table


def render_table(data: SiteData, table: TableInfo) -> str:
    history = data.history
    parts = [f'<h1 data-table="{esc(table.key)}">{esc(table.key)} {badge(table.layer, "layer")}</h1>']
    if table.description:
        parts.append(f'<p class="lead">{esc(table.description)}</p>')
    exposed = [exposure for exposure in data.exposures if exposure.column.table_key == table.key]
    if exposed:
        parts.append(exposure_box([(exposure.column.column, f"{exposure.reason}. Fix: {exposure.fix}"
                                          if exposure.fix else exposure.reason) for exposure in exposed],
                                  "Published columns carrying personal data"))
    parts.append(_facts(data, table))
    parts.append(f'<h2 id="columns">Columns <span class="badge">{len(table.columns)}</span></h2>')
    parts.append(_columns(data, table))
    parts.append('<h2 id="lineage">Lineage</h2>')
    parts.append(_lineage(data, table))
    unresolved = data.lineage.unresolved_for(table.key)
    if unresolved:
        items = "".join(f'<li data-column="{esc(item.column or "")}"><code>{esc(item.column or "(whole model)")}'
                        f"</code>: {esc(item.reason)}</li>" for item in unresolved)
        parts.append(f'<h3 id="unresolved">Columns whose inputs could not be traced</h3><ul class="unresolved">'
                     f"{items}</ul>")
    checks = history.latest_checks(table.key)
    parts.append('<h2 id="checks">Quality checks</h2>')
    if table.checks:
        parts.append(f'<p>Table checks: <span class="chips">{"".join(badge(c) for c in table.checks)}</span></p>')
    parts.append(_check_results(data, checks) if checks else
                 '<p class="empty-note">No contract results recorded for this table.</p>')
    if table.sql:
        parts.append(f'<details><summary>Compiled SQL</summary><pre><code>{esc(table.sql)}</code></pre></details>')
    return page(data, table.key, "\n".join(part for part in parts if part))


def _facts(data: SiteData, table: TableInfo) -> str:
    history = data.history
    facts: list[tuple[str, str]] = [("Layer", esc(table.layer))]
    if table.materialized:
        facts.append(("Materialized", esc(table.materialized)))
    source = _source_of(table)
    if source:
        facts.append(("Source", link(source_page(source), source)))
    if table.resource and table.layer == RAW:
        resource_key = f"{RESOURCE_PREFIX}{source}.{table.resource}"
        target = page_of(data, resource_key) if resource_key in data.lineage.tables else None
        facts.append(("Resource", link(target, table.resource)))
    if table.parent:
        facts.append(("Nested in", link(table_page(f"{table.schema}.{table.parent}"), table.parent)))
    facts.append(("Rows", esc(rows_text(data.row_counts.get(table.key)))))
    if table.layer == RAW and source:
        loaded = history.last_load(source, table.name)
        facts.append(("Last load", "-" if loaded is None else
                      f"{number(loaded[1].rows_loaded)} rows in run {esc(short_run(loaded[0].run_id))} "
                      f"({esc(when(loaded[0].started_at))})"
                      + (f", {number(loaded[1].rows_quarantined)} quarantined" if loaded[1].rows_quarantined else "")))
        fresh = history.latest_freshness().get(table.key)
        if fresh is None:
            facts.append(("Freshness", '<span class="empty-note">no SLA (add <code>freshness:</code> in '
                          "headwater.yaml)</span>"))
        else:
            newest = "never loaded" if fresh.last_value is None else f"newest {when(fresh.last_value)} ({fresh.basis})"
            sla = ", ".join(f"{name} {duration(value)}" for name, value in
                            (("warn after", fresh.warn_after_seconds), ("error after", fresh.error_after_seconds))
                            if value)
            facts.append(("Freshness", f'{badge(fresh.status, fresh.status)} age {esc(duration(fresh.age_seconds))}'
                          f" · {esc(newest)} · SLA {esc(sla or '-')} · checked {esc(when(fresh.checked_at))}"))
    elif table.layer not in (RAW, RESOURCE):
        built = history.last_build(table.name)
        facts.append(("Last built", "-" if built is None else
                      f"run {esc(short_run(built[0].run_id))} ({esc(when(built[0].started_at))})"))
    items = "".join(f"<dt>{esc(name)}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _columns(data: SiteData, table: TableInfo) -> str:
    outcomes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for check in data.history.latest_checks(table.key):
        if check.column:
            outcomes[check.column].append((check.check, check.outcome))
    rows, classes = [], []
    for name, info in table.columns.items():
        ref = ColumnRef(table.schema, table.name, name)
        chips = [badge(check, outcome) for check, outcome in outcomes.get(name, [])]
        recorded = {check for check, _ in outcomes.get(name, [])}
        chips += [badge(check) for check in info.checks if check not in recorded]
        tag = data.tags.get(ref)
        rows.append([f'<code data-column="{esc(name)}">{esc(name)}</code>', esc(info.data_type or ""),
                     esc(info.description), pii_badge(data, ref), f'<span class="chips">{"".join(chips)}</span>'])
        classes.append(" ".join(filter(None, ["exposed" if ref in data.exposed else "", f"pii-{tag}" if tag else ""])))
    return grid(["column", "type", "description", "personal data", "checks"], rows, row_classes=classes,
                css="grid columns", empty="no columns known")


def _lineage(data: SiteData, table: TableInfo) -> str:
    if data.lineage_error and not data.lineage.edges:
        return f'<p class="empty-note">No lineage diagram: {esc(data.lineage_error)}</p>'
    svg = render_lineage(data.lineage, table.key, tags=data.tags, exposed=data.exposed,
                         link=lambda key: page_of(data, key))
    if 'class="edge' not in svg:
        return '<p class="empty-note">No column of this table has a traced input or output.</p>' + \
            f'<div class="diagram">{svg}</div>'
    legend = ('<p class="legend-line"><span class="swatch"></span>direct (the value)'
              '<span class="swatch dashed"></span>indirect (join, filter, group by) · '
              f'{badge("PII", "pii-pii")} declared {badge("from PII", "pii-derived")} carries it '
              f'{badge("masked", "pii-masked")} hashed or masked {badge("exposed", "exposed")} published unmasked'
              " · click a table name to open its page</p>")
    # A checkbox before the diagram hides the dashed edges through CSS alone: the site runs no script.
    toggle = ('<input type="checkbox" id="hide-indirect" class="hide-indirect">'
              '<label for="hide-indirect" class="toggle">hide indirect edges</label>')
    return f'{toggle}<div class="diagram">{svg}</div>{legend}'


def _check_results(data: SiteData, checks) -> str:
    run = checks[0].run_id
    rows = [[esc(check.check), esc(check.column or ""), badge(check.outcome, check.outcome),
             esc(_measured(check.measured)), esc(check.threshold or ""), esc(check.message or "")] for check in checks]
    return (f"<p>Contract <code>{esc(checks[0].contract)}</code> in run {esc(short_run(run))}:</p>"
            + grid(["check", "column", "outcome", "measured", "threshold", "message"], rows, css="grid checks"))


def _measured(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------- one source


def render_source(data: SiteData, source) -> str:
    history = data.history
    parts = [f'<h1 data-source="{esc(source.name)}">Source {esc(source.name)}</h1>',
             f'<p class="lead">Connector <code>{esc(source.connector)}</code>, loaded into schema '
             f"<code>{esc(source.dataset)}</code>{'' if source.enabled else ' (disabled)'}.</p>"]
    rows = []
    for configured in source.tables:
        key = f"{source.dataset}.{configured.name}"
        loaded = history.last_load(source.name, configured.name)
        rows.append([link(table_page(key) if key in data.lineage.tables else None, configured.name),
                     esc(configured.primary_key if isinstance(configured.primary_key, str | None)
                         else ", ".join(configured.primary_key)),
                     esc(configured.cursor or ""), esc(configured.effective_write_disposition),
                     esc(", ".join(configured.pii)),
                     "-" if loaded is None else f"{number(loaded[1].rows_loaded)} ({esc(when(loaded[0].started_at))})"])
    parts.append("<h2>Configured tables</h2>")
    parts.append(grid(["table", "primary key", "cursor", "write", "PII columns", "last load"], rows,
                      empty="every resource of the connector, with default options"))
    raw = [table for table in tables_in(data, RAW) if _source_of(table) == source.name]
    parts.append(f'<h2>Raw tables <span class="badge">{len(raw)}</span></h2>')
    parts.append('<ul class="tables">' + "".join(
        f'<li data-table="{esc(table.key)}">{link(table_page(table.key), table.key)} '
        f'<span class="meta">{len(table.columns)} columns · {esc(rows_text(data.row_counts.get(table.key)))} rows'
        f"{' · nested in ' + esc(table.parent) if table.parent else ''}</span></li>" for table in raw) + "</ul>")
    resources = [table for table in tables_in(data, RESOURCE) if _source_of(table) == source.name]
    parts.append(f'<h2>Resources <span class="badge">{len(resources)}</span></h2>')
    if not resources:
        parts.append('<p class="empty-note">The connector\'s resources are known once lineage can be built.</p>')
    for table in resources:
        rows = [[f'<code data-column="{esc(name)}">{esc(name)}</code>', esc(info.data_type or ""),
                 esc(info.description), pii_badge(data, info.ref)] for name, info in table.columns.items()]
        parts.append(f'<h3 id="resource-{esc(table.name)}" data-table="{esc(table.key)}">Resource '
                     f"{esc(table.name)}</h3>")
        if table.description:
            parts.append(f"<p>{esc(table.description)}</p>")
        parts.append(grid(["field", "type", "description", "personal data"], rows, empty="no fields known"))
    return page(data, f"source {source.name}", "\n".join(parts))


def _source_of(table: TableInfo) -> str | None:
    if table.source:
        return table.source
    if table.schema.startswith(RESOURCE_PREFIX):
        return table.schema.removeprefix(RESOURCE_PREFIX)
    if table.schema.startswith("raw_"):
        return table.schema.removeprefix("raw_")
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 140 else line[:137] + "..."
