"""The one rule for NUL characters, which PostgreSQL cannot store, whatever source a row comes from.

PostgreSQL text cannot hold the character U+0000, nor jsonb its escape ``\\u0000``; databases such as
MariaDB and SQLite, and landing files, can. A connector applies the rule its source or table chose
(setting ``nul_characters``): ``reject`` (the default) sets the row aside to the table's quarantine
under rule ``nul_character``, with a reason naming the columns; ``strip`` removes the characters and
the row loads. This module holds the rule's words and what both connectors need of JSON values.
"""

from __future__ import annotations

from typing import Any, Literal

NulHandling = Literal["reject", "strip"]
REJECT, STRIP = "reject", "strip"
RULE = "nul_character"
NUL = "\x00"
JSON_NUL = "\\u0000"


def nul_reason(columns: list[str]) -> str:
    return f"{', '.join(columns)}: holds a NUL character (\\x00), which PostgreSQL text cannot store"


def json_holds_nul(value: Any) -> bool:
    """Whether a parsed JSON value holds a NUL character in any string, key or value, at any depth."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list):
        return any(json_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(json_holds_nul(key) or json_holds_nul(item) for key, item in value.items())
    return False


def without_nul(value: Any) -> Any:
    """A parsed JSON value with the NUL characters removed from its strings and keys."""
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value
