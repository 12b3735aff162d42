"""Daily exchange rates from an HTTP JSON API in the format of Frankfurter (https://www.frankfurter.app).

`GET {base_url}/{start}..?base=EUR&symbols=USD,GBP` answers every working day from `start` on:

    {"base": "EUR", "start_date": "2024-01-02", "end_date": "2024-01-05",
     "rates": {"2024-01-02": {"USD": 1.0956, "GBP": 0.8651}, ...}}

Each (date, currency) becomes one row. The resource is incremental by date: a run asks only for
the days from the last loaded day on, and dlt keeps that day with the data in the destination.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dlt
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

DEFAULT_BASE_URL = "https://api.frankfurter.app"
# Without start_date, the first run takes this many days of history.
DEFAULT_HISTORY_DAYS = 30


@dlt.source(name="exchange_rates")
def exchange_rates(
    base_url: str = DEFAULT_BASE_URL,
    start_date: date | None = None,
    base: str = "EUR",
    symbols: list[str] | None = None,
    api_key: str | None = None,
):
    """Daily currency exchange rates from a Frankfurter-style HTTP JSON API, incremental by date.

    Args:
        base_url: Root URL of the API (a public Frankfurter, a self-hosted one, or a compatible gateway).
        start_date: First day the first run loads; later runs continue from the last loaded day. Default: 30 days ago.
        base: Currency the rates are quoted against, e.g. EUR.
        symbols: Currencies to load, e.g. [USD, GBP]; every currency the API has when empty.
        api_key: Sent as a bearer token, for gateways that require one; give it as a ${NAME} reference.
    """
    client = RESTClient(
        base_url=base_url,
        headers={"Accept": "application/json"},
        auth=BearerTokenAuth(api_key) if api_key else None,
    )
    first_day = (start_date or date.today() - timedelta(days=DEFAULT_HISTORY_DAYS)).isoformat()
    # The initial value also drops a day before start_date that the API may add (a weekend start
    # is answered from the preceding working day).
    since = dlt.sources.incremental("date", initial_value=first_day)
    return rates(client, base.upper(), [symbol.upper() for symbol in symbols or []], first_day, day=since)


@dlt.resource(
    primary_key=("date", "currency"),
    write_disposition="merge",
    columns={"date": {"data_type": "date"}, "rate": {"data_type": "double"}},
)
def rates(
    client: RESTClient,
    base: str,
    symbols: list[str],
    first_day: str,
    # dlt copies this default for every run (so ruff's B008 does not apply) and stores its last value.
    day=dlt.sources.incremental("date"),  # noqa: B008
) -> Iterator[list[dict[str, Any]]]:
    """One row per day and currency. Days are ISO strings so that the cursor compares the same way in every run."""
    # The last loaded day is asked for again: the API may have revised it, and merge on the key keeps one row.
    # first_day is the fallback for a cursor given in headwater.yaml, which replaces `day` without an initial value.
    since = day.last_value or first_day
    params = {"base": base}
    if symbols:
        params["symbols"] = ",".join(symbols)
    response = client.get(f"{since}..", params=params)
    response.raise_for_status()
    body = response.json()
    quoted_against = body.get("base", base)
    for day_text, quotes in sorted(body.get("rates", {}).items()):
        yield [
            {"date": day_text, "base": quoted_against, "currency": currency, "rate": float(rate)}
            for currency, rate in sorted(quotes.items())
        ]
