"""Headwater projects for the cases: a headwater.yaml in a folder of its own, so each has fresh .headwater state."""

from __future__ import annotations

from pathlib import Path

import yaml

# The three enrichment steps every file case runs: realistic per-row work, not a bare copy.
ENRICHMENT_STEPS = [
    {"trim": ["name"]},
    {"normalise": {"email": "lower"}},
    {"derive": {"total": "quantity * price"}},
]


def write_project(folder: Path, sources: dict, secrets: dict[str, str] | None = None) -> Path:
    """headwater.yaml with ``sources``; ``secrets`` go to .headwater/secrets.env, as Headwater requires of them."""
    folder.mkdir(parents=True, exist_ok=True)
    if secrets:
        state = folder / ".headwater"
        state.mkdir(exist_ok=True)
        (state / "secrets.env").write_text("".join(f"{name}={value}\n" for name, value in secrets.items()))
    path = folder / "headwater.yaml"
    path.write_text(yaml.safe_dump({"project": "bench", "sources": sources}, sort_keys=False))
    return path


def file_source(landing: Path, pattern: str) -> dict:
    """Landing files through the filesystem connector, with the enrichment steps."""
    return {"files": {
        "connector": "filesystem",
        "settings": {"bucket_url": str(landing), "files": {"events": pattern}},
        "tables": {"events": {"steps": ENRICHMENT_STEPS}},
    }}


SOURCE_URL_SECRET = "BENCH_SOURCE_URL"


def sql_source() -> dict:
    """The events table of a database, incremental on updated_at (append: each run adds only newer rows).

    The URL is a secret (``SOURCE_URL_SECRET``), passed to ``write_project``.
    """
    return {"db": {
        "connector": "sql_database",
        "settings": {"credentials": f"${{{SOURCE_URL_SECRET}}}", "table_names": ["events"]},
        "tables": {"events": {"cursor": "updated_at"}},
    }}


MERGE_TABLE = {"cursor": "updated_at", "primary_key": "id", "write_disposition": "merge"}


def sql_merge_source() -> dict:
    """The keyed events table of a database, merged on id: each run takes the rows updated or added since."""
    return {"db": {
        "connector": "sql_database",
        "settings": {"credentials": f"${{{SOURCE_URL_SECRET}}}", "table_names": ["events"]},
        "tables": {"events": dict(MERGE_TABLE)},
    }}


def file_merge_source(landing: Path) -> dict:
    """Parquet landing files merged on id: a new file holds rows changed or added since the last one."""
    return {"files": {
        "connector": "filesystem",
        "settings": {"bucket_url": str(landing), "files": {"events": "*.parquet"}},
        "tables": {"events": {"primary_key": "id", "write_disposition": "merge"}},
    }}


def api_source(base_url: str) -> dict:
    """The local API through the rest_api connector, following the next_cursor of each page."""
    return {"api": {
        "connector": "rest_api",
        "settings": {
            "client": {"base_url": base_url,
                       "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"}},
            "resources": [{"name": "events", "endpoint": {"path": "events", "data_selector": "data"}}],
        },
        "tables": {"events": {}},
    }}
