"""How rows read from landing files stay tied to their file, and how each file read is accounted for.

A file connector gives each row the file it came from (``FILE_COLUMN``), the file's modification
time (``MODIFIED_COLUMN``) and its line (``LINE_COLUMN``), and marks the Arrow batches of a file it
has loaded before with ``REREAD_METADATA``. Headwater then makes that load replace the file's
earlier rows (headwater.load.table_processor), and, where one load holds several versions of a key, keeps
the one from the most recently modified file, then the latest line (headwater.postgres.loader).

The connector also logs every file it reads in its resource state under ``FILES_STATE_KEY``: file
name -> report (status, lines, rows, rejected, skipped lines, dialect, ``read_at``, ...). The state
commits with the rows, and ``files_read`` lists the reports a run wrote, for its summary and record.
A table whose files match nothing gets one report of its own instead, under ``NO_MATCH_STATE_KEY``
with status ``NO_MATCH``: its glob as the file, and why nothing matched as the reason.
"""

from __future__ import annotations

from datetime import datetime

FILE_COLUMN = "_file_name"
MODIFIED_COLUMN = "_file_modified_at"
LINE_COLUMN = "_line"
# Columns the file connector adds to every row: where it came from, not a field of the source.
FILE_ROW_COLUMNS = frozenset({FILE_COLUMN, MODIFIED_COLUMN, LINE_COLUMN})
# Arrow schema metadata on the batches of a file that was loaded before.
REREAD_METADATA = b"headwater.reread_file"
# dlt table hint: this load reads files whole, so each file's earlier rows are replaced. A replay, which
# loads a few rows of a file, sets it false.
REPLACES_FILES_HINT = "x-headwater-replaces-files"


FILES_STATE_KEY = "files"
NO_MATCH_STATE_KEY = "no_match"
NO_MATCH = "no match"  # the status of a report that stands for a glob matching no file


def files_read(pipeline_state: dict, since: datetime) -> dict[str, list[dict]]:
    """Resource (table) name -> the file reports written at or after ``since``, from a dlt pipeline state."""
    tables: dict[str, list[dict]] = {}
    for source in (pipeline_state.get("sources") or {}).values():
        for resource, state in (source.get("resources") or {}).items():
            reports = [*(state.get(FILES_STATE_KEY) or {}).values(), *filter(None, [state.get(NO_MATCH_STATE_KEY)])]
            for report in reports:
                if str(report.get("read_at", "")) >= since.isoformat():
                    tables.setdefault(resource, []).append(report)
    for reports in tables.values():
        reports.sort(key=lambda report: report.get("file", ""))
    return tables


def is_reread(batch) -> bool:
    metadata = getattr(getattr(batch, "schema", None), "metadata", None) or {}
    return metadata.get(REREAD_METADATA) == b"1"
