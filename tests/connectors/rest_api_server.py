"""A small, scriptable JSON API on 127.0.0.1 for testing the rest_api connector over real HTTP.

The server runs in a daemon thread on a free port, records every request it receives
(so tests can assert on the auth headers and query parameters a connector sent), and
can be told to answer the next requests to a path with scripted failures (429, 5xx, bodies
that are not JSON) before the real handler runs. `paginated` serves a list of rows in each of the
pagination styles dlt's rest_api understands.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: str
    at: float  # time.monotonic() on arrival, for asserting on retry delays

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as application/x-www-form-urlencoded (OAuth2 token requests)."""
        return {key: values[0] for key, values in parse_qs(self.body).items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # serialised as JSON unless None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as it is instead of body: an HTML page, cut-off JSON, nothing


Handler = Callable[..., Reply]


class ApiServer:
    """Routes (method, path template) to handlers; `{name}` segments are passed to the handler as strings."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._scripted: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), self._request_handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits for one poll: keep teardown quick
            name="rest-api-test-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def get(self, template: str) -> Callable[[Handler], Handler]:
        """Decorator form of route("GET", template, handler)."""

        def register(handler: Handler) -> Handler:
            self.route("GET", template, handler)
            return handler

        return register

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to path with these replies, in order, before its handler takes over."""
        with self._lock:
            self._scripted[path].extend(replies)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.path == path]

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _respond(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            scripted = self._scripted.get(request.path)
            if scripted:
                return scripted.popleft()
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                try:
                    return handler(request, **match.groupdict())
                except Exception as error:  # surfaces a broken test handler as a readable 500, not a hang
                    return Reply(500, {"error": f"{type(error).__name__}: {error}"})
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})

    def _request_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                request = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                reply = server._respond(request)
                payload = reply.raw
                if payload is None:
                    payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in ({"Content-Type": "application/json"} | reply.headers).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        return RequestHandler


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping kept-alive connections when a run ends is normal, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# Pagination styles `paginated` serves, named as dlt's rest_api paginator types.
PAGINATION_STYLES = ("cursor", "json_link", "header_link", "offset", "page_number")


def paginated(rows: list[dict], style: str, request: Received, base_url: str, page_size: int) -> Reply:
    """One page of rows answering request, in the given pagination style.

    cursor: `{"data": [...], "next_cursor": "<opaque>"}`, next page asked for with `?cursor=`.
    json_link: `{"data": [...], "next": "<absolute URL>"}`.
    header_link: `{"data": [...]}` with an RFC 5988 `Link: <URL>; rel="next"` header.
    offset: `?offset=&limit=`, body `{"data": [...], "total": n}`.
    page_number: `?page=` (first page 1), body `{"data": [...], "total_pages": n}`.
    """
    if style == "cursor":
        start = int(request.param("cursor") or 0)  # opaque to the client; an index here
        page = rows[start : start + page_size]
        following = start + page_size
        return Reply(body={"data": page, "next_cursor": str(following) if following < len(rows) else None})
    if style in ("json_link", "header_link"):
        start = int(request.param("start") or 0)
        page = rows[start : start + page_size]
        following = start + page_size
        next_url = None
        if following < len(rows):
            query = {key: values[0] for key, values in request.query.items()} | {"start": following}
            next_url = f"{base_url}{request.path}?{urlencode(query)}"
        if style == "json_link":
            return Reply(body={"data": page, "next": next_url})
        headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
        return Reply(body={"data": page}, headers=headers)
    if style == "offset":
        offset = int(request.param("offset") or 0)
        limit = int(request.param("limit") or page_size)
        return Reply(body={"data": rows[offset : offset + limit], "total": len(rows)})
    if style == "page_number":
        number = int(request.param("page") or 1)
        start = (number - 1) * page_size
        pages = -(-len(rows) // page_size)
        return Reply(body={"data": rows[start : start + page_size], "total_pages": pages})
    raise ValueError(f"unknown pagination style {style!r}; known: {', '.join(PAGINATION_STYLES)}")
