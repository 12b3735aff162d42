"""Run-history charts as inline SVG strings: a line chart and a stacked bar chart, no JS, no assets.

Both take the x axis as a list of ``Category`` (one per run, oldest first) and the values as ``Series``
aligned with it. Every point is a ``<circle class="point">`` and every bar a ``<g class="bar">`` with
``data-key`` (the run id), so tests and readers can count them; a ``<title>`` gives each a tooltip.
Output is deterministic: the same data gives the same string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 30, 40
MAX_X_LABELS = 8
PALETTE = ("#2b6cb0", "#2f855a", "#b7791f", "#805ad5", "#c53030", "#2c7a7b", "#d53f8c", "#4a5568")


@dataclass(frozen=True)
class Category:
    key: str  # stable identity, e.g. the run id (data-key)
    label: str  # what the axis shows, e.g. "11-27 06:00"
    title: str = ""  # what a tooltip calls it; the label when empty

    @property
    def name(self) -> str:
        return self.title or self.label


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]  # one per category; None: nothing measured (no point, no segment)
    color: str = PALETTE[0]


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_step(value: float, *, integer: bool = False) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above value: an axis step with round labels."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if value <= step + 1e-9 and (not integer or step == int(step)):
            return float(step)
    return 10.0 * magnitude  # pragma: no cover - the loop always returns


def axis(maximum: float, *, integer: bool = False, ticks: int = 5) -> tuple[float, float]:
    """(top, step) of a y axis from 0 that holds maximum with about ``ticks`` round steps."""
    step = max(nice_step(maximum / ticks, integer=integer), 1.0 if integer else 0.0) or 1.0
    return step * max(1, math.ceil(maximum / step - 1e-9)), step


def format_number(value: float, unit: str = "") -> str:
    if unit == "%":
        return f"{value:.0f}%" if abs(value - round(value)) < 0.05 else f"{value:.1f}%"
    if abs(value) >= 1_000_000:
        text = f"{value / 1_000_000:.1f}".rstrip("0").rstrip(".") + "M"
    elif abs(value) >= 10_000:
        text = f"{value / 1_000:.1f}".rstrip("0").rstrip(".") + "k"
    elif value == int(value):
        text = f"{int(value):,}"
    else:
        text = f"{value:,.2f}"
    return text + unit


def line_chart(
    categories: list[Category],
    series: list[Series],
    *,
    title: str,
    chart_id: str,
    unit: str = "",
    y_max: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One polyline per series; a gap where a value is None. ``unit='%'`` takes values in 0..100."""
    _check_lengths(categories, series)
    values = [value for line in series for value in line.values if value is not None]
    top, step = (y_max, y_max / 4) if y_max is not None else axis(max(values, default=0))
    frame = _Frame(categories, top, step, width, height)
    out = [_open(chart_id, title, width, height, kind="line"), _axes(frame, unit)]
    if not values:
        out.append(_empty(frame, "no data yet"))
    for line in series:
        out.append(f'<g class="series" data-series="{escape(line.name)}">')
        for segment in _segments(line.values):
            points = " ".join(f"{frame.x(i):.1f},{frame.y(value):.1f}" for i, value in segment)
            if len(segment) > 1:
                out.append(f'<polyline points="{points}" fill="none" stroke="{line.color}" stroke-width="2"/>')
        for i, value in enumerate(line.values):
            if value is None:
                continue
            category = categories[i]
            out.append(
                f'<circle class="point" cx="{frame.x(i):.1f}" cy="{frame.y(value):.1f}" r="3.5" fill="{line.color}" '
                f'data-key="{escape(category.key)}" data-value="{value:g}">'
                f"<title>{escape(category.name)} · {escape(line.name)}: {escape(format_number(value, unit))}</title>"
                "</circle>"
            )
        out.append("</g>")
    return _closed(out, frame, series, width, height)


def stacked_bar_chart(
    categories: list[Category],
    series: list[Series],
    *,
    title: str,
    chart_id: str,
    unit: str = "",
    integer: bool = True,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """One bar per category (even a zero one), its series stacked bottom-up in the order given."""
    _check_lengths(categories, series)
    totals = [sum(line.values[i] or 0 for line in series) for i in range(len(categories))]
    frame = _Frame(categories, *axis(max(totals, default=0), integer=integer), width, height)
    out = [_open(chart_id, title, width, height, kind="bar"), _axes(frame, unit)]
    if not categories:
        out.append(_empty(frame, "no data yet"))
    bar_width = max(2.0, min(48.0, frame.step * 0.7))
    for i, category in enumerate(categories):
        x = frame.x(i) - bar_width / 2
        parts = [f"{line.name}: {format_number(line.values[i] or 0, unit)}" for line in series if line.values[i]]
        tooltip = f"{category.name}: {format_number(totals[i], unit)}" + (f" ({', '.join(parts)})" if parts else "")
        out.append(f'<g class="bar" data-key="{escape(category.key)}" data-value="{totals[i]:g}">'
                   f"<title>{escape(tooltip)}</title>")
        base = 0.0
        for line in series:
            value = line.values[i] or 0
            if value <= 0:
                continue
            y_top, y_bottom = frame.y(base + value), frame.y(base)
            out.append(f'<rect class="segment" x="{x:.1f}" y="{y_top:.1f}" width="{bar_width:.1f}" '
                       f'height="{max(y_bottom - y_top, 0.5):.1f}" fill="{line.color}" '
                       f'data-series="{escape(line.name)}" data-value="{value:g}"/>')
            base += value
        if base == 0:  # a run that loaded nothing still shows on the axis
            out.append(f'<rect class="zero" x="{x:.1f}" y="{frame.y(0) - 1:.1f}" width="{bar_width:.1f}" '
                       'height="1" fill="#a0aec0"/>')
        out.append("</g>")
    return _closed(out, frame, series, width, height)


def _closed(out: list[str], frame: "_Frame", series: list[Series], width: int, height: int) -> str:
    """The chart's SVG: the parts so far, then the category labels, a legend when there are several series."""
    out.append(_x_labels(frame))
    if len(series) > 1:
        out.append(_legend(series, width, height))
    out.append("</svg>")
    return "".join(out)


class _Frame:
    """Maps category index and value to plot coordinates."""

    def __init__(self, categories: list[Category], top: float, step: float, width: int, height: int) -> None:
        self.categories = categories
        self.top = top or 1.0
        self.step_y = step or self.top
        self.left, self.right = PAD_LEFT, width - PAD_RIGHT
        self.upper, self.lower = PAD_TOP, height - PAD_BOTTOM
        self.step = (self.right - self.left) / max(len(categories), 1)

    def x(self, index: int) -> float:
        return self.left + self.step * (index + 0.5)

    def y(self, value: float) -> float:
        return self.lower - (self.lower - self.upper) * min(max(value / self.top, 0.0), 1.0)


def _check_lengths(categories: list[Category], series: list[Series]) -> None:
    for line in series:
        if len(line.values) != len(categories):
            raise ValueError(f"series {line.name!r} has {len(line.values)} values for {len(categories)} categories")


def _open(chart_id: str, title: str, width: int, height: int, *, kind: str) -> str:
    return (f'<svg class="chart chart-{kind}" data-chart="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>"
            f'<text class="chart-title" x="{PAD_LEFT}" y="18">{escape(title)}</text>')


def _axes(frame: _Frame, unit: str) -> str:
    out = ['<g class="axes">']
    for index in range(round(frame.top / frame.step_y) + 1):
        value = index * frame.step_y
        y = frame.y(value)
        out.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                   f"{escape(format_number(value, unit))}</text>")
    out.append("</g>")
    return "".join(out)


def _x_labels(frame: _Frame) -> str:
    count = len(frame.categories)
    if not count:
        return ""
    every = max(1, math.ceil(count / MAX_X_LABELS))
    shown = sorted({*range(0, count, every), count - 1})
    y = frame.lower + 16
    return "".join(
        f'<text x="{frame.x(i):.1f}" y="{y}" text-anchor="middle" class="tick">'
        f"{escape(frame.categories[i].label)}</text>"
        for i in shown
    )


def _legend(series: list[Series], width: int, height: int) -> str:
    """Swatches under the x labels; names that do not fit are left to the tooltips."""
    out, x, y = ['<g class="legend">'], PAD_LEFT, height - 14
    for line in series:
        if x > width - 60:
            break
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{line.color}"/>'
                   f'<text x="{x + 14}" y="{y + 9}" class="tick">{escape(line.name)}</text>')
        x += 30 + 7 * len(line.name)
    out.append("</g>")
    return "".join(out)


def _empty(frame: _Frame, message: str) -> str:
    x = (frame.left + frame.right) / 2
    y = (frame.upper + frame.lower) / 2
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="middle" class="empty">{escape(message)}</text>'


def _segments(values: tuple[float | None, ...]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive measured values: a line is not drawn across a run without a value."""
    segments: list[list[tuple[int, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
        else:
            segments[-1].append((i, value))
    return [segment for segment in segments if segment]
