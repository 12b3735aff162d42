"""Headwater plugin `exchange_rates`: daily currency exchange rates from an HTTP JSON API.

Headwater imports this module through the `headwater` entry point and calls register_connectors.
"""

import pluggy

from headwater_exchange_rates.source import exchange_rates

hookimpl = pluggy.HookimplMarker("headwater")


@hookimpl
def register_connectors(register):
    register(
        "exchange_rates",
        exchange_rates,
        description="Daily currency exchange rates from a Frankfurter-style HTTP JSON API, incremental by date",
        docs_url="https://www.frankfurter.app/docs/",
        # api_key is optional, so it has no dlt.secrets.value default; listing it here still makes
        # headwater.yaml accept it only as a ${NAME} reference.
        secrets=["api_key"],
        primary_keys={"rates": ["date", "currency"]},
        cursors={"rates": "date"},
    )
