"""Which files a table has loaded, and what reading each came to: kept in dlt's resource state.

The state commits in the same load package as the rows, so the log never claims a file whose rows
did not land. A file found in it is a re-read (it grew or was rewritten): its new rows replace the
ones it gave before. The last read of every file, with its line accounting, is what `headwater`
reports and records in `headwater_ops.file_loads`.
"""

from __future__ import annotations

from typing import Any

import dlt

from connectors.filesystem.helpers import FileReport
from headwater.common.file_rows import FILES_STATE_KEY as STATE_KEY


class FileLog:
    def __init__(self, state: dict[str, Any]):
        self._files: dict[str, dict] = state.setdefault(STATE_KEY, {})

    @classmethod
    def of_current_resource(cls) -> "FileLog":
        try:
            return cls(dlt.current.resource_state())
        except Exception:  # outside a pipeline run nothing was loaded before
            return cls({})

    def was_loaded(self, item) -> bool:
        """The file gave rows to the table in an earlier load."""
        previous = self._files.get(item.get("relative_path") or item["file_name"])
        return bool(previous and previous.get("rows"))

    def was_unreadable(self, item) -> bool:
        """The file's last read found it unreadable (it is in the quarantine as a whole)."""
        previous = self._files.get(item.get("relative_path") or item["file_name"])
        return bool(previous and previous.get("status") == "unreadable")

    def record(self, report: FileReport) -> None:
        self._files[report.file] = report.as_dict()
