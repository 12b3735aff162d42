"""A local stand-in for a Frankfurter-style exchange-rate API, served on 127.0.0.1 for tests.

It answers `GET /{start}..{end}` (end optional) with the working days it holds in that range (a start
on a day without rates begins at the working day before it), converts to the requested `base`, filters
by `symbols`, and can demand a bearer token. Tests add days to it
to simulate the API publishing new rates.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Rates against EUR on the first day; later days drift a little so every day differs.
EUR_RATES = {"USD": 1.0956, "GBP": 0.8651, "JPY": 156.33, "CHF": 0.9312}
RANGE = re.compile(r"^/(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})?$")


class FakeRatesApi:
    """The API's published days (date -> currency -> rate against EUR) and a server answering from them."""

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.days: dict[str, dict[str, float]] = {}
        self.requests: list[str] = []  # path and query of every request, for assertions
        self._server: ThreadingHTTPServer | None = None

    def publish(self, first: date, working_days: int) -> int:
        """Publish rates for the next working_days days from first (weekends skipped); returns rows added."""
        added, day = 0, first
        while working_days:
            if day.weekday() < 5:
                drift = 1 + 0.001 * len(self.days)
                self.days[day.isoformat()] = {code: round(rate * drift, 4) for code, rate in EUR_RATES.items()}
                added += len(EUR_RATES)
                working_days -= 1
            day += timedelta(days=1)
        return added

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the API first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeRatesApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                api.requests.append(self.path)
                status, body = api.answer(self.path, self.headers.get("Authorization"))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeRatesApi:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def answer(self, target: str, authorization: str | None) -> tuple[int, dict]:
        """Status and JSON body for one request, as the real API shapes them."""
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return 401, {"message": "invalid or missing API key"}
        parts = urlsplit(target)
        match = RANGE.match(parts.path)
        if not match:
            return 404, {"message": "not found"}
        start, end = match.group(1), match.group(2) or "9999-12-31"
        query = parse_qs(parts.query)
        base = query.get("base", ["EUR"])[0].upper()
        symbols = [s for s in query.get("symbols", [""])[0].upper().split(",") if s]
        if base != "EUR" and base not in EUR_RATES:
            return 404, {"message": "not found"}
        published = sorted(self.days)
        # Like the real API, a start without rates (weekend, holiday) is answered from the working day before it.
        earlier = [day for day in published if day < start]
        if start not in self.days and earlier:
            start = earlier[-1]
        days = {day: self.days[day] for day in published if start <= day <= end}
        rates = {day: _quoted(quotes, base, symbols) for day, quotes in days.items()}
        return 200, {
            "amount": 1.0,
            "base": base,
            "start_date": next(iter(days), start),
            "end_date": next(reversed(days), start),
            "rates": rates,
        }


def _quoted(eur_rates: dict[str, float], base: str, symbols: list[str]) -> dict[str, float]:
    """Rates of one day against `base`, converted through EUR like the real API does."""
    against_eur = {"EUR": 1.0, **eur_rates}
    divisor = against_eur[base]
    return {
        code: round(rate / divisor, 6)
        for code, rate in against_eur.items()
        if code != base and (not symbols or code in symbols)
    }
