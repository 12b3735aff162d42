"""One load of a nats_jetstream source: per stream, the messages after the position its table holds.

The position (the highest stream sequence loaded) and the ack subject of that message live in the
resource state, so they commit in the same load as the rows. Nothing fetched is acknowledged before
that: ``acknowledge`` (Connector.acknowledge) sends the ack once the load committed, and the next load
sends it again first (connectors.nats_jetstream.consumer), in case the process died in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dlt

from connectors.broker_rows import POSITION, Message, message_items, report_lag
from connectors.nats_jetstream.consumer import ConsumerSettings, acknowledge_through, check_stream, connect, fetch_batch
from headwater.plugins.connectors import in_load

DEFAULT_SERVERS = "nats://127.0.0.1:4222"
ACK_SUBJECT = "ack_subject"  # resource state key: where the ack of the position's message goes
STREAM = "stream"  # resource state key: the JetStream stream the table loads


@dataclass(frozen=True)
class NatsSettings:
    servers: list[str]
    consumer: str
    subject: str | None
    max_messages: int
    max_wait: float
    ack_wait: float


def server_list(servers: str) -> list[str]:
    """`servers:` as the client takes it: one URL, or several separated by commas (one cluster)."""
    return [server.strip() for server in servers.split(",") if server.strip()]


def stream_rows(settings: NatsSettings, table: str, stream: str) -> Iterator:
    """The rows of one micro-batch of ``stream``; its position moves to the last message taken."""
    consumer = ConsumerSettings(settings.servers, stream, settings.consumer, settings.subject, settings.ack_wait)
    if not in_load():  # `headwater check`: the stream is there; nothing is fetched, so nothing is held
        run_async(check_stream(consumer))
        return
    state = dlt.current.resource_state()
    state[STREAM] = stream
    fetched = run_async(fetch_batch(consumer, state.get(POSITION), state.get(ACK_SUBJECT), settings.max_messages,
                                    settings.max_wait))
    messages = [Message(stream, message.sequence, message.published_at, body=message.data) for message in fetched]
    yield from message_items(table, messages)
    report_lag(table, messages, settings.max_messages)
    if fetched:
        state[POSITION], state[ACK_SUBJECT] = fetched[-1].sequence, fetched[-1].reply


def acknowledge(settings: dict, source_state: dict) -> None:
    """Acknowledge every message up to each stream's committed position (Connector.acknowledge)."""
    subjects = [state[ACK_SUBJECT] for state in (source_state.get("resources") or {}).values()
                if isinstance(state, dict) and state.get(ACK_SUBJECT)]
    if subjects:
        run_async(_acknowledge(server_list(settings.get("servers") or DEFAULT_SERVERS), subjects))


async def _acknowledge(servers: list[str], subjects: list[str]) -> None:
    connection = await connect(servers)
    try:
        for subject in subjects:
            await acknowledge_through(connection, subject)
    finally:
        await connection.close()


def run_async(coroutine):
    """Run the client's coroutine to its end from dlt's synchronous extract, in a loop of its own (in a thread
    of its own when the caller's thread runs an event loop already)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
