"""dashboard.html: the quality history of the last runs, drawn from headwater_ops.

Charts have one point or bar per recorded run (oldest left): quality score (share of checks passed),
rows loaded per source, quarantined rows per source, freshness breaches. Tables: recent runs,
contract results of the last runs, freshness per table, breaches and quarantine per table.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from headwater.catalog_site.collect import SiteData
from headwater.catalog_site.html import (
    DASHBOARD,
    badge,
    duration,
    esc,
    grid,
    link,
    number,
    short_run,
    short_when,
    table_page,
    when,
)
from headwater.catalog_site.pages import page
from headwater.catalog_site.svg_charts import Category, Series, color_for, line_chart, stacked_bar_chart
from headwater.ops.run_records import History

CONTRACT_RUNS = 5  # contract results are listed for this many recent finished runs
OUTCOMES = ("passed", "failed", "warned", "error")
BREACH_COLORS = {"warn": "#b7791f", "error": "#c53030"}


def render_dashboard(data: SiteData) -> str:
    history = data.history
    parts = ["<h1>Quality dashboard</h1>",
             f'<p class="lead">The last {len(history.runs)} run{"s" if len(history.runs) != 1 else ""} recorded in '
             "schema <code>headwater_ops</code> of the destination, oldest on the left.</p>"]
    if not history.runs:
        parts.append('<p class="empty-note">No runs recorded yet. Every run of the daily flow '
                     "(<code>python -m flows.daily</code>) records itself; run it, then <code>headwater docs</code>."
                     "</p>")
        return page(data, "Quality dashboard", "\n".join(parts), DASHBOARD)
    categories = run_categories(history)
    charts = [
        (quality_chart(history, categories), "Checks passed out of all contract checks a run verified; "
         "a run that verified no contract has no point."),
        (rows_chart(history, categories, "rows_loaded", "Rows loaded per run", "rows-loaded"),
         "Rows written to the raw tables, per source."),
        (rows_chart(history, categories, "rows_quarantined", "Rows quarantined per run", "quarantined"),
         "Rows that broke a rule or could not be parsed, kept in <table>__quarantine."),
        (breaches_chart(history, categories), "Tables past their freshness SLA at the end of each run."),
    ]
    parts.append('<section class="charts" id="charts">' + "".join(
        f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>" for svg, caption in charts) + "</section>")
    parts.append('<h2 id="runs">Runs</h2>')
    parts.append(_runs_table(history))
    parts.append('<h2 id="contracts">Contract results of the last runs</h2>')
    parts.append(_contracts_table(history))
    parts.append('<h2 id="freshness">Freshness</h2>')
    parts.append(_freshness(data))
    parts.append('<h2 id="quarantine">Quarantine</h2>')
    parts.append(_quarantine(history))
    return page(data, "Quality dashboard", "\n".join(parts), DASHBOARD)


def run_categories(history: History) -> list[Category]:
    """One x position per run: its start time (to the second when two runs share a minute)."""
    labels = [short_when(run.started_at) for run in history.runs]
    if len(set(labels)) < len(labels):
        labels = [run.started_at.strftime("%d %H:%M:%S") for run in history.runs]
    return [Category(run.run_id, label, f"run {short_run(run.run_id)} ({when(run.started_at)}, {run.status})")
            for run, label in zip(history.runs, labels, strict=True)]


def quality_chart(history: History, categories: list[Category]) -> str:
    values = []
    for run in history.runs:
        checks = history.of_run(history.checks, run.run_id)
        passed = sum(1 for check in checks if check.outcome == "passed")
        values.append(100.0 * passed / len(checks) if checks else None)
    return line_chart(categories, [Series("checks passed", tuple(values))], title="Quality score: checks passed",
                      chart_id="quality", unit="%", y_max=100.0)


def rows_chart(history: History, categories: list[Category], field: str, title: str, chart_id: str) -> str:
    sources = sorted({load.source for load in history.loads})
    per_run: dict[tuple[str, str], int] = defaultdict(int)
    for load in history.loads:
        per_run[(load.run_id, load.source)] += getattr(load, field) or 0
    series = [Series(source, tuple(float(per_run[(run.run_id, source)]) for run in history.runs), color_for(i))
              for i, source in enumerate(sources)]
    return stacked_bar_chart(categories, series, title=title, chart_id=chart_id)


def breaches_chart(history: History, categories: list[Category]) -> str:
    counts = Counter((record.run_id, record.status) for record in history.freshness if record.breached)
    series = [Series(f"{status} breaches", tuple(float(counts[(run.run_id, status)]) for run in history.runs), color)
              for status, color in BREACH_COLORS.items()]
    return stacked_bar_chart(categories, series, title="Freshness breaches per run", chart_id="freshness-breaches")


def _runs_table(history: History) -> str:
    rows, classes = [], []
    for run in reversed(history.runs):
        checks = history.of_run(history.checks, run.run_id)
        loads = history.of_run(history.loads, run.run_id)
        passed = sum(1 for check in checks if check.outcome == "passed")
        quarantined = sum(load.rows_quarantined or 0 for load in loads)
        failures = "; ".join(run.failures)
        rows.append([f'<code title="{esc(run.run_id)}">{esc(short_run(run.run_id))}</code>',
                     badge(run.status, run.status), esc(when(run.started_at)), esc(duration(run.seconds)),
                     esc(number(run.rows_loaded)), esc(number(quarantined)),
                     f"{passed}/{len(checks)}" if checks else "-", esc(run.started_by),
                     esc(failures if len(failures) <= 200 else failures[:197] + "...")])
        classes.append(f"run {run.status}")
    return grid(["run", "status", "started", "duration", "rows loaded", "quarantined", "checks passed",
                 "started by", "failures"], rows, numeric={4, 5, 6}, row_classes=classes, css="grid runs")


def _contracts_table(history: History) -> str:
    recent = history.finished_runs[-CONTRACT_RUNS:]
    rows, classes = [], []
    for run in reversed(recent):
        per_contract: dict[str, Counter] = defaultdict(Counter)
        for check in history.of_run(history.checks, run.run_id):
            per_contract[check.contract][check.outcome] += 1
        for contract in sorted(per_contract):
            counts = per_contract[contract]
            worst = next((outcome for outcome in ("error", "failed", "warned") if counts[outcome]), "passed")
            rows.append([f'<code title="{esc(run.run_id)}">{esc(short_run(run.run_id))}</code> '
                         f"{esc(short_when(run.started_at))}", link(table_page(contract), contract),
                         badge(worst, worst), *(str(counts[outcome]) for outcome in OUTCOMES)])
            classes.append(f"contract {worst}")
    return grid(["run", "contract", "result", *OUTCOMES], rows, numeric={3, 4, 5, 6}, row_classes=classes,
                css="grid contracts", empty="no contract was verified in the last runs")


def _freshness(data: SiteData) -> str:
    latest = data.history.latest_freshness()
    rows = []
    for key, record in sorted(latest.items()):
        sla = ", ".join(f"{name} {duration(value)}" for name, value in
                        (("warn", record.warn_after_seconds), ("error", record.error_after_seconds)) if value)
        rows.append([link(table_page(key), key), esc("never loaded" if record.last_value is None else
                                                     when(record.last_value)), esc(record.basis),
                     esc(duration(record.age_seconds)), esc(sla), badge(record.status, record.status),
                     esc(when(record.checked_at))])
    out = ["<h3>Latest per table</h3>", grid(["table", "newest data", "basis", "age", "SLA", "status", "checked"],
                                             rows, empty="no table has a freshness SLA: add `freshness:` to a source "
                                             "or table in headwater.yaml")]
    runs = {run.run_id: run for run in data.history.runs}
    breaches = sorted((record for record in data.history.freshness if record.breached and record.run_id in runs),
                      key=lambda record: (runs[record.run_id].started_at, record.table_key), reverse=True)
    out.append("<h3>Breaches in the last runs</h3>")
    out.append(grid(["run", "table", "age", "status"], [
        [f"{esc(short_run(record.run_id))} {esc(short_when(runs[record.run_id].started_at))}",
         link(table_page(record.table_key), record.table_key), esc(duration(record.age_seconds)),
         badge(record.status, record.status)] for record in breaches], css="grid breaches",
        empty="no breach in the last runs"))
    return "".join(out)


def _quarantine(history: History) -> str:
    totals: dict[str, int] = defaultdict(int)
    last: dict[str, str] = {}
    runs = {run.run_id: run for run in history.runs}
    for load in sorted((load for load in history.loads if load.run_id in runs),
                       key=lambda load: runs[load.run_id].started_at):
        if load.table and load.rows_quarantined:
            key = f"raw_{load.source}.{load.table}"
            totals[key] += load.rows_quarantined
            last[key] = load.run_id
    rows = [[link(table_page(key), key), number(total), esc(short_run(last[key]))]
            for key, total in sorted(totals.items())]
    note = ("<p>Quarantined rows are in <code>raw_&lt;source&gt;.&lt;table&gt;__quarantine</code>; "
            "<code>headwater quarantine list</code> shows why, <code>headwater quarantine replay</code> loads them "
            "once fixed.</p>")
    return note + grid(["table", "rows quarantined in these runs", "last run with quarantine"], rows, numeric={1},
                       css="grid quarantine", empty="no row was quarantined in the last runs")
