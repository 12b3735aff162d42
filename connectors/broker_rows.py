"""What the message-broker connectors (nats_jetstream, redis_streams) share: messages as Arrow rows.

A message body is JSON; an object becomes one row, its top-level fields the columns, typed as landing
files and API pages are: integers bigint, other numbers double, booleans bool, ISO timestamps (dlt's
detection decides on a new column's first value) timestamptz when every value of the batch parses,
other strings text. Objects and arrays stay whole, as JSON text that lands as jsonb; a field holding
them beside plain values is text. A field without a value in a batch makes no column (dlt creates
none until a value arrives). Rows are Arrow tables: dlt writes them as it extracts, ~40x faster than
dicts it normalizes one by one.

Every row also says where it came from: ``_stream``, ``_sequence`` (the broker's position of the
message) and ``_published_at``. Tables merge on (``_stream``, ``_sequence``), so a message delivered
twice lands once. A field named like one of those columns, or like another field once the destination
normalizes names (``Name`` and ``name``), is loaded as ``<field>_2``.

A body that is not UTF-8, not JSON, or JSON that is not an object is never dropped: it goes to the
table's quarantine in the same load, its text as the record's ``_raw_line`` (what ``headwater
quarantine replay --set`` replaces with fields), located as ``<stream>:<sequence>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from typing import Annotated, Any, Callable
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.detections import is_iso_timestamp
from pydantic import Field

from connectors.rest_api.arrow_pages import iso_timestamps
from headwater.common.widening import ALL_NULL_HINT, JSON_TEXT_METADATA
from headwater.plugins.connectors import STREAM_LAG
from headwater.quarantine.naming import quarantine_table_name
from headwater.quarantine.selection import RAW_LINE

STREAM, SEQUENCE, PUBLISHED_AT = "_stream", "_sequence", "_published_at"
ADDED_COLUMNS = (STREAM, SEQUENCE, PUBLISHED_AT, "_dlt_load_id", "_dlt_id")
POSITION = "stream_position"  # resource state key: the highest sequence whose message the table holds
PRIMARY_KEY = [STREAM, SEQUENCE]
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
TIMESTAMP = pa.timestamp("us", "UTC")
BATCH_ROWS = 10_000  # messages per Arrow table: dlt's fixed cost per item is paid once per table
_TABLE_NAMES = NamingConvention()

# Settings types, checked when headwater.yaml is read.
StreamNames = Annotated[list[str], Field(min_length=1)]
MessageCount = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]


class BrokerError(RuntimeError):
    """A broker or stream the source cannot read; the message names it and says what to do."""


@dataclass(frozen=True)
class Message:
    """One message as fetched: a JSON body, or (Redis entries of several fields) the fields themselves."""

    stream: str
    sequence: int | str
    published_at: datetime
    body: bytes | None = None
    fields: dict[bytes, bytes] | None = None  # column -> text, loaded as text


@dataclass(frozen=True)
class _Rejected:
    message: Message
    shown: str  # the body as text, bad bytes as \xNN
    rule: str
    reason: str


def report_lag(table: str, messages: list[Message], max_messages: int) -> None:
    """How far the source trails after this batch (headwater.plugins.connectors.STREAM_LAG): a batch that took
    fewer than ``max_messages`` emptied its stream (0 s behind); a full one left messages published after its last,
    so at most as old as that. The source's figure is its most behind table's."""
    full = len(messages) >= max_messages and messages
    behind = (datetime.now(timezone.utc) - messages[-1].published_at).total_seconds() if full else 0.0
    lag = dlt.current.source_state().setdefault(STREAM_LAG, {})
    tables = lag.setdefault("tables", {})
    tables[table] = round(max(behind, 0.0), 3)
    lag["behind_seconds"] = max(tables.values())


def table_names(streams: list[str]) -> dict[str, str]:
    """Table (resource) name -> stream: the stream's name in lowercase (ORDERS: orders), other characters
    than letters, digits and `_` as the destination names tables (orders.eu, orders:eu: orders_eu)."""
    tables: dict[str, str] = {}
    for stream in streams:
        table = _TABLE_NAMES.normalize_table_identifier(stream.lower())
        if table in tables:
            raise BrokerError(f"streams {tables[table]!r} and {stream!r} would both load into table {table!r}; "
                              "list only one of them in `streams:`")
        tables[table] = stream
    return tables


def resource_hints(sequence_type: str) -> dict:
    """dlt.resource arguments of a stream's table: merged on (_stream, _sequence), its added columns typed."""
    return {
        "primary_key": PRIMARY_KEY,
        "write_disposition": MERGE,
        "columns": [
            {"name": STREAM, "data_type": "text", "nullable": False},
            {"name": SEQUENCE, "data_type": sequence_type, "nullable": False},
            {"name": PUBLISHED_AT, "data_type": "timestamp", "timezone": True},
        ],
    }


def default_name() -> str:
    """headwater_<source>, the name of the source's dlt pipeline: its consumer's or group's default name."""
    try:
        pipeline = dlt.current.pipeline().pipeline_name
    except Exception:  # outside a load
        pipeline = "headwater"
    return re.sub(r"[^A-Za-z0-9_-]", "_", pipeline)


def shown_address(url: str) -> str:
    """A server URL fit for a message: its password (or a token given as the user) as ***."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    user = f"{parts.username}:***" if parts.password is not None else "***"
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}@{host}").geturl()


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def message_items(table: str, messages: list[Message]) -> Iterator[Any]:
    """The messages as items of ``table``: Arrow tables of rows, then its quarantine's rows, marked."""
    stored, normalize = _known_columns(table)
    for start in range(0, len(messages), BATCH_ROWS):
        rows, rejected = [], []
        for message in messages[start:start + BATCH_ROWS]:
            parsed = _parsed(message)
            (rejected if isinstance(parsed, _Rejected) else rows).append((message, parsed))
        if rows:
            yield _rows_table(rows, stored, normalize)
        if rejected:
            hints = dlt.mark.make_hints(table_name=quarantine_table_name(table), write_disposition="append",
                                        primary_key=[])
            yield dlt.mark.with_hints(_rejected_table([entry for _, entry in rejected]), hints,
                                      create_table_variant=True)


def _parsed(message: Message) -> dict | _Rejected:
    if message.fields is not None:
        try:
            return {name.decode("utf-8"): value.decode("utf-8") for name, value in message.fields.items()}
        except UnicodeDecodeError:
            shown = json.dumps({_shown(name): _shown(value) for name, value in message.fields.items()},
                               ensure_ascii=False)
            return _Rejected(message, shown, "encoding", "a field of the message is not UTF-8 text")
    body = message.body or b""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _Rejected(message, _shown(body), "encoding", "the message is not UTF-8 text")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        return _Rejected(message, text, "json", f"the message is not JSON ({first_line(error)})")
    if not isinstance(value, dict):
        return _Rejected(message, text, "json", f"the message is JSON {_kind(value)}, not an object")
    return value


def _rows_table(rows: list[tuple[Message, dict]], stored: dict[str, dict], normalize: Callable[[str], str]):
    records = [record for _, record in rows]
    text_only = {name for message, record in rows if message.fields is not None for name in record}
    names = _column_names(list(dict.fromkeys(chain.from_iterable(records))), normalize)
    fields, arrays = [], []
    for key, name in names.items():
        column = _column(name, [record.get(key) for record in records],
                         _stored_type(stored.get(normalize(name))), key in text_only)
        if column is not None:
            fields.append(column[0])
            arrays.append(column[1])
    messages = [message for message, _ in rows]
    sequences = [message.sequence for message in messages]
    fields += [pa.field(STREAM, pa.string()), pa.field(SEQUENCE, _sequence_type(sequences)),
               pa.field(PUBLISHED_AT, TIMESTAMP)]
    arrays += [pa.array([message.stream for message in messages], pa.string()),
               pa.array(sequences, _sequence_type(sequences)),
               pa.array([message.published_at for message in messages], TIMESTAMP)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _column(name: str, values: list, stored_type: str | None, text_only: bool) -> tuple[pa.Field, pa.Array] | None:
    """The field's values as one Arrow column, or None when none has a value."""
    present = [value for value in values if value is not None]
    if not present:
        return None
    nested = [isinstance(value, (dict, list)) for value in present]
    if stored_type == "json" or all(nested):  # a JSON column: every value written as JSON
        texts = [None if value is None else _json(value) for value in values]
        return pa.field(name, pa.string(), metadata={JSON_TEXT_METADATA: b"1"}), pa.array(texts, pa.string())
    if text_only or any(nested):
        return pa.field(name, pa.string()), _texts(values)
    try:
        array = pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):  # kinds mixed, integers beyond 64 bits
        return pa.field(name, pa.string()), _texts(values)
    if pa.types.is_string(array.type) and _may_be_timestamps(present[0], stored_type):
        timestamps = iso_timestamps(array)
        if timestamps is not None:
            return pa.field(name, TIMESTAMP), timestamps
    return pa.field(name, array.type), array


def _may_be_timestamps(first: str, stored_type: str | None) -> bool:
    """A new column is typed by its first value, as dlt does; a column the table has keeps its kind."""
    if stored_type is None:
        return is_iso_timestamp(str, first) == "timestamp"
    return stored_type == "timestamp"


def _texts(values: list) -> pa.Array:
    return pa.array([value if value is None or isinstance(value, str) else _json(value) for value in values],
                    pa.string())


def _column_names(keys: list[str], normalize: Callable[[str], str]) -> dict[str, str]:
    """Field -> column: distinct once normalized, and apart from the columns every row gets. A field already in
    the destination's form keeps its name, so the choice does not depend on the order fields arrive in."""
    taken = {normalize(name) for name in ADDED_COLUMNS}
    chosen: dict[str, str] = {}
    for key in sorted(keys, key=lambda key: key != normalize(key)):
        column, suffix = key, 2
        while normalize(column) in taken:
            column, suffix = f"{key}_{suffix}", suffix + 1
        taken.add(normalize(column))
        chosen[key] = column
    return {key: chosen[key] for key in keys}


def _rejected_table(rejected: list[_Rejected]) -> pa.Table:
    sequences = [entry.message.sequence for entry in rejected]
    records = [json.dumps({RAW_LINE: entry.shown, STREAM: entry.message.stream, SEQUENCE: entry.message.sequence,
                           PUBLISHED_AT: entry.message.published_at.isoformat()}, ensure_ascii=False)
               for entry in rejected]
    return pa.table({
        STREAM: pa.array([entry.message.stream for entry in rejected], pa.string()),
        SEQUENCE: pa.array(sequences, _sequence_type(sequences)),
        "record": pa.array(records, pa.string()),
        "rule": pa.array([entry.rule for entry in rejected], pa.string()),
        "reason": pa.array([entry.reason for entry in rejected], pa.string()),
        "location": pa.array([f"{entry.message.stream}:{entry.message.sequence}" for entry in rejected],
                             pa.string()),
        "status": pa.nulls(len(rejected), pa.string()),
    })


def _known_columns(table: str) -> tuple[dict[str, dict], Callable[[str], str]]:
    """The table's columns as dlt's schema of this source has them, and how it names a field."""
    try:
        schema = dlt.current.source_schema()
    except Exception:  # outside an extract: nothing is known
        return {}, str
    columns = dict(schema.get_table_columns(table)) if table in schema.tables else {}
    return columns, schema.naming.normalize_identifier


def _stored_type(stored: dict | None) -> str | None:
    return None if stored is None or stored.get(ALL_NULL_HINT) else stored.get("data_type")


def _sequence_type(sequences: list) -> pa.DataType:
    return pa.int64() if sequences and isinstance(sequences[0], int) else pa.string()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _shown(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "null" if value is None else "a number"
