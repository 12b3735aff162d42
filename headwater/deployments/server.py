"""The Prefect server deployments go to: the one $PREFECT_API_URL names, else the one of `headwater up`,
started when it is not running (a deployment needs a server that outlives the command)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from headwater.local import stack

API_URL_ENV = "PREFECT_API_URL"


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    origin: str  # how it was found, for the user: "PREFECT_API_URL", "headwater up" or "started now"
    ui_url: str | None  # known for the local server; Prefect derives it for others

    @property
    def started_now(self) -> bool:
        return self.origin == "started now"

    @property
    def safe_api_url(self) -> str:
        return safe_url(self.api_url)


def safe_url(url: str) -> str:
    """The URL with the password of its user part, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def find_or_start_server(state_dir: Path, progress: Callable[[str], None] | None = None) -> PrefectServer:
    """$PREFECT_API_URL when set; else the running server of `headwater up`, started if needed.

    Raises stack.StackError (or LocalPostgresError for the embedded database) when the local stack cannot start.
    """
    configured = os.environ.get(API_URL_ENV)
    if configured:
        return PrefectServer(api_url=configured.rstrip("/"), origin=API_URL_ENV, ui_url=None)
    running = stack.status(state_dir)
    if running.prefect_api_url:
        return PrefectServer(api_url=running.prefect_api_url, origin="headwater up", ui_url=running.prefect_ui_url)
    started = stack.up(state_dir, progress=progress)
    if not started.prefect_api_url:
        raise stack.StackError("The local Prefect server started but does not answer; see `headwater ps`.")
    return PrefectServer(api_url=started.prefect_api_url, origin="started now", ui_url=started.prefect_ui_url)


@contextmanager
def prefect_client(server: PrefectServer) -> Iterator[SyncPrefectClient]:
    """Prefect's own client, talking to this server whatever Prefect read from the environment at import."""
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        yield client


def ui_url(server: PrefectServer) -> str | None:
    """Where the server's UI is: known for the local one, derived by Prefect from the API URL for others."""
    if server.ui_url:
        return server.ui_url
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        return get_current_settings().ui_url
