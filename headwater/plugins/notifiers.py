"""Alert notifiers: the registry the `register_notifiers` hook fills, and the built-ins (webhook, log).

A notifier is a factory: given its options from `alerts:` in headwater.yaml it returns a function that
sends one event. The factory rejects bad options at once, so `headwater check` reports them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from headwater import __version__
from headwater.common.registry import PluginRegistry, RegistrationError, check_metadata, check_name, first_line
from headwater.hookspecs import hookimpl

# The log notifier writes here; so does the run when a notifier fails.
LOGGER = logging.getLogger("headwater.alerts")

Send = Callable[[dict], None]


@dataclass(frozen=True)
class Notifier:
    name: str
    factory: Callable[[dict], Send]
    plugin: Any  # headwater.plugins.connectors.Plugin that registered it
    description: str = ""
    # Options that carry credentials (a webhook URL usually does): only ${NAME} references are accepted.
    secret_options: tuple[str, ...] = ()


class NotifierRegistry(PluginRegistry[Notifier]):
    """Notifiers by name, filled by the register_notifiers hook of the built-ins and every plugin."""

    kind = "notifier"

    def __init__(self) -> None:
        super().__init__(_make_notifier)


NOTIFIER_METADATA = frozenset({"description", "secret_options"})


def _make_notifier(plugin: Any, name: Any, factory: Any, metadata: dict[str, Any]) -> Notifier:
    name = check_name("notifier", name)
    if not callable(factory):
        raise RegistrationError(f"notifier {name!r}: expected a factory(options) -> send, got {type(factory).__name__}")
    check_metadata("notifier", name, metadata, NOTIFIER_METADATA)
    return Notifier(
        name=name,
        factory=factory,
        plugin=plugin,
        description=first_line(metadata.get("description")),
        secret_options=tuple(metadata.get("secret_options", ())),
    )


def webhook(options: dict) -> Send:
    """POST the event as JSON to `url`; `timeout` seconds per attempt, `retries` attempts in all."""
    unknown = set(options) - {"url", "timeout", "retries", "headers"}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; allowed: url, timeout, retries, headers")
    url = options.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("webhook needs `url:` an http(s) URL, e.g. url: \"${ALERT_WEBHOOK_URL}\"")
    timeout = float(options.get("timeout", 10))
    attempts = int(options.get("retries", 3))
    if timeout <= 0 or attempts < 1:
        raise ValueError("timeout must be positive and retries at least 1")
    headers = {"Content-Type": "application/json", "User-Agent": f"headwater/{__version__}",
               **{str(k): str(v) for k, v in (options.get("headers") or {}).items()}}

    def send(event: dict) -> None:
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=True) as client:
            for attempt in range(attempts):
                try:
                    response = client.post(url, content=json.dumps(event))
                except httpx.TransportError as error:
                    if attempt == attempts - 1:
                        # The URL is a secret: the message names only the reason.
                        raise RuntimeError(f"webhook unreachable after {attempts} attempts: "
                                           f"{type(error).__name__}: {error}") from None
                else:
                    if response.is_success:
                        return
                    # A client error other than timeout/rate limit will not improve by asking again.
                    status = response.status_code
                    if 400 <= status < 500 and status not in (408, 429) or attempt == attempts - 1:
                        raise RuntimeError(f"webhook answered HTTP {status}") from None
                time.sleep(0.5 * 2**attempt)

    return send


def log(options: dict) -> Send:
    """Write the event as one JSON line to the `headwater.alerts` logger (level: warning by default)."""
    level_name = str(options.get("level", "warning")).upper()
    level = logging.getLevelName(level_name)
    if set(options) - {"level"} or not isinstance(level, int):
        raise ValueError("log takes only `level:` (debug, info, warning, error)")

    def send(event: dict) -> None:
        LOGGER.log(level, "%s", json.dumps(event))

    return send


@hookimpl
def register_notifiers(register):
    register("webhook", webhook, description="JSON POST to a URL, retried", secret_options=("url",))
    register("log", log, description="one JSON line in the headwater.alerts log")
