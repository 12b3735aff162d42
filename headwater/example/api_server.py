"""The example shop's payments API: a small JSON-over-HTTP service on the standard library.

    GET /health                                   no auth
    GET /payments?updated_since=&cursor=&limit=   Authorization: Bearer <token>

/payments returns {"data": [...], "next_cursor": "<opaque>" | null}, ordered by
(updated_at, payment_id). `updated_since` is inclusive, so a client resuming from
its last seen timestamp gets the boundary rows again (dlt's incremental drops
them). The cursor is an opaque token for the last row returned. Every request
reads api.db afresh, so the shop may advance while the server runs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from headwater.example.simulator import Shop, from_db, to_db

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
QUERY_PARAMETERS = ("updated_since", "cursor", "limit")
PAYMENT_COLUMNS = ("payment_id", "order_id", "amount", "method", "status", "updated_at")


class ApiError(Exception):
    """A request the API refuses, answered as {"error": message} with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def encode_cursor(updated_at: str, payment_id: int) -> str:
    raw = json.dumps([updated_at, payment_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, payment_id = json.loads(raw)
        datetime.fromisoformat(updated_at)
        if not isinstance(payment_id, int):
            raise ValueError(payment_id)
    except (binascii.Error, ValueError, TypeError):
        raise ApiError(400, "cursor is not valid; pass back next_cursor exactly as returned") from None
    return updated_at, payment_id


def parse_timestamp(text: str) -> str:
    """An ISO-8601 query value as the stored UTC text; a value without offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            400,
            f"updated_since must be an ISO-8601 timestamp such as 2026-11-01T00:00:00+00:00 "
            f"(URL-encode '+' as %2B), got {text!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    stored = to_db(moment)
    # Stored values have whole seconds; keep any fraction so the comparison stays exact.
    return f"{stored}.{moment.microsecond:06d}" if moment.microsecond else stored


def parse_limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {text!r}")
    return limit


def parse_query(query: str) -> dict[str, str]:
    """Query parameters, refusing unknown or repeated ones so typos do not go unnoticed."""
    params = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - set(QUERY_PARAMETERS))
    if unknown:
        raise ApiError(
            400, f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(QUERY_PARAMETERS)}"
        )
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise ApiError(400, f"parameter(s) given more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in params.items()}


def list_payments(api_db: Path, params: dict[str, str]) -> dict:
    """One page of payments for validated query `params`, as the response body."""
    limit = parse_limit(params["limit"]) if "limit" in params else DEFAULT_LIMIT
    where: list[str] = []
    args: list[object] = []
    if "updated_since" in params:
        where.append("updated_at >= ?")
        args.append(parse_timestamp(params["updated_since"]))
    if "cursor" in params:
        after_time, after_id = decode_cursor(params["cursor"])
        where.append("(updated_at > ? OR (updated_at = ? AND payment_id > ?))")
        args += [after_time, after_time, after_id]
    sql = f"SELECT {', '.join(PAYMENT_COLUMNS)} FROM payments"
    if where:
        sql += " WHERE " + " AND ".join(where)
    # One extra row tells whether another page exists without a second query.
    sql += " ORDER BY updated_at, payment_id LIMIT ?"
    args.append(limit + 1)

    if not api_db.exists():
        raise ApiError(503, "the example shop is not initialised; run `headwater example init`")
    con = sqlite3.connect(f"{api_db.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(sql, args).fetchall()
    finally:
        con.close()

    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][5], page[-1][0]) if len(rows) > limit else None
    data = [
        dict(zip(PAYMENT_COLUMNS, (*row[:5], from_db(row[5]).isoformat()), strict=True))
        for row in page
    ]
    return {"data": data, "next_cursor": next_cursor}


class PaymentsServer(ThreadingHTTPServer):
    """The HTTP server, carrying the store location and the accepted token for its handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api_db: Path, token: str):
        super().__init__(address, _PaymentsHandler)
        self.api_db = api_db
        self.token = token

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _PaymentsHandler(BaseHTTPRequestHandler):
    server: PaymentsServer
    server_version = "HeadwaterExampleShop/1"

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                self._send_json(200, {"status": "ok"})
            elif url.path == "/payments":
                self._check_token()
                self._send_json(200, list_payments(self.server.api_db, parse_query(url.query)))
            else:
                raise ApiError(404, f"no such endpoint: {url.path}")
        except ApiError as error:
            self._send_json(error.status, {"error": error.message})

    def _check_token(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, supplied = header.partition(" ")
        if scheme.lower() != "bearer" or not supplied:
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        # Constant-time comparison, so response timing does not leak the token.
        if not hmac.compare_digest(supplied.strip().encode(), self.server.token.encode()):
            raise ApiError(401, "invalid bearer token")

    def _send_json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="example-shop"')
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature fixed by base class
        # Request lines only (never headers, so never the token), and only at debug level.
        logger.debug("%s " + format, self.address_string(), *args)


def make_server(
    state_dir: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> PaymentsServer:
    """Bind the API (port 0 picks a free port); the token defaults to the shop's own."""
    shop = Shop(state_dir)
    return PaymentsServer((host, port), shop.api_db, token or shop.api_token)


@contextmanager
def serve_api(
    state_dir: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> Iterator[str]:
    """Run the API in a daemon thread for the duration of the block; yields its base URL."""
    server = make_server(state_dir, host, port, token)
    thread = threading.Thread(target=server.serve_forever, name="example-shop-api", daemon=True)
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_api(
    state_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the API in the foreground until interrupted; `on_ready` receives the base URL."""
    server = make_server(state_dir, host, port, token)
    try:
        if on_ready:
            on_ready(server.base_url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
