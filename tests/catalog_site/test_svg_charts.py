"""The run-history charts: one point or bar per run, gaps, stacking, axis labels, escaping, determinism."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from headwater.catalog_site.svg_charts import Category, Series, axis, line_chart, stacked_bar_chart


def parse(svg: str) -> ET.Element:
    """The SVG is well-formed XML on its own (every attribute and text escaped)."""
    return ET.fromstring(svg)


def runs(count: int) -> list[Category]:
    return [Category(f"run-{i}", f"11-{i + 1:02d} 06:00") for i in range(count)]


def test_line_chart_has_a_point_per_measured_run_and_breaks_the_line_at_gaps():
    svg = line_chart(runs(5), [Series("checks passed", (100.0, 50.0, None, 75.0, 100.0))],
                     title="Quality", chart_id="quality", unit="%", y_max=100.0)
    root = parse(svg)
    assert root.get("data-chart") == "quality"
    points = root.findall(".//circle[@class='point']")
    assert [p.get("data-key") for p in points] == ["run-0", "run-1", "run-3", "run-4"]
    assert [p.get("data-value") for p in points] == ["100", "50", "75", "100"]
    assert len(root.findall(".//polyline")) == 2  # no line across the run without checks
    ticks = [t.text for t in root.iter("text") if t.get("class") == "tick"]
    assert {"0%", "25%", "50%", "75%", "100%"} <= set(ticks)
    # 100% is at the top of the plot, 50% half-way down
    ys = {p.get("data-value"): float(p.get("cy")) for p in points}
    assert ys["100"] < ys["75"] < ys["50"]


def test_stacked_bars_one_per_run_even_when_nothing_was_loaded():
    series = [Series("shop_db", (60.0, 5.0, 0.0), "#111111"), Series("shop_files", (220.0, 26.0, 0.0), "#222222")]
    root = parse(stacked_bar_chart(runs(3), series, title="Rows loaded", chart_id="rows"))
    bars = root.findall(".//g[@class='bar']")
    assert [bar.get("data-key") for bar in bars] == ["run-0", "run-1", "run-2"]
    assert [bar.get("data-value") for bar in bars] == ["280", "31", "0"]
    first = bars[0].findall("rect[@class='segment']")
    assert [(r.get("data-series"), r.get("fill")) for r in first] == [("shop_db", "#111111"), ("shop_files", "#222222")]
    # stacked bottom-up: shop_files sits on shop_db, heights proportional to the values
    db, files = (float(r.get("height")) for r in first)
    assert files / db == pytest.approx(220 / 60, rel=0.02)
    assert float(first[1].get("y")) + files == pytest.approx(float(first[0].get("y")), abs=0.2)
    assert bars[2].find("rect[@class='zero']") is not None and not bars[2].findall("rect[@class='segment']")
    assert {t.text for t in root.iter("text")} >= {"shop_db", "shop_files"}  # legend


def test_count_axes_have_whole_numbers():
    root = parse(stacked_bar_chart(runs(2), [Series("breaches", (1.0, 2.0))], title="t", chart_id="c"))
    ticks = [t.text for t in root.iter("text") if t.get("class") == "tick" and t.text not in ("11-01 06:00",
                                                                                            "11-02 06:00")]
    assert ticks == ["0", "1", "2"]
    assert axis(280) == (300, 100) and axis(7, integer=True) == (8, 2) and axis(0) == (1, 1)


def test_labels_and_names_are_escaped():
    nasty = '<script>alert("x")</script> & co'
    svg = line_chart([Category(nasty, nasty)], [Series(nasty, (1.0,))], title=nasty, chart_id=nasty)
    svg += stacked_bar_chart([Category(nasty, nasty)], [Series(nasty, (1.0,))], title=nasty, chart_id=nasty)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    parse(svg.split("</svg>")[0] + "</svg>")


def test_empty_history_and_mismatched_series():
    root = parse(line_chart([], [Series("s", ())], title="t", chart_id="c"))
    assert not root.findall(".//circle") and any(t.text == "no data yet" for t in root.iter("text"))
    root = parse(stacked_bar_chart([], [], title="t", chart_id="c"))
    assert not root.findall(".//g[@class='bar']")
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        line_chart(runs(3), [Series("s", (1.0, 2.0))], title="t", chart_id="c")


def test_output_is_deterministic():
    series = [Series("a", (1.0, 3.0, 2.0)), Series("b", (0.5, None, 4.0), "#000000")]
    assert line_chart(runs(3), series, title="t", chart_id="c") == line_chart(runs(3), series, title="t", chart_id="c")
    bars = [Series("a", (1.0, 3.0, 2.0))]
    assert stacked_bar_chart(runs(3), bars, title="t", chart_id="c") == stacked_bar_chart(runs(3), bars, title="t",
                                                                                        chart_id="c")
