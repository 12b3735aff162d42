"""The JetStream side of a stream: its durable pull consumer, one micro-batch from it, acknowledgements.

The consumer acknowledges with ``AckPolicy.ALL``: the ack of the message at stream sequence N lets go of
every message of the consumer up to N. A load acknowledges nothing it fetched; once its rows and position
committed, the ack sent to the reply subject of the position's message (its latest delivery, kept beside
the position in the resource state) lets them go, from any connection (connectors.nats_jetstream.reader).

The consumer must hand out the messages after the committed position in order: the position skips
everything at or below it. It does not when messages were delivered to a load that died before it
committed (they wait for ``ack_wait`` while newer ones are delivered, and the ack of a newer one would
acknowledge them unread), or when it moved past the position (a full refresh emptied the table). It is
then recreated to start right after the position (``_rewind``); on an interest stream a second consumer
holds the messages meanwhile, which the server would otherwise drop with the last consumer's interest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from connectors.broker_rows import BrokerError, first_line, shown_address

log = logging.getLogger(__name__)

CONNECT_SECONDS = 5.0
REQUEST_SECONDS = 5.0  # beyond a pull request's own expiry: how long its end may take to arrive
ACK = b"+ACK"
API = "$JS.API"
ENDED = {"404", "408"}  # a pull request's end: no messages (no_wait), or it expired before it was filled


@dataclass(frozen=True)
class ConsumerSettings:
    servers: list[str]
    stream: str
    consumer: str
    subject: str | None
    ack_wait: float


@dataclass(frozen=True)
class Fetched:
    sequence: int  # the stream sequence
    published_at: datetime
    data: bytes
    reply: str  # the ack subject of this delivery


async def connect(servers: list[str]):
    """A connection to the first server that answers; BrokerError naming them when none does."""
    import nats

    problems: list[BaseException] = []

    async def note(error: BaseException) -> None:
        problems.append(error)

    try:
        return await nats.connect(servers=servers, connect_timeout=CONNECT_SECONDS, allow_reconnect=False,
                                  max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=note)
    except Exception as error:
        cause = problems[-1] if problems else error
        raise BrokerError(f"cannot connect to NATS at {', '.join(map(shown_address, servers))}: "
                          f"{type(cause).__name__}: {first_line(cause)}; check `servers:` of the source and that "
                          "the server runs") from error


async def fetch_batch(settings: ConsumerSettings, position: int | None, ack_subject: str | None,
                      max_messages: int, max_wait: float) -> list[Fetched]:
    """The next messages after ``position``, in order: up to ``max_messages`` or what ``max_wait`` seconds
    bring, unacknowledged. Deliveries at or below the position are acknowledged and left out."""
    connection = await connect(settings.servers)
    try:
        js = connection.jetstream()
        retention = await _retention(js, settings)
        await _ensure_consumer(connection, js, settings, retention, position, ack_subject)
        return await _pull(connection, settings, position, max_messages, max_wait)
    finally:
        await connection.close()


async def check_stream(settings: ConsumerSettings) -> None:
    """The server answers and has the stream; nothing is fetched and the consumer is left as it is."""
    connection = await connect(settings.servers)
    try:
        await _retention(connection.jetstream(), settings)
    finally:
        await connection.close()


async def acknowledge_through(connection, ack_subject: str) -> None:
    """Acknowledge the message ``ack_subject`` was delivered with and every one before it; nothing when its
    consumer is gone (then nothing holds those messages)."""
    import nats.errors

    try:
        await connection.request(ack_subject, ACK, timeout=REQUEST_SECONDS)
    except nats.errors.NoRespondersError:
        log.info("the consumer of %s is gone: nothing to acknowledge", ack_subject)


async def _retention(js, settings: ConsumerSettings):
    import nats.errors
    import nats.js.errors

    try:
        return (await js.stream_info(settings.stream)).config.retention
    except nats.js.errors.NotFoundError:
        raise BrokerError(f"JetStream stream {settings.stream!r} does not exist on "
                          f"{', '.join(map(shown_address, settings.servers))}; check `streams:` of the source, or "
                          f"create it (nats stream add {settings.stream})") from None
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError) as error:
        raise BrokerError(f"JetStream does not answer on {', '.join(map(shown_address, settings.servers))} "
                          f"({type(error).__name__}); the server must run with JetStream enabled (-js)") from error


async def _ensure_consumer(connection, js, settings: ConsumerSettings, retention, position: int | None,
                           ack_subject: str | None) -> None:
    """The durable consumer exists, acknowledged up to ``position``, and delivers what follows it next."""
    info = await _consumer_info(js, settings)
    if info is None:
        await _create(js, settings, retention, position)
        return
    if ack_subject is not None:  # what the last load committed, in case its acknowledgement did not happen
        await acknowledge_through(connection, ack_subject)
        info = await _consumer_info(js, settings)
    why = _why_rewind(info, settings, position)
    if why is not None:
        log.warning("JetStream consumer %s of stream %s %s: recreated to deliver from %s", settings.consumer,
                    settings.stream, why, "the start" if position is None else f"sequence {position + 1}")
        await _rewind(js, settings, retention, position)


def _why_rewind(info, settings: ConsumerSettings, position: int | None) -> str | None:
    from nats.js.api import AckPolicy

    config = info.config
    if (config.ack_policy != AckPolicy.ALL or config.filter_subject != settings.subject
            or config.ack_wait != settings.ack_wait or config.max_ack_pending != -1):
        return "is set up otherwise than the source's settings"
    if info.num_ack_pending:
        return (f"holds {info.num_ack_pending} messages delivered to a load that did not commit them "
                "(they would wait for ack_wait while newer ones load)")
    if info.delivered.consumer_seq and info.delivered.stream_seq > (position or 0):
        return (f"was moved past the loaded position ({info.delivered.stream_seq}, loaded up to "
                f"{position or 'nothing'})")
    return None


async def _consumer_info(js, settings: ConsumerSettings):
    import nats.js.errors

    try:
        return await js.consumer_info(settings.stream, settings.consumer)
    except nats.js.errors.NotFoundError:
        return None


def _config(name: str, settings: ConsumerSettings, position: int | None, **extra):
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    start = ({"deliver_policy": DeliverPolicy.ALL} if position is None else
             {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1})
    return ConsumerConfig(durable_name=name, ack_policy=AckPolicy.ALL, ack_wait=settings.ack_wait,
                          filter_subject=settings.subject, max_ack_pending=-1, **start, **extra)


async def _create(js, settings: ConsumerSettings, retention, position: int | None, name: str | None = None,
                  **extra) -> None:
    import nats.js.errors
    from nats.js.api import RetentionPolicy

    try:
        await js.add_consumer(settings.stream, _config(name or settings.consumer, settings, position, **extra))
    except nats.js.errors.BadRequestError as error:
        hint = (" (a work-queue stream takes only consumers that acknowledge each message; use a limits or "
                "interest stream)" if retention == RetentionPolicy.WORK_QUEUE else "")
        raise BrokerError(f"cannot create JetStream consumer {settings.consumer!r} on stream {settings.stream!r}: "
                          f"{error.description}{hint}") from error


async def _rewind(js, settings: ConsumerSettings, retention, position: int | None) -> None:
    from nats.js.api import RetentionPolicy

    hold = f"{settings.consumer}_rewind" if retention == RetentionPolicy.INTEREST else None
    if hold is not None:
        await _create(js, settings, retention, position, name=hold, inactive_threshold=60.0)
    try:
        await js.delete_consumer(settings.stream, settings.consumer)
        await _create(js, settings, retention, position)
    finally:
        if hold is not None:
            await js.delete_consumer(settings.stream, hold)


async def _pull(connection, settings: ConsumerSettings, position: int | None, max_messages: int,
                max_wait: float) -> list[Fetched]:
    """One pull request for up to ``max_messages``, expiring after ``max_wait`` seconds, read to its end.

    The server ends a request it did not fill with a status (408 once it expired); nothing comes for it after
    that. A request cut short by the client instead (as the client's own fetch does on its timeout) would
    leave the messages already on their way delivered to no one, and pending until ack_wait.
    """
    taken: dict[int, Fetched] = {}
    # A delivery at or below the position, before any the batch takes, is acknowledged at once. The server
    # ignores an ack of an earlier delivery than the last one acknowledged, so one after them is not: the
    # ack of the batch's last message, once it committed, covers it.
    held = None
    inbox = connection.new_inbox()
    subscription = await connection.subscribe(inbox, pending_msgs_limit=0, pending_bytes_limit=0)  # no limit
    try:
        request = {"batch": max_messages, "expires": int(max_wait * 1e9)}
        await connection.publish(f"{API}.CONSUMER.MSG.NEXT.{settings.stream}.{settings.consumer}",
                                 json.dumps(request).encode(), reply=inbox)
        for _ in range(max_messages):
            message = await _next(subscription, max_wait + REQUEST_SECONDS, settings)
            if message is None:
                break
            sequence = message.metadata.sequence.stream
            if position is not None and sequence <= position:
                held = held if taken else message
            else:  # taken once; redelivered within the batch (ack_wait ran out), its latest ack subject counts
                taken[sequence] = Fetched(sequence, message.metadata.timestamp, message.data, message.reply)
    finally:
        await subscription.unsubscribe()
    if held is not None:
        await acknowledge_through(connection, held.reply)
    return sorted(taken.values(), key=lambda fetched: fetched.sequence)


async def _next(subscription, timeout: float, settings: ConsumerSettings):
    """The request's next message; None once the server ended the request."""
    import nats.errors

    try:
        message = await subscription.next_msg(timeout=timeout)
    except nats.errors.TimeoutError:
        log.warning("JetStream did not end the pull request of consumer %s on stream %s in time; the next load "
                    "takes what it may still have delivered", settings.consumer, settings.stream)
        return None
    status = (message.headers or {}).get("Status")
    if not status:
        return message
    if status in ENDED:
        return None
    raise BrokerError(f"JetStream refused the pull request of consumer {settings.consumer!r} on stream "
                      f"{settings.stream!r}: {status} {(message.headers or {}).get('Description', '')}".rstrip())
