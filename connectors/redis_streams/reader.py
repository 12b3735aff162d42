"""One load of a redis_streams source: per stream, the entries after the position its table holds.

The position (the highest entry ID loaded) lives in the resource state with the stream key and the
group, so it commits in the same load as the rows and ``acknowledge`` (Connector.acknowledge) finds
what to acknowledge from the committed state alone.

An entry holding one field, ``body_field``, is a JSON message: its object's fields are the columns.
Any other entry's fields are the columns themselves, as text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import dlt

from connectors.broker_rows import POSITION, Message, message_items, report_lag
from connectors.redis_streams import group as groups
from headwater.plugins.connectors import in_load

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
STREAM = "stream"  # resource state keys: the stream key and the consumer group the table loads
GROUP = "group"


@dataclass(frozen=True)
class RedisSettings:
    url: str
    group: str
    consumer: str
    body_field: str
    max_messages: int
    max_wait: float


def stream_rows(settings: RedisSettings, table: str, key: str) -> Iterator:
    """The rows of one micro-batch of stream ``key``; its position moves to the last entry taken."""
    client = groups.connect(settings.url)
    try:
        groups.check_stream(client, settings.url, key)
        if not in_load():  # `headwater check`: the stream is there; nothing is read, so nothing is held
            return
        state = dlt.current.resource_state()
        state[STREAM], state[GROUP] = key, settings.group
        position = state.get(POSITION)
        groups.prepare_group(client, key, settings.group, settings.consumer, position)
        entries = groups.read_batch(client, key, settings.group, settings.consumer, position, settings.max_messages,
                                    settings.max_wait)
    finally:
        client.close()
    messages = [_message(key, entry, fields, settings.body_field) for entry, fields in entries if fields]
    if len(messages) < len(entries):
        log.warning("%s: %d entries were deleted from the stream before they loaded", key,
                    len(entries) - len(messages))
    yield from message_items(table, messages)
    report_lag(table, messages, settings.max_messages)
    if entries:
        state[POSITION] = entries[-1][0]


def acknowledge(settings: dict, source_state: dict) -> None:
    """Acknowledge every entry up to each stream's committed position (Connector.acknowledge)."""
    import redis

    streams = [state for state in (source_state.get("resources") or {}).values()
               if isinstance(state, dict) and state.get(POSITION) and state.get(STREAM) and state.get(GROUP)]
    if not streams:
        return
    client = groups.connect(settings.get("url") or DEFAULT_URL)
    try:
        for state in streams:
            try:
                groups.acknowledge_through(client, state[STREAM], state[GROUP], state[POSITION])
            except redis.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                log.info("%s: consumer group %s is gone: nothing to acknowledge", state[STREAM], state[GROUP])
    finally:
        client.close()


def _message(key: str, entry: str, fields: dict[bytes, bytes], body_field: str) -> Message:
    milliseconds, _ = groups.entry_id(entry)
    published = datetime.fromtimestamp(milliseconds / 1000, timezone.utc)
    if len(fields) == 1 and body_field.encode() in fields:
        return Message(key, entry, published, body=fields[body_field.encode()])
    return Message(key, entry, published, fields=fields)
