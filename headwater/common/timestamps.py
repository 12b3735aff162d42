"""Timestamps as Headwater stores them: always timezone-aware, always UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_timestamp(value: str | None) -> datetime | None:
    """One ISO-8601 timestamp in UTC (naive means UTC), or None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
