"""One verified TLS context per CA file for Prefect's API clients in a run's process.

Prefect builds a new verified ``ssl.SSLContext`` for every API client it opens, http:// API or not:
the flow engine's clients, the log and event workers' clients, each loading and parsing the whole CA
bundle again (15-30 ms of CPU, holding the GIL, 4-6 times per run). The context it builds depends only
on the CA file, so Headwater hands Prefect's client module a ``create_default_context`` that returns the
context it built before for the same file (while the file is unchanged) and defers to ``ssl`` for
anything else.

Only calls with a CA file and nothing else are shared: that is Prefect's verified path, which never
changes the context after building it. Its insecure path builds a context without a CA file and turns
verification off on it; that one is never shared. Each Prefect module that builds contexts gets its own
cache, so an httpx client and a websocket never share one (httpcore sets the ALPN protocols of the
context it connects with, and the choice of HTTP/2 is part of the key for the same reason).
"""

from __future__ import annotations

import importlib
import os
import ssl
import threading
import types
from typing import Any

# Prefect's modules that build a verified context for every API client they open.
CLIENT_MODULES = ("prefect.client.orchestration",)


class _SharedContexts(types.ModuleType):
    """Stands in for ``ssl`` inside one Prefect module: everything is ``ssl``'s but verified contexts."""

    def __init__(self):
        super().__init__("ssl")
        self._contexts: dict[tuple, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    def create_default_context(self, purpose=ssl.Purpose.SERVER_AUTH, *, cafile=None, capath=None, cadata=None):
        if cafile is None or capath is not None or cadata is not None or purpose != ssl.Purpose.SERVER_AUTH:
            return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        key = (os.fspath(cafile), _stamp(cafile), _http2())
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                context = ssl.create_default_context(cafile=cafile)
                self._contexts = {key: context}  # an older stamp of the file is not used again
            return context


def _stamp(path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None  # ssl raises its own error for a missing file, and nothing is cached then
    return status.st_mtime_ns, status.st_size


def _http2() -> bool:
    from prefect.settings import PREFECT_API_ENABLE_HTTP2

    return bool(PREFECT_API_ENABLE_HTTP2.value())


def share_api_tls_contexts(preload_default: bool = False) -> None:
    """Make Prefect's API clients in this process share their verified TLS context (idempotent).

    ``preload_default``: build the context for Prefect's default CA bundle (certifi's) now, as a warm
    runner's spare does while it waits, so the run's first client finds it built."""
    for name in CLIENT_MODULES:
        module = importlib.import_module(name)
        if not isinstance(module.ssl, _SharedContexts):
            module.ssl = _SharedContexts()
        if preload_default:
            import certifi

            module.ssl.create_default_context(cafile=certifi.where())
