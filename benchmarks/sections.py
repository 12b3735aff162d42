"""Sections of benchmarks/results.md that each suite writes between its own markers.

``benchmarks.run`` writes the file anew and keeps every marked section; each other suite replaces only its own
(or adds it at the end), so the suites can run on different days and still share one results file.
"""

from __future__ import annotations

from pathlib import Path

SUITES = ("endtoend", "parallel-full-load", "scale_out")


def markers(suite: str) -> tuple[str, str]:
    return f"<!-- {suite}:start -->", f"<!-- {suite}:end -->"


def section_of(text: str, suite: str) -> str:
    """The suite's section of a results file, markers included ("" when there is none)."""
    start, end = markers(suite)
    if start in text and end in text:
        return text[text.index(start):text.index(end) + len(end)] + "\n"
    return ""


def marked(suite: str, markdown: str) -> str:
    start, end = markers(suite)
    return f"{start}\n{markdown.rstrip()}\n{end}\n"


def kept_sections(path: Path) -> str:
    """Every suite's section of ``path``, in SUITES order, for a rewrite of the rest of the file to keep."""
    text = path.read_text() if path.exists() else ""
    return "\n".join(section for suite in SUITES if (section := section_of(text, suite)))


def replace_section(path: Path, suite: str, section: str) -> None:
    """Put ``section`` (markers included) in place of the suite's in ``path``, or at the end; the rest stays."""
    text = path.read_text() if path.exists() else ""
    old = section_of(text, suite)
    text = text.replace(old, section) if old else (text.rstrip("\n") + "\n\n" + section if text else section)
    path.write_text(text)
