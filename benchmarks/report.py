"""Benchmark results: the rows measured, the targets judged against them, and the Markdown written from both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    """One line of the results table."""

    case: str
    rows: int
    seconds: float
    ratio: float  # against `basis`
    basis: str  # what the ratio compares with, e.g. "raw COPY, same rows"
    peak_rss_mb: float | None = None
    note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Target:
    """A stated goal and what was measured for it; ``higher_is_better`` says which way ``goal`` bounds."""

    name: str
    measured: float
    goal: float
    unit: str  # "x" for ratios, "s" for seconds
    higher_is_better: bool = True
    profile: str = ""  # top of a profile of the case, when the goal was missed
    detail: str = ""

    @property
    def met(self) -> bool:
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    def verdict(self) -> str:
        if self.met:
            return "met"
        if self.higher_is_better:
            return f"missed by {self.goal - self.measured:.2f}{self.unit} ({self.measured / self.goal:.0%} of the goal)"
        return f"missed by {self.measured - self.goal:.2f}{self.unit} ({self.measured / self.goal:.1f}x the goal)"


@dataclass
class Report:
    title: str
    command: str
    sizes: list[int]
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


def _number(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def render(report: Report) -> str:
    """The results as Markdown: the table, the targets, the profiles of missed targets, the machine."""
    lines = [f"# {report.title}", "", f"Command: `{report.command}`", "",
             f"Sizes run: {', '.join(f'{size:,}' for size in report.sizes)} rows; "
             f"whole benchmark took {report.total_seconds:.0f} s.", "",
             "## Results", "",
             "| case | rows | seconds | rows/s | ratio | ratio to | peak RSS MB | note |",
             "|---|---:|---:|---:|---:|---|---:|---|"]
    for row in report.rows:
        rss = _number(row.peak_rss_mb, 0) if row.peak_rss_mb is not None else ""
        lines.append(f"| {row.case} | {row.rows:,} | {_number(row.seconds)} | {_number(row.rows_per_second, 0)} "
                     f"| {_number(row.ratio)} | {row.basis} | {rss} | {row.note} |")
    lines += ["", "## Targets", "", "| target | goal | measured | verdict |", "|---|---:|---:|---|"]
    for target in report.targets:
        sign = ">=" if target.higher_is_better else "<="
        lines.append(f"| {target.name} | {sign} {target.goal:g}{target.unit} | {target.measured:.2f}{target.unit} "
                     f"| {target.verdict()} |")
    details = [target for target in report.targets if target.detail or (target.profile and not target.met)]
    shown: dict[str, str] = {}  # profile text -> the target it was first shown under
    for target in details:
        lines += ["", f"### {target.name}: {target.verdict()}", ""]
        if target.detail:
            lines += [target.detail, ""]
        if target.profile and not target.met:
            if target.profile in shown:
                lines += [f"Profile: the one shown under \"{shown[target.profile]}\" above."]
                continue
            shown[target.profile] = target.name
            lines += ["Top of the profile of the thread that drives the run (cProfile, own time; "
                      "dlt's load jobs and the read-ahead thread run beside it):",
                      "", "```", target.profile, "```"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in report.machine.items()]
    return "\n".join(lines) + "\n"


def write(report: Report, path: Path) -> None:
    """The results file anew, keeping the sections that ``benchmarks.endtoend`` and
    ``benchmarks.parallel_full_load`` write into it."""
    from benchmarks import parallel_full_load
    from benchmarks.endtoend.report import own_section

    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    kept = "\n".join(section for section in (own_section(text), parallel_full_load.own_section(text)) if section)
    path.write_text(render(report) + ("\n" + kept if kept else ""))
