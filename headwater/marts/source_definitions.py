"""dbt source definitions kept in step with the raw schemas dlt created.

`headwater dbt sources` reads the tables and columns of each `raw_<source>` schema and merges them
into the dbt project's `models/staging/__sources.yml`:

* missing sources, tables and columns are added (with their Postgres type as `data_type`);
* everything already written by hand (descriptions, tests, config, freshness, comments, key order)
  is kept as it is: the file is edited with ruamel.yaml's round-trip mode, never regenerated;
* a table or column that is no longer in the database is marked, never deleted, with
  ``config: {meta: {headwater_missing: true}}``; the mark is removed again if it comes back.

The mark lives in dbt's `meta` rather than in a YAML comment so that it is machine-readable
(it reaches the manifest) and cannot be mistaken for, or merged into, a hand-written comment.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from headwater.project.config import SourceConfig
from headwater.quarantine import QUARANTINE_SUFFIX

# The meta key marking a table or column that the database no longer has.
MISSING_MARK = "headwater_missing"
SOURCES_FILE = Path("models") / "staging" / "__sources.yml"
NEW_FILE_HEADER = (
    "# Raw tables written by Headwater's dlt pipelines: one Postgres schema per source.\n"
    "# `headwater dbt sources` adds new tables and columns here; what is written by hand is kept.\n"
)
# Columns dlt adds to every table: described once here so generated entries read like hand-written ones.
DLT_COLUMN_DESCRIPTIONS = {
    "_dlt_load_id": "The dlt load that last wrote this row.",
    "_dlt_id": "dlt's unique row identifier.",
    "_dlt_parent_id": "The _dlt_id of the parent row this nested row belongs to.",
    "_dlt_root_id": "The _dlt_id of the top-level row this nested row belongs to.",
    "_dlt_list_idx": "Position of this row in its parent's list.",
}


@dataclass
class RawColumn:
    name: str
    data_type: str
    description: str | None = None


@dataclass
class RawTable:
    name: str
    columns: list[RawColumn]
    description: str | None = None
    parent: str | None = None  # dlt's parent table, for nested (child) tables


@dataclass
class SourceChanges:
    """What one source's merge did, for the summary."""

    source: str
    loaded: bool = True
    added: list[str] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.marked or self.restored or self.retyped)


# --- reading the database -------------------------------------------------------------------------

_COLUMNS_SQL = """
select c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
order by c.relname, a.attnum
"""


def read_raw_tables(connection, schema: str) -> list[RawTable] | None:
    """The data tables of one raw schema with their columns, or None when the schema does not exist.

    Postgres is the truth for which tables and columns exist (it also shows columns dropped by hand);
    dlt's stored schema only adds descriptions and which tables are nested.
    """
    if connection.execute("select 1 from pg_namespace where nspname = %s", (schema,)).fetchone() is None:
        return None
    tables: dict[str, RawTable] = {}
    for table, column, data_type in connection.execute(_COLUMNS_SQL, (schema,)).fetchall():
        if table.startswith("_dlt_") or QUARANTINE_SUFFIX in table:
            continue
        tables.setdefault(table, RawTable(table, [])).columns.append(RawColumn(column, data_type))
    _add_dlt_hints(connection, schema, tables)
    return list(tables.values())


def _add_dlt_hints(connection, schema: str, tables: dict[str, RawTable]) -> None:
    """Descriptions and parent tables from the newest schema dlt stored in `_dlt_version`."""
    from headwater.load.stored_schemas import stored_schemas

    stored = {name: hints for schema_json in stored_schemas(connection, schema)
              for name, hints in (schema_json.get("tables") or {}).items()}
    for table in tables.values():
        hints = stored.get(table.name) or {}
        table.description = hints.get("description") or None
        table.parent = hints.get("parent")
        for column in table.columns:
            column.description = ((hints.get("columns") or {}).get(column.name) or {}).get("description") or None


# --- merging into the YAML ------------------------------------------------------------------------


def yaml_round_trip() -> YAML:
    """ruamel.yaml set up to reproduce dbt's usual layout and leave long lines unwrapped."""
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def load_document(text: str) -> CommentedMap:
    document = yaml_round_trip().load(text) if text.strip() else None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ValueError("the sources file must be a YAML mapping with a `sources:` list")
    if document.get("sources") is None:
        _append(document, "sources", CommentedSeq())
    return document


def dump_document(document: CommentedMap) -> str:
    buffer = io.StringIO()
    yaml_round_trip().dump(document, buffer)
    return buffer.getvalue()


def merge_source(document: CommentedMap, source: SourceConfig, tables: list[RawTable]) -> SourceChanges:
    """Bring one source's entry in line with its raw tables; hand-written content is never removed."""
    changes = SourceChanges(source.name)
    options = {table.name: table for table in source.tables}
    entry = _find(document["sources"], source.name)
    if entry is None:
        entry = _new_source(source)
        _append_separated(document["sources"], entry)
        changes.added.append(f"source {source.name}")
    if entry.get("tables") is None:
        _append(entry, "tables", CommentedSeq())

    present = {table.name for table in tables}
    for table in tables:
        table_entry = _find(entry["tables"], table.name)
        if table_entry is None:
            _append(entry["tables"], _new_table(table, options.get(table.name)))
            changes.added.append(f"table {table.name} ({len(table.columns)} columns)")
            continue
        if _unmark(table_entry):
            changes.restored.append(f"table {table.name}")
        _merge_columns(table_entry, table, options.get(table.name), changes)
    for table_entry in entry["tables"]:
        if isinstance(table_entry, CommentedMap) and table_entry.get("name") not in present:
            if _mark(table_entry):
                changes.marked.append(f"table {table_entry.get('name')}")
    return changes


def _merge_columns(entry: CommentedMap, table: RawTable, options, changes: SourceChanges) -> None:
    if entry.get("columns") is None:
        _append(entry, "columns", CommentedSeq())
    columns = entry["columns"]
    keys = _key_columns(options)
    for column in table.columns:
        column_entry = _find(columns, column.name)
        if column_entry is None:
            _append(columns, _new_column(column, column.name in keys))
            changes.added.append(f"column {table.name}.{column.name}")
            continue
        if _unmark(column_entry):
            changes.restored.append(f"column {table.name}.{column.name}")
        # Only a type the file already states is kept current: adding one would rewrite hand-written entries.
        if "data_type" in column_entry and str(column_entry["data_type"]) != column.data_type:
            column_entry["data_type"] = column.data_type
            changes.retyped.append(f"column {table.name}.{column.name} -> {column.data_type}")
    present = {column.name for column in table.columns}
    for column_entry in columns:
        if isinstance(column_entry, CommentedMap) and column_entry.get("name") not in present:
            if _mark(column_entry):
                changes.marked.append(f"column {table.name}.{column_entry.get('name')}")


def _new_source(source: SourceConfig) -> CommentedMap:
    return CommentedMap(
        name=source.name,
        description=f"Raw tables loaded by the {source.connector} connector (source {source.name} in "
        "headwater.yaml). Describe what the source holds.",
        schema=source.dataset,
    )


def _new_table(table: RawTable, options) -> CommentedMap:
    entry = CommentedMap(name=table.name)
    if table.description:
        entry["description"] = table.description
    elif table.parent:
        entry["description"] = f"Nested rows of {table.parent}, joined on _dlt_parent_id = {table.parent}._dlt_id."
    cursor = getattr(options, "cursor", None)
    if cursor and cursor in {column.name for column in table.columns}:
        entry["config"] = CommentedMap(loaded_at_field=cursor)
    keys = _key_columns(options)
    entry["columns"] = CommentedSeq(_new_column(column, column.name in keys) for column in table.columns)
    return entry


def _new_column(column: RawColumn, is_key: bool) -> CommentedMap:
    entry = CommentedMap(name=column.name)
    description = column.description or DLT_COLUMN_DESCRIPTIONS.get(column.name)
    if description:
        entry["description"] = description
    entry["data_type"] = column.data_type
    if is_key:
        entry["data_tests"] = CommentedSeq(["unique", "not_null"])
    return entry


def _key_columns(options) -> set[str]:
    """The single-column primary key from headwater.yaml; a composite key is not unique per column."""
    key = getattr(options, "primary_key", None)
    if isinstance(key, str):
        return {key}
    if isinstance(key, (list, tuple)) and len(key) == 1:
        return {str(key[0])}
    return set()


def _find(entries: CommentedSeq, name: str) -> CommentedMap | None:
    for entry in entries:
        if isinstance(entry, CommentedMap) and entry.get("name") == name:
            return entry
    return None


def _mark(entry: CommentedMap) -> bool:
    """Set the missing mark; False if it was already there.

    Each level is added whole, in one append, so blank lines after the entry stay after it.
    """
    config = entry.get("config")
    if not isinstance(config, CommentedMap):
        _append(entry, "config", CommentedMap(meta=CommentedMap({MISSING_MARK: True})))
        return True
    meta = config.get("meta")
    if not isinstance(meta, CommentedMap):
        _append(config, "meta", CommentedMap({MISSING_MARK: True}))
        return True
    if meta.get(MISSING_MARK) is True:
        return False
    _append(meta, MISSING_MARK, True)
    return True


def _unmark(entry: CommentedMap) -> bool:
    """Remove the missing mark (and the config/meta it alone needed); False if there was none."""
    config = entry.get("config")
    meta = config.get("meta") if isinstance(config, CommentedMap) else None
    if not isinstance(meta, CommentedMap) or MISSING_MARK not in meta:
        return False
    trailer = _pop_trailer(entry)
    del meta[MISSING_MARK]
    if not meta:
        del config["meta"]
    if not config:
        del entry["config"]
    if trailer is not None:
        _push_trailer(entry, trailer)
    return True


# --- keeping blank lines and comments where they belong ----------------------------------------------
# ruamel attaches the blank line or comment that follows a block to that block's last scalar. Appending
# after it would push the new entry below the blank line, i.e. visually into the next block; so the
# trailing comment is moved onto the new last entry.


def _append(container, *item) -> None:
    """Append to a sequence (`_append(seq, value)`) or mapping (`_append(map, key, value)`), keeping the trailer."""
    trailer = _pop_trailer(container)
    if isinstance(container, CommentedSeq):
        container.append(*item)
    else:
        key, value = item
        container[key] = value
    if trailer is not None:
        _push_trailer(container, trailer)


def _append_separated(entries: CommentedSeq, entry: CommentedMap) -> None:
    """Append with a blank line before the entry, as sources are laid out in dbt projects."""
    trailer = _pop_trailer(entries)  # what followed the list stays at its end
    entries.append(entry)
    if len(entries) > 1:
        # The token holds the end of the previous entry's last line, then the blank line.
        _push_trailer(entries[-2], CommentToken("\n\n", CommentMark(0), None))
    if trailer is not None:
        _push_trailer(entries, trailer)


def _last_key(node):
    return next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1


def _comment_slot(node) -> int:
    # ruamel keeps a mapping value's trailing comment at index 2 of its comment list, a sequence item's at 0.
    return 2 if isinstance(node, CommentedMap) else 0


def _pop_trailer(node):
    found = None
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node):
        key = _last_key(node)
        slot = node.ca.items.get(key)
        if slot and slot[_comment_slot(node)] is not None:
            found = (node, key)
        node = node[key]
    if found is None:
        return None
    holder, key = found
    comments = holder.ca.items[key]
    trailer, comments[_comment_slot(holder)] = comments[_comment_slot(holder)], None
    if not any(comments):
        del holder.ca.items[key]
    return trailer


def _push_trailer(node, trailer) -> None:
    while True:
        key = _last_key(node)
        child = node[key]
        if isinstance(child, (CommentedMap, CommentedSeq)) and len(child) and not child.fa.flow_style():
            node = child
            continue
        empty = [None, None, None, None] if isinstance(node, CommentedMap) else [None, None]
        comments = node.ca.items.setdefault(key, empty)
        comments[_comment_slot(node)] = trailer
        return


# --- the file ------------------------------------------------------------------------------------


def sources_file(transform_dir: Path) -> Path:
    return transform_dir / SOURCES_FILE


def merged_text(text: str, merges: list[tuple[SourceConfig, list[RawTable]]]) -> tuple[str, list[SourceChanges]]:
    """The sources file's new text after merging each (source, raw tables); the input text is not changed."""
    document = load_document(text)
    changes = [merge_source(document, source, tables) for source, tables in merges]
    if not any(change.changed for change in changes):
        return text, changes
    new_text = dump_document(document)
    if not text.strip():
        new_text = NEW_FILE_HEADER + new_text
    return new_text, changes


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path.name}", f"b/{path.name}")
    )
