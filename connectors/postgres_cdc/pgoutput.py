"""PostgreSQL's `pgoutput` logical replication messages (protocol version 1), decoded.

Each message a slot gives is one of these; only what a change feed needs is kept. Column values stay
the text PostgreSQL's output function wrote (the session's DateStyle, time zone and float digits), so
that the destination's input function reads back exactly the value the source held. A column whose
TOASTed value an update did not change is ``UNCHANGED``, not NULL: pgoutput does not send it.

Layout: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# A TOASTed value the change left as it was: pgoutput sends its absence, never its value.
UNCHANGED = object()
# PostgreSQL's timestamps count microseconds from 2000-01-01 UTC.
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")
_UINT64 = struct.Struct(">Q")


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it: two hex halves, 0/1B28FD0."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_number(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def commit_time(microseconds: int) -> datetime:
    return _POSTGRES_EPOCH + timedelta(microseconds=microseconds)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    in_key: bool  # part of the replica identity (the primary key, by default)


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str  # d (primary key), f (full row), i (an index), n (nothing)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    committed_at: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # the position after this transaction: a reader that stored it resumes after it
    committed_at: datetime


@dataclass(frozen=True)
class Change:
    """An insert, update or delete of one row. ``new`` is None for a delete; ``old`` is the replica identity's
    columns (the key, or the whole row with REPLICA IDENTITY FULL) when the change sends them."""

    kind: str  # insert, update, delete
    relation: int
    new: tuple | None
    old: tuple | None


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


class _Reader:
    __slots__ = ("data", "at")

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def unpack(self, form: struct.Struct):
        (value,) = form.unpack_from(self.data, self.at)
        self.at += form.size
        return value

    def byte(self) -> str:
        value = self.data[self.at:self.at + 1].decode()
        self.at += 1
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.at)
        value = self.data[self.at:end].decode()
        self.at = end + 1
        return value

    def tuple_data(self) -> tuple:
        count = self.unpack(_INT16)
        values: list = []
        data, at = self.data, self.at
        for _ in range(count):
            kind = data[at]
            at += 1
            if kind == 0x74 or kind == 0x62:  # t: text, b: binary (not asked for; read as bytes)
                (length,) = _INT32.unpack_from(data, at)
                at += 4
                raw = data[at:at + length]
                values.append(raw.decode() if kind == 0x74 else bytes(raw))
                at += length
            elif kind == 0x6E:  # n: NULL
                values.append(None)
            elif kind == 0x75:  # u: an unchanged TOASTed value
                values.append(UNCHANGED)
            else:
                raise ValueError(f"pgoutput: unknown column kind {chr(kind)!r}")
        self.at = at
        return tuple(values)


def decode(data: bytes):
    """One pgoutput message: Begin, Commit, Relation, Change or Truncate; None for the kinds a feed ignores
    (origin, type, logical decoding message)."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    if kind in ("I", "U", "D"):
        relation = reader.unpack(_UINT32)
        old = new = None
        marker = reader.byte()
        if kind == "I":
            new = reader.tuple_data()
        else:
            if marker in ("K", "O"):
                old = reader.tuple_data()
                marker = reader.byte() if kind == "U" else marker
            if kind == "U":
                new = reader.tuple_data()
        return Change({"I": "insert", "U": "update", "D": "delete"}[kind], relation, new, old)
    if kind == "B":
        final_lsn = reader.unpack(_UINT64)
        committed_at = commit_time(reader.unpack(_INT64))
        return Begin(final_lsn, committed_at, reader.unpack(_UINT32))
    if kind == "C":
        reader.unpack(_INT8)  # flags, unused
        commit_lsn = reader.unpack(_UINT64)
        end_lsn = reader.unpack(_UINT64)
        return Commit(commit_lsn, end_lsn, commit_time(reader.unpack(_INT64)))
    if kind == "R":
        oid = reader.unpack(_UINT32)
        schema, name = reader.string(), reader.string()
        identity = reader.byte()
        columns = []
        for _ in range(reader.unpack(_INT16)):
            flags = reader.unpack(_INT8)
            column_name = reader.string()
            columns.append(Column(column_name, reader.unpack(_UINT32), reader.unpack(_INT32), bool(flags & 1)))
        return Relation(oid, schema, name, identity, tuple(columns))
    if kind == "T":
        count = reader.unpack(_INT32)
        reader.unpack(_INT8)  # options: CASCADE, RESTART IDENTITY
        return Truncate(tuple(reader.unpack(_UINT32) for _ in range(count)))
    return None
