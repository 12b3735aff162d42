"""HTML building blocks shared by every page: the frame, escaping, badges, tables, file names.

Every string that comes from data goes through ``esc`` (html.escape, quotes included). Links are
relative file names in one folder, so the site opens from file:// and can be copied anywhere.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape

from headwater import __version__
from headwater.catalog_site.assets import STYLESHEET_NAME
from headwater.project.freshness import format_age

INDEX, DASHBOARD = "index.html", "dashboard.html"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def esc(value: object) -> str:
    return escape("" if value is None else str(value))


def table_page(table_key: str) -> str:
    """``marts.customers`` -> ``marts.customers.html`` (two dots at least: never clashes with other pages)."""
    return _UNSAFE.sub("_", table_key) + ".html"


def source_page(source: str) -> str:
    return f"source-{_UNSAFE.sub('_', source)}.html"


def link(href: str | None, text: object, **attributes: str) -> str:
    extra = "".join(f' {name.rstrip("_")}="{esc(value)}"' for name, value in attributes.items())
    return f'<a href="{esc(href)}"{extra}>{esc(text)}</a>' if href else f"<span{extra}>{esc(text)}</span>"


def badge(text: object, kind: str = "") -> str:
    return f'<span class="badge {esc(kind)}">{esc(text)}</span>'


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def short_when(moment: datetime) -> str:
    return moment.strftime("%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_age(seconds)


def number(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,}"


def short_run(run_id: str) -> str:
    return run_id[:8]


def grid(headers: list[str], rows: list[list[str]], *, numeric: set[int] = frozenset(), row_classes=None,
         css: str = "grid", empty: str = "nothing to show") -> str:
    """A table from cells that are already HTML; ``numeric`` column indexes are right-aligned."""
    if not rows:
        return f'<p class="empty-note">{esc(empty)}</p>'
    num = ' class="num"'
    head = "".join(f"<th{num if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        css_row = f' class="{esc(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(f"<td{num if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row))
        body.append(f"<tr{css_row}>{cells}</tr>")
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def frame(title: str, body: str, *, project: str, generated_at: datetime, active: str = "") -> str:
    """A whole page: header with navigation, the body, a footer."""
    current = ' class="active"'
    nav = "".join(
        f'<a href="{href}"{current if href == active else ""}>{label}</a>'
        for href, label in ((INDEX, "Catalog"), (DASHBOARD, "Quality dashboard"))
    )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="headwater {esc(__version__)}">'
        f"<title>{esc(title)} · {esc(project)} catalog</title>"
        f'<link rel="stylesheet" href="{STYLESHEET_NAME}"></head>\n'
        f'<body><header><a class="brand" href="{INDEX}">{esc(project)}</a><nav>{nav}</nav></header>\n'
        f"<main>\n{body}\n</main>\n"
        f"<footer>Written by <code>headwater docs</code> at {esc(when(generated_at))}.</footer>"
        "</body></html>\n"
    )
