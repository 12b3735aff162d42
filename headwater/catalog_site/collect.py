"""Everything the catalog site shows, gathered once: lineage, PII tags, run history, row counts.

Nothing here renders. ``collect_site`` returns a ``SiteData`` the page modules read. When the lineage
cannot be built (no dbt project, dbt fails, ...), the tables come from the raw schemas of the
destination instead and ``lineage_error`` says why; the site is still written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from headwater.lineage.build import build_lineage
from headwater.lineage.model import ColumnInfo, ColumnRef, Lineage, TableInfo
from headwater.lineage.pii import PiiExposure, pii_exposures, pii_tags
from headwater.ops.run_records import History, read_history
from headwater.postgres.row_counts import RowCount, count_rows

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig

@dataclass
class SiteData:
    project: "ProjectConfig"
    lineage: Lineage  # without dbt lineage: the raw tables of the destination, no edges
    lineage_error: str | None
    history: History
    row_counts: dict[str, RowCount]
    tags: dict[ColumnRef, str]  # pii | derived | masked
    exposures: list[PiiExposure]  # published columns carrying unmasked PII, from the lineage
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def exposed(self) -> set[ColumnRef]:
        return {exposure.column for exposure in self.exposures}


Progress = Callable[[str], None]


def collect_site(
    project: "ProjectConfig",
    address: "PostgresAddress",
    lineage: Lineage | None = None,
    *,
    refresh: bool = True,
    progress: Progress | None = None,
) -> SiteData:
    say = progress or (lambda message: None)
    error = None
    if lineage is None:
        say("Building column lineage" + (" (dbt docs generate)" if refresh and project.transform_dir else ""))
        try:
            lineage = build_lineage(project, address, refresh=refresh)
        except Exception as failure:  # the site still shows what the destination holds
            error = f"{type(failure).__name__}: {str(failure).strip() or 'no message'}"
    if lineage is None or (not lineage.tables and error is None):
        error = error or "the lineage builder found no tables"
        say("Reading the raw schemas instead")
        lineage = raw_tables(project, address)
    elif project.transform_dir is None:
        error = "no dbt project (`transform:` in headwater.yaml): lineage stops at the raw tables"
    say("Reading run history from headwater_ops")
    history = read_history(address)
    say("Counting rows")
    counts = row_counts(address, [table for table in lineage.tables.values() if table.layer != "resource"])
    from headwater.marts.publish import PUBLISHED_SCHEMAS  # what the run publishes, as the flow checks it

    return SiteData(project, lineage, error, history, counts, pii_tags(lineage),
                    pii_exposures(lineage, PUBLISHED_SCHEMAS))


def raw_tables(project: "ProjectConfig", address: "PostgresAddress") -> Lineage:
    """The loaded tables of every source, from information_schema (no dbt, no lineage edges)."""
    schemas = {source.dataset: source for source in project.sources}
    lineage = Lineage()
    if not schemas:
        return lineage
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        rows = connection.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_schema = any(%s) and table_name not like '\\_dlt%%' "
            "and table_name not like '%%\\_\\_quarantine' "
            "order by table_schema, table_name, ordinal_position",
            (sorted(schemas),),
        ).fetchall()
    for schema, table, column, data_type in rows:
        source = schemas[schema]
        configured = next((t for t in source.tables if t.name == table), None)
        info = lineage.add_table(TableInfo(schema, table, "raw", materialized="table", source=source.name,
                                           resource=table if configured else None))
        ref = ColumnRef(schema, table, column)
        info.columns[column] = ColumnInfo(ref, data_type, pii=bool(configured and column in configured.pii))
    return lineage


def row_counts(address: "PostgresAddress", tables: list[TableInfo]) -> dict[str, RowCount]:
    """Rows per relation (headwater.postgres.row_counts); a table the lineage builder counted keeps its count."""
    counts = {table.key: RowCount(table.row_count, table.row_count_estimated)
              for table in tables if table.row_count is not None}
    wanted = [(table.schema, table.name) for table in tables if table.key not in counts]
    if wanted:
        with address.connect(autocommit=True, connect_timeout=10) as connection:
            found = count_rows(connection, wanted)
        counts.update({f"{schema}.{name}": count for (schema, name), count in found.items()})
    return counts
