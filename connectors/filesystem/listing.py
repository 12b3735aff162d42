"""Which files a table's glob matches, listed once per run, and what it means when it matches none.

A glob that matches no file (a folder that does not exist, a typo in the pattern, files not dropped
yet) loads nothing and fails nothing, which would look like a quiet success. So the listing notes it
in the table's resource state, next to the reports of the files read (headwater.common.file_rows):
the run summary warns about the table and headwater_ops.file_loads keeps the note. `headwater check`
asks the same question of every table before any run (``unmatched_tables``) and fails on it.
"""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.common.storages.configuration import FilesystemConfiguration
from dlt.sources.filesystem import filesystem as list_files

from connectors.filesystem.helpers import FileReport
from headwater.common.file_rows import NO_MATCH, NO_MATCH_STATE_KEY

# Files per page handed on to the reader, as in dlt's own listing.
PAGE = 100


def table_listing(bucket_url: str, glob: str, table: str):
    """The files of ``table`` that are new or changed since the last run (incremental on modification time)."""

    # Named as dlt's listing was, so the incremental state of earlier runs carries on.
    @dlt.resource(name=f"{table}_files", primary_key="file_url")
    def listing(modified=dlt.sources.incremental("modification_date")):  # noqa: B008 (dlt binds it per resource)
        files = matching_files(bucket_url, glob, table)
        _note_match(table, bucket_url, glob, matched=bool(files))
        for start in range(0, len(files), PAGE):
            yield files[start:start + PAGE]

    return listing()


def matching_files(bucket_url: str, glob: str, table: str) -> list:
    """Every file the glob matches, new or not, listed by dlt (with the credentials dlt resolves for it)."""
    # Read to the end before anything is handed on: iterating a resource sets dlt's context per item.
    return list(list_files(bucket_url=bucket_url, file_glob=glob).with_name(f"{table}_files"))


def no_match_reason(bucket_url: str, glob: str) -> str:
    """Why nothing matches, in the words of the folder as the user wrote it."""
    folder = local_folder(bucket_url)
    if folder is not None and not folder.is_dir():
        return f"folder {folder} does not exist, so no file matches {glob}"
    return f"no file matches {glob} under {folder if folder is not None else bucket_url}"


def unmatched_tables(settings: dict, tables: list[str] | None) -> dict[str, str]:
    """Per table (all of ``files`` when ``tables`` is None) whose glob matches no file: why, and what to do."""
    problems = {}
    for table, spec in settings["files"].items():
        if tables is not None and table not in tables:
            continue
        glob = spec if isinstance(spec, str) else spec["glob"]
        if matching_files(settings["bucket_url"], glob, table):
            continue
        reason = no_match_reason(settings["bucket_url"], glob)
        fix = ("create it and drop the files there, or fix bucket_url" if reason.startswith("folder ")
               else f"drop the files there, or fix the glob (files.{table}) or bucket_url")
        problems[table] = f"{reason}; {fix}"
    return problems


def local_folder(bucket_url: str) -> Path | None:
    """The local folder a bucket_url names (a path or a file:// URL); None for a remote URL."""
    if FilesystemConfiguration.is_local_path(bucket_url):
        return Path(FilesystemConfiguration.make_local_path(FilesystemConfiguration.make_file_url(bucket_url)))
    if bucket_url.startswith("file:"):
        return Path(FilesystemConfiguration.make_local_path(bucket_url))
    return None


def _note_match(table: str, bucket_url: str, glob: str, matched: bool) -> None:
    try:
        # Outside a pipeline run (`headwater check` reads the resource on its own) this state is a scratch copy.
        state = dlt.current.resource_state(table)
    except Exception:  # no dlt context at all: nowhere to note it
        return
    if matched:
        state.pop(NO_MATCH_STATE_KEY, None)
    else:
        state[NO_MATCH_STATE_KEY] = FileReport(file=glob, modified_at=None, size=0, format="?", status=NO_MATCH,
                                               reason=no_match_reason(bucket_url, glob)).as_dict()
