"""Messages of NATS JetStream streams, one table per stream, merged on (_stream, _sequence).

Each load takes one micro-batch per stream from the source's durable pull consumer and acknowledges it
only once the rows committed (connectors.nats_jetstream.reader); a message delivered again lands once.
"""

from __future__ import annotations

import dlt

from connectors.broker_rows import MessageCount, Seconds, StreamNames, default_name, resource_hints, table_names
from connectors.nats_jetstream.reader import DEFAULT_SERVERS, NatsSettings, server_list, stream_rows


@dlt.source(name="nats_jetstream")
def nats_jetstream(
    streams: StreamNames,
    servers: str = DEFAULT_SERVERS,
    consumer: str | None = None,
    subject: str | None = None,
    max_messages: MessageCount = 10_000,
    max_wait_seconds: Seconds = 1.0,
    ack_wait_seconds: Seconds = 300,
):
    """Load the JSON messages of NATS JetStream streams: one table per stream, each message one row.

    Args:
        streams: JetStream stream names; each loads into the table named like it (lowercase, `_` for
            other characters). Every message body is a JSON object whose fields become columns; any
            other body goes to the table's quarantine.
        servers: NATS server URL (nats://user:password@host:4222), or several separated by commas.
        consumer: The durable pull consumer each stream is read with; created with the first load and
            owned by the source (nothing else should read from it). Default: headwater_<source>.
        subject: Only messages whose subject matches this filter (wildcards allowed); default: all.
        max_messages: A load takes at most this many messages per stream.
        max_wait_seconds: A load waits at most this long per stream for messages to arrive; a stream with
            nothing new costs this much time.
        ack_wait_seconds: How long JetStream waits for a load to commit what it fetched before it may
            deliver those messages again; longer than a load takes.
    """
    settings = NatsSettings(servers=server_list(servers), consumer=consumer or default_name(), subject=subject,
                            max_messages=max_messages, max_wait=max_wait_seconds, ack_wait=ack_wait_seconds)
    return [dlt.resource(stream_rows(settings, table, stream), name=table, **resource_hints("bigint"))
            for table, stream in table_names(streams).items()]
