"""The site's one stylesheet, written next to the pages as style.css (kept here so it ships with the package)."""

STYLESHEET_NAME = "style.css"

STYLESHEET = """\
:root {
  --ink: #1a202c; --muted: #5a6678; --line: #dde3ea; --panel: #f6f8fb; --accent: #2b6cb0;
  --ok: #2f855a; --ok-bg: #e6f4ea; --warn: #b7791f; --warn-bg: #fdf3dc; --bad: #c53030; --bad-bg: #fde8e8;
  --pii: #6b46c1; --pii-bg: #efe9fb;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
header { background: #1f3a5f; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
header .brand { font-weight: 700; font-size: 16px; color: #fff; text-decoration: none; }
header nav a { color: #cfe0f5; margin-right: 16px; text-decoration: none; }
header nav a.active, header nav a:hover { color: #fff; text-decoration: underline; }
main { padding: 16px 24px 32px; max-width: 1500px; }
footer { color: var(--muted); font-size: 12px; padding: 8px 24px 24px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h1 .layer { font-size: 13px; vertical-align: middle; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
a { color: var(--accent); }
p.lead { color: var(--muted); margin-top: 0; max-width: 900px; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 420px; }
table.grid { border-collapse: collapse; margin: 6px 0 12px; min-width: 480px; }
table.grid th, table.grid td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left;
                               vertical-align: top; }
table.grid th { background: var(--panel); font-weight: 600; font-size: 13px; }
table.grid td.num, table.grid th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.grid tr.exposed td { background: var(--bad-bg); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
        min-width: 150px; }
.card .value { font-size: 20px; font-weight: 700; }
.card .label { color: var(--muted); font-size: 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
         background: var(--panel); border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.badge.succeeded, .badge.passed, .badge.pass { background: var(--ok-bg); color: var(--ok); border-color: #b7dfc2; }
.badge.warned, .badge.warn, .badge.running { background: var(--warn-bg); color: var(--warn); border-color: #f0d9a6; }
.badge.failed, .badge.crashed, .badge.error, .badge.exposed {
  background: var(--bad-bg); color: var(--bad); border-color: #f3b8b8; }
.badge.pii-pii, .badge.pii-derived { background: var(--pii-bg); color: var(--pii); border-color: #d4c6f3; }
.badge.pii-masked { background: var(--ok-bg); color: var(--ok); border-color: #b7dfc2; }
.chips .badge { margin: 0 4px 2px 0; }
.alert { border-left: 4px solid var(--bad); background: var(--bad-bg); padding: 10px 14px; margin: 14px 0;
         border-radius: 4px; }
.alert.notice { border-color: var(--warn); background: var(--warn-bg); }
.alert h2, .alert h3 { border: 0; margin: 0 0 6px; font-size: 15px; }
.alert ul { margin: 4px 0; padding-left: 20px; }
.layers { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 8px 24px; }
ul.tables { list-style: none; padding: 0; margin: 0; }
ul.tables li { padding: 3px 0; border-bottom: 1px dotted var(--line); }
ul.tables .meta { color: var(--muted); font-size: 12px; }
.diagram { overflow: auto; border: 1px solid var(--line); border-radius: 6px; background: #fbfcfe; padding: 4px;
           margin: 8px 0; }
.legend-line { color: var(--muted); font-size: 12px; }
.legend-line .swatch { display: inline-block; width: 22px; height: 0; border-top: 2px solid #7f93ad;
                       vertical-align: middle; margin: 0 4px 0 10px; }
.legend-line .swatch.dashed { border-top-style: dashed; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.charts figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fff; }
.charts figcaption { color: var(--muted); font-size: 12px; padding: 2px 6px; max-width: 620px; }
.empty-note { color: var(--muted); font-style: italic; }

/* inline SVG: lineage diagram */
svg.lineage { font: 11.5px system-ui, "DejaVu Sans", sans-serif; display: block; }
svg.lineage .box { fill: #f4f7fb; stroke: #6b7c93; }
svg.lineage .focus .box { fill: #fff8e1; stroke: #b7791f; stroke-width: 1.5; }
svg.lineage .table-name { font-weight: 700; fill: var(--ink); }
svg.lineage a .table-name { fill: var(--accent); text-decoration: underline; }
svg.lineage .row { fill: transparent; stroke: #dde3ea; }
svg.lineage .column text { fill: var(--ink); }
svg.lineage .column .tag { font-size: 10px; font-weight: 700; fill: var(--pii); }
svg.lineage .column.pii-masked .tag { fill: var(--ok); }
svg.lineage .column.pii-pii .row, svg.lineage .column.pii-derived .row { fill: var(--pii-bg); }
svg.lineage .column.exposed .row { fill: var(--bad-bg); stroke: var(--bad); }
svg.lineage .column.exposed .tag { fill: var(--bad); }
svg.lineage .edge { fill: none; stroke: #7f93ad; stroke-width: 1.3; }
svg.lineage .edge.indirect { stroke-dasharray: 4 3; stroke: #a7b4c6; }
.hide-indirect:checked + .toggle + .diagram svg.lineage .edge.indirect { display: none; }
.toggle { font-size: 0.85rem; color: #4a5568; margin-left: 0.3rem; cursor: pointer; }
svg.lineage .edge.masking { stroke: var(--ok); }
svg.lineage .edge:hover { stroke: var(--accent); stroke-width: 2.5; }

/* inline SVG: charts */
svg.chart { font: 11px system-ui, "DejaVu Sans", sans-serif; display: block; max-width: 100%; height: auto; }
svg.chart .chart-title { font-size: 13px; font-weight: 700; fill: var(--ink); }
svg.chart .grid { stroke: #e6ebf1; }
svg.chart .tick { fill: var(--muted); font-size: 10.5px; }
svg.chart .empty { fill: var(--muted); font-style: italic; }
svg.chart .bar:hover rect { opacity: .8; }
"""
