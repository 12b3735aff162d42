"""A slot's messages folded into one row per key per table: what raw must hold after them.

A batch of transactions can touch a key many times; the merge into raw needs its last state only. Folding
keeps, per key, the latest version of the row, with the values of columns an update left unchanged
(unchanged TOASTed values) taken from an earlier version in the batch where there is one, and named in
``_cdc_unchanged`` otherwise, so the destination keeps the value it holds. A key an update changed is a
delete of the old key and a write of the new one. A truncate empties the table's fold and marks the table
truncated: raw is replaced by what follows it.

Transactions a table's stored position already covers (a batch read again after a crash) are skipped,
so a replay never applies a change twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from connectors.postgres_cdc import columns as meta
from connectors.postgres_cdc.pgoutput import UNCHANGED, Begin, Change, Commit, Relation, Truncate, decode

log = logging.getLogger(__name__)


@dataclass
class TableFold:
    """One table's rows after a batch, keyed by primary key."""

    key: tuple[str, ...]
    deletes: str  # apply | flag
    rows: dict[tuple, dict] = field(default_factory=dict)
    truncated: bool = False
    changes: int = 0
    columns: list[str] = field(default_factory=list)  # as the latest relation message names them, in order

    def apply(self, change: Change, relation: Relation, lsn: int, committed_at: datetime) -> None:
        self.changes += 1
        names = [column.name for column in relation.columns]
        if change.kind == "delete":
            self._delete(self._key(names, change.old), lsn, committed_at)
            return
        values = dict(zip(names, change.new, strict=True))
        key = self._key(names, change.new)
        if change.kind == "update" and change.old is not None:
            old_key = self._key(names, change.old)
            if old_key != key:  # the key itself changed: the old row is gone
                earlier = self.rows.get(old_key)
                self._delete(old_key, lsn, committed_at)
                if earlier is not None:
                    values = self._fill(values, earlier)
            elif relation.replica_identity == "f":  # the whole old row came along: it knows unchanged values
                values = self._fill(values, dict(zip(names, change.old, strict=True)))
        earlier = self.rows.get(key)
        if earlier is not None and not earlier.get(meta.DELETED) and earlier.get(meta.DELETED_AT) is None:
            values = self._fill(values, earlier)
        # A column the source dropped is still in raw: it keeps its last value, as an unchanged one does.
        dropped = [name for name in self.columns if name not in values]
        unchanged = sorted([name for name, value in values.items() if value is UNCHANGED] + dropped)
        for name in unchanged:
            values.pop(name, None)
        values.update({meta.LSN: lsn, meta.OPERATION: change.kind, meta.COMMITTED_AT: committed_at,
                       meta.UNCHANGED_COLUMNS: json.dumps(unchanged) if unchanged else None})
        if self.deletes == "apply":
            values[meta.DELETED] = False
        else:
            values[meta.DELETED_AT] = None
        self.rows[key] = values

    def truncate(self) -> None:
        self.changes += 1
        self.rows.clear()
        self.truncated = True

    def _delete(self, key: tuple, lsn: int, committed_at: datetime) -> None:
        row = dict(zip(self.key, key, strict=True))
        if self.deletes == "apply":
            if self.truncated and key not in self.rows:
                return  # raw is replaced by the rows after the truncate: nothing to remove
            row[meta.DELETED] = True
            row[meta.UNCHANGED_COLUMNS] = None
        else:  # flagged: the row stays as it was, with its deletion time
            earlier = self.rows.get(key)
            if earlier is not None:
                row = {**earlier}
            else:
                if self.truncated:
                    self.rows.pop(key, None)
                    return
                others = [name for name in self.columns if name not in self.key]
                row[meta.UNCHANGED_COLUMNS] = json.dumps(sorted(others)) if others else None
            row[meta.DELETED_AT] = committed_at
        row.update({meta.LSN: lsn, meta.OPERATION: "delete", meta.COMMITTED_AT: committed_at})
        self.rows[key] = row

    def _key(self, names: list[str], values: tuple) -> tuple:
        row = dict(zip(names, values, strict=True))
        return tuple(row[name] for name in self.key)

    @staticmethod
    def _fill(values: dict, earlier: dict) -> dict:
        return {name: (earlier.get(name, UNCHANGED) if value is UNCHANGED else value) for name, value in values.items()}

    def table(self, extra_columns: list[str]) -> pa.Table:
        """The folded rows as Arrow: source columns as text, the change columns typed."""
        rows = list(self.rows.values())
        names = list(dict.fromkeys([*self.columns, *extra_columns]))
        arrays, fields = [], []
        for name in names:
            values = [row.get(name) for row in rows]
            if name == meta.LSN:
                kind = pa.int64()
            elif name == meta.COMMITTED_AT or name == meta.DELETED_AT:
                kind = pa.timestamp("us", tz="UTC")
            elif name == meta.DELETED:
                kind = pa.bool_()
            else:
                kind = pa.string()
            arrays.append(pa.array(values, kind))
            fields.append(pa.field(name, kind))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


@dataclass
class Batch:
    """What one peek gave: per table its fold, the position after the last whole transaction, and the
    relation messages seen (for schema changes)."""

    folds: dict[tuple[str, str], TableFold]
    end: int | None = None  # None: the slot had nothing new
    last_commit: datetime | None = None
    relations: dict[tuple[str, str], Relation] = field(default_factory=dict)
    transactions: int = 0
    messages: int = 0  # every message the slot gave, of all tables


def fold(messages, tables: dict[tuple[str, str], TableFold], positions: dict[tuple[str, str], int]) -> Batch:
    """Fold pgoutput ``messages`` into ``tables``; a table skips transactions its position already holds."""
    batch = Batch(folds=tables)
    relations: dict[int, Relation] = {}
    pending: list = []  # the current transaction's messages, applied at its commit (its end LSN decides)
    begin: Begin | None = None
    for data in messages:
        batch.messages += 1
        message = decode(data)
        if isinstance(message, Begin):
            begin, pending = message, []
        elif isinstance(message, Relation):
            relations[message.oid] = message
            batch.relations[(message.schema, message.name)] = message
        elif isinstance(message, (Change, Truncate)):
            pending.append(message)
        elif isinstance(message, Commit):
            _apply(pending, relations, tables, positions, message, begin)
            batch.end, batch.last_commit = message.end_lsn, message.committed_at
            batch.transactions += 1
            pending = []
    return batch


def _apply(pending, relations, tables, positions, commit: Commit, begin: Begin | None) -> None:
    committed_at = commit.committed_at if begin is None else begin.committed_at
    for message in pending:
        if isinstance(message, Truncate):
            for oid in message.relations:
                target = _fold_of(relations.get(oid), tables, positions, commit.end_lsn)
                if target is not None:
                    target.truncate()
            continue
        relation = relations[message.relation]
        target = _fold_of(relation, tables, positions, commit.end_lsn)
        if target is not None:
            target.columns = list(dict.fromkeys([*target.columns, *(column.name for column in relation.columns)]))
            target.apply(message, relation, commit.end_lsn, committed_at)


def _fold_of(relation: Relation | None, tables, positions, end_lsn: int) -> TableFold | None:
    if relation is None:
        return None
    name = (relation.schema, relation.name)
    target = tables.get(name)
    if target is None or end_lsn <= positions.get(name, -1):
        return None  # not a table of this run, or a transaction raw already holds
    return target
