"""The end-to-end section of benchmarks/results.md: a table per workload and the targets, between markers so
``benchmarks.run`` (which writes the rest of the file) keeps it and this suite replaces only its own part."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

START, END = "<!-- endtoend:start -->", "<!-- endtoend:end -->"
# Headwater's whole command against raw COPY of the same rows, per workload (issue 16).
COPY_GOALS = {"parquet": 0.9, "csv": 0.8, "postgres": 0.8, "mariadb": 0.8}
PEERS = ("ingestr", "Sling", "Singer")


@dataclass
class Attempt:
    seconds: float
    peak_rss_mb: float
    problem: str = ""  # "" when the run exited 0 and the target matched the source
    timed_out: bool = False  # killed at the suite's --timeout: slower than that, whatever else it did
    tool_cpu_s: float = 0.0  # CPU seconds of the command's processes and its helpers (warm worker, Prefect)
    database_cpu_s: float = 0.0  # CPU seconds of the database servers while it ran


@dataclass
class Outcome:
    """One contender on one workload over the rounds."""

    name: str
    note: str = ""
    unavailable: str = ""
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def verified(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if not attempt.problem]

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and len(self.verified) == len(self.attempts)

    @property
    def median(self) -> float | None:
        return statistics.median(a.seconds for a in self.verified) if self.ok else None

    def median_cpu(self, attribute: str) -> float | None:
        return statistics.median(getattr(a, attribute) for a in self.verified) if self.ok else None

    @property
    def timed_out(self) -> bool:
        return bool(self.attempts) and all(attempt.timed_out for attempt in self.attempts)

    @property
    def peak_rss_mb(self) -> float | None:
        measured = [a.peak_rss_mb for a in self.attempts if a.peak_rss_mb > 0]  # none from a killed command
        return max(measured) if measured else None


@dataclass
class Section:
    command: str
    rows: int
    api_rows: int
    rounds: int
    timeout: float
    load_start: str
    load_end: str = ""
    seconds: float = 0.0
    workloads: dict[str, tuple[str, list[Outcome]]] = field(default_factory=dict)  # key -> (title, outcomes)


def _peer_of(name: str) -> str | None:
    return next((peer for peer in PEERS if name.startswith(peer)), None)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (an error line or a note may hold a pipe)."""
    return text.replace("|", "\\|")


def _table(title: str, rows: int, outcomes: list[Outcome]) -> list[str]:
    copy = next((o.median for o in outcomes if o.name == "raw COPY"), None)
    lines = [f"### {title}, {rows:,} rows", "",
             "| contender | median s | rows/s | ratio to raw COPY | CPU s: tool + databases | peak RSS MB | verified "
             "| note |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for outcome in outcomes:
        if outcome.unavailable:
            why = outcome.unavailable if outcome.unavailable.startswith("not run") else \
                f"cannot run here: {outcome.unavailable}"
            lines.append(f"| {outcome.name} | | | | | | {_cell(why)} | {_cell(outcome.note)} |")
            continue
        median = outcome.median
        rss = f"{outcome.peak_rss_mb:,.0f}" if outcome.peak_rss_mb is not None else ""
        if median is None:
            problems = [a.problem for a in outcome.attempts if a.problem]
            lines.append(f"| {outcome.name} | | | | | {rss} | {_cell(problems[0] if problems else 'not run')} "
                         f"({len(problems)} of {len(outcome.attempts)} runs) | {_cell(outcome.note)} |")
            continue
        ratio = f"{copy / median:.2f}" if copy else ""
        tool, databases = outcome.median_cpu("tool_cpu_s"), outcome.median_cpu("database_cpu_s")
        cpu = f"{tool:.2f} + {databases:.2f}"
        lines.append(f"| {outcome.name} | {median:.2f} | {rows / median:,.0f} | {ratio} | {cpu} | {rss} "
                     f"| yes ({len(outcome.verified)}/{len(outcome.attempts)}) | {_cell(outcome.note)} |")
    return lines + [""]


def _faster_than(name: str, outcome: Outcome, hw: float | None, timeout: float) -> tuple[str, str, str, str]:
    if hw is None:
        return name, "faster", "", "missed: Headwater failed"
    if outcome.timed_out:  # killed at the timeout: slower than the timeout, which Headwater stayed under
        met = hw < timeout
        return (name, "faster", f"> {timeout / hw:.2f}x (over {timeout:.0f} s vs {hw:.2f} s)",
                f"{'met' if met else 'missed'}: {outcome.name} did not finish within the {timeout:.0f} s timeout")
    if outcome.unavailable or outcome.median is None:
        why = ("not run" if outcome.unavailable.startswith("not run") else "cannot run here") \
            if outcome.unavailable else "its runs failed or landed wrong numbers"
        return name, "faster", "", f"no comparison: {outcome.name}: {why}"
    ratio = outcome.median / hw
    return (name, "faster", f"{ratio:.2f}x ({outcome.median:.2f} s vs {hw:.2f} s)", "met" if ratio > 1 else "missed")


def targets(section: Section) -> list[tuple[str, str, str, str]]:
    """(target, goal, measured, verdict) rows."""
    found = []
    for key, (title, outcomes) in section.workloads.items():
        by_name = {o.name: o for o in outcomes}
        headwater, copy = by_name.get("Headwater"), by_name.get("raw COPY")
        if headwater is None or headwater.unavailable:
            continue  # Headwater was left out of this invocation: nothing to judge
        hw = headwater.median
        if key in COPY_GOALS and copy and copy.median:
            goal = COPY_GOALS[key]
            if hw is None:
                found.append((f"{title}: Headwater vs raw COPY", f">= {goal}x", "", "missed: Headwater failed"))
            else:
                ratio = copy.median / hw
                found.append((f"{title}: Headwater vs raw COPY", f">= {goal}x", f"{ratio:.2f}x",
                              "met" if ratio >= goal else f"missed by {goal - ratio:.2f}x"))
        for outcome in outcomes:
            if _peer_of(outcome.name):
                found.append(_faster_than(f"{title}: Headwater faster than {outcome.name}", outcome, hw,
                                          section.timeout))
    return found


def render(section: Section) -> str:
    lines = [START, "## End to end: whole commands, peers, interleaved rounds", "",
             f"Command: `{section.command}`", "",
             f"{section.rows:,} rows x 10 columns ({section.api_rows:,} records for the API); median of "
             f"{section.rounds} interleaved round(s); the suite took {section.seconds:.0f} s. A command still running "
             f"after {section.timeout:.0f} s is killed, reported as such and not run again. Load average "
             f"(1, 5, 15 min) at start {section.load_start}, at end {section.load_end}.", "",
             "Each contender is one shell command timed from spawn to exit (wall clock), in rotated order per "
             "round, into a schema dropped before it, once the server's autovacuum workers are idle and after a "
             "CHECKPOINT. Every landed table is checked against the source: row count, distinct ids and the sum "
             "of each numeric column; a run that lands other numbers counts as wrong, never as a time. The "
             "checked table is dropped at once, so its background vacuum never runs during the next command. "
             "Ratio to raw COPY is COPY's median over the "
             "contender's (above 1: faster than COPY). CPU s is the median of the CPU seconds spent while the "
             "command ran: by the tool (the command's processes, plus Headwater's warm worker and Prefect server) "
             "and by the database servers (PostgreSQL, MariaDB); on this 2-core machine their sum over 2 is a "
             "floor for the wall time. Peak RSS is the largest single process of the command "
             "(GNU time's maximum resident set size), the highest over the rounds. Peers run from their own venvs "
             "under "
             "~/.cache/headwater-bench/venvs, created by the runner with pip.", ""]
    for title, outcomes in section.workloads.values():
        rows = section.api_rows if title.startswith("JSON API") else section.rows
        lines += _table(title, rows, outcomes)
    lines += ["### End-to-end targets", "", "| target | goal | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {name} | {goal} | {measured} | {verdict} |" for name, goal, measured, verdict in targets(section)]
    lines += ["", "Peak RSS from 1M to 5M rows is measured by `python -m benchmarks.run` (the section above).", END]
    return "\n".join(lines) + "\n"


def own_section(text: str) -> str:
    """The end-to-end section of a results file, markers included ("" when there is none)."""
    return marked_section(text, START, END)


def marked_section(text: str, start: str, end: str) -> str:
    """The part of ``text`` from the ``start`` marker to the ``end`` marker, both included ("" when absent)."""
    if start in text and end in text:
        return text[text.index(start):text.index(end) + len(end)] + "\n"
    return ""


def write(section: Section, path: Path) -> None:
    replace_section(path, render(section), START, END)


def replace_section(path: Path, new: str, start: str, end: str) -> None:
    """Replace the section between ``start`` and ``end`` in ``path`` by ``new`` (or add it at the end), leaving
    the rest of the file as it is."""
    text = path.read_text() if path.exists() else ""
    old = marked_section(text, start, end)
    text = text.replace(old, new) if old else (text.rstrip("\n") + "\n\n" + new if text else new)
    path.write_text(text)
