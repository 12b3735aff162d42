"""`headwater docs`: a static catalog site of the project, written to a folder and opened from file://.

index.html lists every source, raw table and dbt model by layer; each table has a page with its
columns (type, description, PII tag, checks), row count, freshness and an inline-SVG lineage
diagram; dashboard.html charts the run history of headwater_ops. No server, no JavaScript, no
asset from the internet: the pages and one style.css.

    from headwater.catalog_site import write_site
    index = write_site(project, address)   # .headwater/site/index.html (or catalog.site_dir)

Imports: common, project, lineage, marts, ops, postgres.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from headwater.catalog_site.assets import STYLESHEET, STYLESHEET_NAME
from headwater.catalog_site.collect import Progress, SiteData, collect_site
from headwater.catalog_site.dashboard import render_dashboard
from headwater.catalog_site.html import DASHBOARD, INDEX, source_page, table_page
from headwater.catalog_site.pages import RESOURCE, render_index, render_source, render_table

if TYPE_CHECKING:
    from headwater.lineage.model import Lineage
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig

# The files of the last write, so the next one removes pages of tables that no longer exist (and nothing else).
MANIFEST = ".headwater-site"


@dataclass
class SiteResult:
    index: Path
    pages: list[Path] = field(default_factory=list)  # every HTML file written, index first
    tables: int = 0  # how many of them are table pages
    sources: int = 0  # how many are source pages
    lineage_error: str | None = None
    data: SiteData | None = field(default=None, repr=False)


def default_site_dir(project: "ProjectConfig") -> Path:
    return project.catalog.site_dir or project.state_dir / "site"


def write_site(project: "ProjectConfig", address: "PostgresAddress", out_dir: Path | None = None,
               lineage: "Lineage | None" = None, **options) -> Path:
    """Write the catalog site and return the path of its index.html.

    lineage: an already built graph (the daily flow passes its own); None builds it here, with
    ``refresh`` (dbt docs generate) unless ``refresh=False``. If it cannot be built the site still
    lists the sources and raw tables and says why. ``options``: those of build_site.
    """
    return build_site(project, address, out_dir, lineage, **options).index


def build_site(
    project: "ProjectConfig",
    address: "PostgresAddress",
    out_dir: Path | None = None,
    lineage: "Lineage | None" = None,
    *,
    refresh: bool = True,
    progress: Progress | None = None,
) -> SiteResult:
    """write_site, returning every page written and why lineage is missing, if it is."""
    out = Path(out_dir or default_site_dir(project)).resolve()
    data = collect_site(project, address, lineage, refresh=refresh, progress=progress)
    if progress:
        progress(f"Writing pages to {out}")
    pages = render_site(data)
    out.mkdir(parents=True, exist_ok=True)
    written = [_write(out / STYLESHEET_NAME, STYLESHEET)]
    written += [_write(out / name, html) for name, html in pages.items()]
    _remove_stale(out, {path.name for path in written})
    sources = len(data.project.sources)
    return SiteResult(out / INDEX, [path for path in written if path.suffix == ".html"],
                      tables=len(pages) - 2 - sources, sources=sources, lineage_error=data.lineage_error, data=data)


def render_site(data: SiteData) -> dict[str, str]:
    """Every page by file name, index first: one per source and per table (resources are on their source's)."""
    pages: dict[str, str] = {INDEX: render_index(data), DASHBOARD: render_dashboard(data)}
    for source in data.project.sources:
        pages[source_page(source.name)] = render_source(data, source)
    for key, table in sorted(data.lineage.tables.items()):
        if table.layer != RESOURCE:
            pages[table_page(key)] = render_table(data, table)
    return pages


def _write(path: Path, text: str) -> Path:
    """Write through a temporary file so a reader never sees half a page."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _remove_stale(out: Path, current: set[str]) -> None:
    manifest = out / MANIFEST
    previous = set(manifest.read_text(encoding="utf-8").split()) if manifest.exists() else set()
    for name in sorted(previous - current):
        candidate = out / name
        if candidate.parent == out and candidate.suffix in (".html", ".css") and candidate.is_file():
            candidate.unlink()
    manifest.write_text("\n".join(sorted(current)) + "\n", encoding="utf-8")


__all__ = ["SiteResult", "build_site", "default_site_dir", "render_site", "write_site"]
