"""The Redis side of a stream: the source's consumer group, one micro-batch from it, acknowledgements.

A load acknowledges nothing it reads (XREADGROUP); once its rows and position committed, every entry of
the group pending at or below the position is acknowledged (XACK of what XPENDING lists), and every load
does the same first, in case the last one did not get to it.

Entries after the committed position must come in order, and each position skips what is at or below
it. Entries read by a load that died before it committed stay pending for the source's consumer: a load
reads those first (ID 0), then new ones (``>``). When entries after the position were delivered and
are not pending for that consumer (acknowledged past the position, as after a full refresh emptied the
table, or pending for another consumer), the group is created again at the position (``_rewind``).
"""

from __future__ import annotations

import logging
import time

from connectors.broker_rows import BrokerError, first_line, shown_address

log = logging.getLogger(__name__)

CONNECT_SECONDS = 5.0
ACK_CHUNK = 10_000  # pending entries listed and acknowledged per round trip


def entry_id(text: str | bytes) -> tuple[int, int]:
    """An entry ID (`<ms>-<seq>`) as numbers, which order as the stream does."""
    text = text.decode() if isinstance(text, bytes) else text
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def connect(url: str):
    """A client of the server at ``url``, checked to answer; BrokerError naming it when it does not."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_SECONDS)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        raise BrokerError(f"cannot connect to Redis at {shown_address(url)}: {type(error).__name__}: "
                          f"{first_line(error)}; check `url:` of the source and that the server runs") from error
    return client


def check_stream(client, url: str, key: str) -> None:
    kind = client.type(key).decode()
    if kind == "none":
        raise BrokerError(f"Redis stream {key!r} does not exist on {shown_address(url)}; check `streams:` of the "
                          f"source, or create it (XADD {key} ..., or XGROUP CREATE {key} <group> 0 MKSTREAM)")
    if kind != "stream":
        raise BrokerError(f"Redis key {key!r} on {shown_address(url)} is a {kind}, not a stream; check `streams:`")


def prepare_group(client, key: str, group: str, consumer: str, position: str | None) -> None:
    """The group exists, acknowledged up to ``position``, and its consumer gets what follows it in order."""
    import redis

    try:  # (a group gone since the last load starts after what raw holds)
        client.xgroup_create(key, group, id=position or "0", mkstream=True)
        return
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
    if position is not None:  # what the last load committed, in case its acknowledgement did not happen
        acknowledge_through(client, key, group, position)
    info = next(info for info in client.xinfo_groups(key) if info["name"].decode() == group)
    delivered = info["last-delivered-id"].decode()
    if entry_id(delivered) <= entry_id(position or "0-0"):
        return
    ours = next((found["pending"] for found in client.xpending(key, group)["consumers"]
                 if found["name"].decode() == consumer), 0)
    after = client.xrange(key, "-" if position is None else f"({position}", delivered, count=ours + 1)
    if len(after) > ours:
        log.warning("Redis consumer group %s of stream %s delivered entries after the loaded position (%s) that "
                    "its consumer %s does not hold pending: created again at %s", group, key, position or "none",
                    consumer, position or "the start")
        _rewind(client, key, group, position)


def read_batch(client, key: str, group: str, consumer: str, position: str | None, max_messages: int,
               max_wait: float) -> list[tuple[str, dict]]:
    """The consumer's entries after ``position``, unacknowledged: first those it was given before and never
    acknowledged, then new ones, up to ``max_messages`` or what ``max_wait`` seconds bring. Entries at or
    below the position are acknowledged and left out. A deleted entry comes with no fields."""
    deadline = time.monotonic() + max_wait
    floor = entry_id(position) if position is not None else (0, -1)
    taken: dict[str, dict] = {}
    held: list[bytes] = []

    def take(entries) -> None:
        for raw, fields in entries:
            if entry_id(raw) <= floor:
                held.append(raw)
            else:
                taken.setdefault(raw.decode(), fields or {})

    start = "0"
    while len(taken) < max_messages:
        entries = _entries(client.xreadgroup(group, consumer, {key: start}, count=max_messages - len(taken)))
        if not entries:
            break
        take(entries)
        start = entries[-1][0]
    while len(taken) < max_messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0.001:
            break
        entries = _entries(client.xreadgroup(group, consumer, {key: ">"}, count=max_messages - len(taken),
                                             block=max(1, int(remaining * 1000))))
        if not entries:
            break
        take(entries)
    if held:
        client.xack(key, group, *held)
    return sorted(taken.items(), key=lambda item: entry_id(item[0]))


def acknowledge_through(client, key: str, group: str, position: str) -> int:
    """Acknowledge every entry of the group pending at or below ``position``: how many there were."""
    acknowledged = 0
    while True:
        pending = client.xpending_range(key, group, min="-", max=position, count=ACK_CHUNK)
        if pending:
            acknowledged += client.xack(key, group, *(entry["message_id"] for entry in pending))
        if len(pending) < ACK_CHUNK:
            return acknowledged


def _rewind(client, key: str, group: str, position: str | None) -> None:
    client.xgroup_destroy(key, group)
    client.xgroup_create(key, group, id=position or "0")


def _entries(reply) -> list:
    """The entries of a one-stream XREADGROUP reply (RESP2: [[key, entries]], RESP3: {key: [entries]})."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))[0] if reply else []
    return reply[0][1]
