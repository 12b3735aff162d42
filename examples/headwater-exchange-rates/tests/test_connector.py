"""The exchange_rates connector: Headwater's acceptance tests against a local API, plus the HTTP details."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext
from fake_rates_api import EUR_RATES, FakeRatesApi
from headwater_exchange_rates.source import exchange_rates

from headwater.testing import ConnectorAcceptanceTests

FIRST_DAY = date(2024, 1, 1)  # a Monday
INITIAL_DAYS = 5
API_KEY = "test-key"


class TestExchangeRates(ConnectorAcceptanceTests):
    connector = "exchange_rates"
    package = "headwater-exchange-rates"
    tables = {"rates": {"primary_key": ["date", "currency"]}}

    def _api(self, days: int) -> FakeRatesApi:
        # One API per test; the key travels as a ${NAME} reference, as a secret must in headwater.yaml.
        self.api = FakeRatesApi(api_key=API_KEY).start()
        self.add_cleanup(self.api.stop)
        self.api.publish(FIRST_DAY, days)
        return self.api

    def _settings(self) -> dict:
        return {
            "base_url": self.api.url,
            "start_date": FIRST_DAY,
            "api_key": self.set_env("EXCHANGE_RATES_API_KEY", API_KEY),
        }

    def make_source(self, workdir: Path) -> dict:
        self._api(INITIAL_DAYS)
        return self._settings()

    def add_rows(self, workdir: Path) -> dict[str, int]:
        latest = date.fromisoformat(max(self.api.days))
        return {"rates": self.api.publish(latest + timedelta(days=1), 2)}

    def make_empty_source(self, workdir: Path) -> dict:
        self._api(0)
        return self._settings()

    def expected_rows(self) -> dict[str, int]:
        return {"rates": INITIAL_DAYS * len(EUR_RATES)}


def read_rows(**settings) -> list[dict]:
    """The rows the source yields, read without a pipeline and without any earlier run's cursor."""
    # Outside a pipeline dlt reads incremental state from the active pipeline, which the acceptance
    # tests above leave behind: deactivate it so that these tests start from start_date.
    Container()[PipelineContext].deactivate()
    return list(exchange_rates(**settings))


def test_rows_per_day_and_currency_with_bearer_key_and_symbols():
    with FakeRatesApi(api_key=API_KEY) as api:
        api.publish(FIRST_DAY, 2)
        rows = read_rows(
            base_url=api.url, start_date=FIRST_DAY, base="usd", symbols=["eur", "gbp"], api_key=API_KEY
        )
    assert api.requests == ["/2024-01-01..?base=USD&symbols=EUR%2CGBP"]
    assert [(row["date"], row["currency"]) for row in rows] == [
        ("2024-01-01", "EUR"), ("2024-01-01", "GBP"), ("2024-01-02", "EUR"), ("2024-01-02", "GBP"),
    ]
    assert {row["base"] for row in rows} == {"USD"}
    assert rows[0]["rate"] == pytest.approx(1 / EUR_RATES["USD"], rel=1e-4)


def test_a_wrong_key_fails_with_the_http_status():
    with FakeRatesApi(api_key=API_KEY) as api:
        api.publish(FIRST_DAY, 1)
        with pytest.raises(Exception) as raised:
            read_rows(base_url=api.url, start_date=FIRST_DAY, api_key="wrong")
    assert "401" in str(raised.value)


def test_days_before_start_date_are_dropped():
    # The real API answers a weekend start with the preceding Friday; that day is not asked for.
    with FakeRatesApi() as api:
        api.publish(date(2024, 1, 5), 2)  # Friday and Monday
        rows = read_rows(base_url=api.url, start_date=date(2024, 1, 6), symbols=["USD"])
    assert api.requests == ["/2024-01-06..?base=EUR&symbols=USD"]
    assert [row["date"] for row in rows] == ["2024-01-08"]
