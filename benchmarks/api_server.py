"""A local JSON API for the API case: pages of 1000 records rendered up front, cursor pagination.

Pages are rendered before the clock starts, so the server costs little more than a socket write and
the measurement is of the client side.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from benchmarks.data import events

PAGE_SIZE = 1000


def render_pages(records: int) -> list[bytes]:
    """``records`` events as JSON pages; each page names the cursor of the next one."""
    frame = events(records)
    rows = frame.with_columns(
        created_at=frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
        updated_at=frame["updated_at"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
    ).to_dicts()
    count = max(1, -(-records // PAGE_SIZE))
    return [
        json.dumps({
            "data": rows[index * PAGE_SIZE:(index + 1) * PAGE_SIZE],
            "next_cursor": str(index + 1) if index + 1 < count else None,
        }).encode()
        for index in range(count)
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API would allow
    pages: list[bytes] = []
    latency: float = 0.0  # seconds before each page is answered

    def do_GET(self):  # noqa: N802 - the name http.server calls
        url = urlparse(self.path)
        if url.path.rstrip("/") != "/events":
            self.send_error(404)
            return
        cursor = parse_qs(url.query).get("cursor", ["0"])[0]
        body = self.pages[int(cursor)]
        if self.latency:
            time.sleep(self.latency)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - silence the per-request log
        pass


class ApiServer:
    """``with ApiServer(records) as server:`` serves ``server.url + '/events'`` on 127.0.0.1 until exit; with
    ``latency``, each page after that many seconds, as a remote API answers."""

    def __init__(self, records: int, latency: float = 0.0):
        handler = type("Handler", (_Handler,), {"pages": render_pages(records), "latency": latency})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ApiServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
