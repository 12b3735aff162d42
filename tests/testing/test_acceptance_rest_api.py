"""The built-in `rest_api` connector under the acceptance kit, against a small JSON API on 127.0.0.1.

The API serves every list in the test's `api.json` as an endpoint, with bearer auth, page-number
pagination and an inclusive `updated_since` filter, like many real APIs. Each test runs its own
server on a free port and stops it afterwards; rows are added by editing the file it reads.
"""

from __future__ import annotations

import hmac
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from headwater.testing import ConnectorAcceptanceTests

TOKEN = "acceptance-token"
TOKEN_VARIABLE = "ACCEPTANCE_API_TOKEN"
PAGE_SIZE = 3
PARAMETERS = {"updated_since", "page", "per_page"}
FIRST_UPDATE = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)


class JsonApi(ThreadingHTTPServer):
    """Serves the lists of one JSON file; re-read on every request, so the test can add rows while it runs."""

    daemon_threads = True

    def __init__(self, data_file: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.data_file = data_file

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: JsonApi

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        url = urlsplit(self.path)
        params = {name: values[-1] for name, values in parse_qs(url.query).items()}
        supplied = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(supplied.encode(), TOKEN.encode()):
            return self._send(401, {"error": "missing or invalid bearer token"})
        # Unknown parameters are refused, so a config that sends the wrong ones fails loudly.
        if set(params) - PARAMETERS:
            return self._send(400, {"error": f"unknown parameters {sorted(set(params) - PARAMETERS)}"})
        records = json.loads(self.server.data_file.read_text()).get(url.path.strip("/"))
        if records is None:
            return self._send(404, {"error": f"no such endpoint {url.path}"})
        if "updated_since" in params:
            since = datetime.fromisoformat(params["updated_since"])
            records = [row for row in records if datetime.fromisoformat(row["updated_at"]) >= since]
        records.sort(key=lambda row: (row["updated_at"], row["id"]))
        page, size = int(params.get("page", 1)), int(params.get("per_page", PAGE_SIZE))
        total_pages = -(-len(records) // size)
        body = {"data": records[(page - 1) * size : page * size], "page": page, "total_pages": total_pages}
        self._send(200, body)

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature fixed by base class
        pass


def record(kind: str, number: int) -> dict:
    moment = FIRST_UPDATE + timedelta(hours=number)
    if kind == "items":
        return {"id": number, "name": f"item {number}", "price": number * 2.5, "updated_at": moment.isoformat()}
    return {"id": number, "item_id": number % 4, "action": "viewed", "updated_at": moment.isoformat()}


def endpoint(name: str) -> dict:
    return {
        "name": name,
        "endpoint": {
            "path": name,
            "data_selector": "data",
            "params": {
                "per_page": PAGE_SIZE,
                "updated_since": {
                    "type": "incremental",
                    "cursor_path": "updated_at",
                    "initial_value": "1970-01-01T00:00:00+00:00",
                },
            },
        },
    }


class TestRestApiConnector(ConnectorAcceptanceTests):
    connector = "rest_api"
    package = "headwater"
    tables = {"items": {"primary_key": "id"}, "events": {"primary_key": "id"}}

    def serve(self, workdir: Path, data: dict[str, list]) -> dict:
        """Start the API on the given data for this test; return the connector settings that reach it."""
        data_file = workdir / "api.json"
        data_file.write_text(json.dumps(data))
        server = JsonApi(data_file)
        # A short poll interval keeps shutdown() (run after every test) quick.
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        self.add_cleanup(stop)
        return {
            "client": {
                "base_url": server.base_url,
                "auth": {"type": "bearer", "token": self.set_env(TOKEN_VARIABLE, TOKEN)},
                "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": "total_pages"},
            },
            "resources": [endpoint("items"), endpoint("events")],
        }

    def make_source(self, workdir: Path) -> dict:
        return self.serve(
            workdir,
            {"items": [record("items", n) for n in range(1, 8)], "events": [record("events", n) for n in range(1, 5)]},
        )

    def add_rows(self, workdir: Path) -> dict[str, int]:
        data_file = workdir / "api.json"
        data = json.loads(data_file.read_text())
        data["items"] += [record("items", n) for n in range(8, 12)]
        data["events"] += [record("events", 5)]
        data_file.write_text(json.dumps(data))
        return {"items": 4, "events": 1}

    def make_empty_source(self, workdir: Path) -> dict:
        return self.serve(workdir, {"items": [], "events": []})

    def expected_rows(self) -> dict[str, int]:
        return {"items": 7, "events": 4}
