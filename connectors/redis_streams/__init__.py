"""Entries of Redis streams, one table per stream, merged on (_stream, _sequence).

Each load takes one micro-batch per stream through the source's consumer group and acknowledges it
only once the rows committed (connectors.redis_streams.reader); an entry delivered again lands once.
"""

from __future__ import annotations

import dlt

from connectors.broker_rows import MessageCount, Seconds, StreamNames, default_name, resource_hints, table_names
from connectors.redis_streams.reader import DEFAULT_URL, RedisSettings, stream_rows


@dlt.source(name="redis_streams")
def redis_streams(
    streams: StreamNames,
    url: str = DEFAULT_URL,
    group: str | None = None,
    consumer: str = "headwater",
    body_field: str = "data",
    max_messages: MessageCount = 10_000,
    max_wait_seconds: Seconds = 1.0,
):
    """Load the entries of Redis streams: one table per stream, each entry one row.

    Args:
        streams: Stream keys; each loads into the table named like it (lowercase, `_` for other characters,
            so `orders:eu` loads into `orders_eu`).
        url: redis://[user:password@]host:port/db of the server (rediss:// for TLS).
        group: The consumer group the streams are read through; created (from the stream's start) with the
            first load and owned by the source. Default: headwater_<source>.
        consumer: The consumer of the group that reads; entries it was given and did not acknowledge (a
            load that died) are read again first.
        body_field: An entry holding only this field is a JSON message, whose object's fields become the
            columns (any other body goes to the table's quarantine); any other entry's fields are the
            columns, as text.
        max_messages: A load takes at most this many entries per stream.
        max_wait_seconds: A load waits at most this long per stream for entries to arrive; a stream with
            nothing new costs this much time.
    """
    settings = RedisSettings(url=url, group=group or default_name(), consumer=consumer, body_field=body_field,
                             max_messages=max_messages, max_wait=max_wait_seconds)
    return [dlt.resource(stream_rows(settings, table, key), name=table, **resource_hints("text"))
            for table, key in table_names(streams).items()]
