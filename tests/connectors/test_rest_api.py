"""The built-in rest_api connector against a real HTTP server on 127.0.0.1, loaded through Headwater into Postgres.

Every test writes a headwater.yaml, loads it with Headwater's own config and loading path,
and asserts both what landed in Postgres and what the API server received.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from itertools import pairwise
from urllib.parse import quote, quote_plus

import pytest
import yaml

from headwater.load.pipeline import SourceLoad, load_source
from headwater.load.reload import BackfillOutcome, plan_reload
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ConfigError, load_project
from tests.conftest import query
from tests.connectors.rest_api_server import PAGINATION_STYLES, ApiServer, Received, Reply, paginated

PAGE_SIZE = 3
CUSTOMERS = [
    {"id": number, "name": f"customer {number}", "updated_at": f"2024-01-0{number}T00:00:00+00:00"}
    for number in range(1, 8)
]  # 7 rows: three pages of 3, 3 and 1


pytestmark = pytest.mark.usefixtures("fast_retries")


def write_project(tmp_path, settings: dict, tables: dict | None = None):
    """A headwater.yaml with one rest_api source named `api`, and the project Headwater reads from it."""
    source = {"connector": "rest_api", "settings": settings}
    if tables:
        source["tables"] = tables
    path = tmp_path / "headwater.yaml"
    path.write_text(yaml.safe_dump({"sources": {"api": source}}, sort_keys=False))
    return load_project(path, connector_registry())


def load(tmp_path, database_url: str, settings: dict, tables: dict | None = None) -> SourceLoad:
    project = write_project(tmp_path, settings, tables)
    connector = connector_registry().get("rest_api")
    return load_source(project, project.source("api"), connector, PostgresAddress.from_url(database_url))


def customers_settings(api: ApiServer, **client) -> dict:
    return {
        "client": {"base_url": api.url, **client},
        "resources": [{"name": "customers", "endpoint": {"path": "customers", "data_selector": "data"}}],
    }


def loaded_customers(database_url: str) -> list[tuple]:
    return query(database_url, "SELECT id, name FROM raw_api.customers ORDER BY id")


# Pagination -------------------------------------------------------------------------------------------------------

PAGINATORS = {
    "cursor": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
    "json_link": {"type": "json_link", "next_url_path": "next"},
    "header_link": {"type": "header_link"},
    "offset": {"type": "offset", "limit": PAGE_SIZE, "total_path": "total"},
    "page_number": {"type": "page_number", "base_page": 1, "total_path": "total_pages"},
}
# The query parameter that moves through the pages in each style, and its value on each request.
PAGE_PARAMS = {
    "cursor": ("cursor", [None, "3", "6"]),
    "json_link": ("start", [None, "3", "6"]),
    "header_link": ("start", [None, "3", "6"]),
    "offset": ("offset", ["0", "3", "6"]),
    "page_number": ("page", ["1", "2", "3"]),
}


@pytest.mark.parametrize("style", PAGINATION_STYLES)
def test_every_page_is_loaded_in_each_pagination_style(style, api, tmp_path, database_url):
    api.get("/customers")(lambda request: paginated(CUSTOMERS, style, request, api.url, PAGE_SIZE))

    result = load(
        tmp_path,
        database_url,
        customers_settings(api, paginator=PAGINATORS[style]),
        {"customers": {"primary_key": "id"}},
    )

    assert result.ok, result.error
    assert loaded_customers(database_url) == [(row["id"], row["name"]) for row in CUSTOMERS]
    param, values = PAGE_PARAMS[style]
    assert [request.param(param) for request in api.requests_to("/customers")] == values


# Auth -------------------------------------------------------------------------------------------------------------

SECRET = "s3cr3t-" + secrets.token_hex(4)
AUTH = {
    "bearer": {"type": "bearer", "token": "${API_SECRET}"},
    "api_key_header": {"type": "api_key", "name": "X-API-Key", "api_key": "${API_SECRET}", "location": "header"},
    "api_key_query": {"type": "api_key", "name": "api_key", "api_key": "${API_SECRET}", "location": "query"},
    "http_basic": {"type": "http_basic", "username": "loader", "password": "${API_SECRET}"},
    "oauth2_client_credentials": {
        "type": "oauth2_client_credentials",
        "access_token_url": "{url}/oauth/token",
        "client_id": "headwater",
        "client_secret": "${API_SECRET}",
    },
}
BASIC = "Basic " + base64.b64encode(f"loader:{SECRET}".encode()).decode()


class TokenEndpoint:
    """An OAuth2 client-credentials token endpoint: a fresh access token per grant, only for the right client."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self, request: Received) -> Reply:
        form = request.form
        if form != {"grant_type": "client_credentials", "client_id": "headwater", "client_secret": SECRET}:
            return Reply(401, {"error": "invalid_client"})
        self.issued.append(f"issued-{secrets.token_hex(8)}")
        return Reply(body={"access_token": self.issued[-1], "token_type": "Bearer", "expires_in": 3600})


def authorized(kind: str, request: Received, tokens: TokenEndpoint) -> bool:
    """Whether request carries the credential the API expects for this auth kind."""
    headers = request.headers
    if kind == "bearer":
        return headers.get("authorization") == f"Bearer {SECRET}"
    if kind == "api_key_header":
        return headers.get("x-api-key") == SECRET
    if kind == "api_key_query":
        return request.param("api_key") == SECRET
    if kind == "http_basic":
        return headers.get("authorization") == BASIC
    return bool(tokens.issued) and headers.get("authorization") == f"Bearer {tokens.issued[-1]}"


def serve_authenticated_customers(api: ApiServer, kind: str) -> TokenEndpoint:
    tokens = TokenEndpoint()
    api.route("POST", "/oauth/token", tokens)

    @api.get("/customers")
    def customers(request: Received) -> Reply:
        if not authorized(kind, request, tokens):
            return Reply(401, {"error": "unauthorized"})
        return paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE)

    return tokens


def auth_settings(api: ApiServer, kind: str) -> dict:
    auth = {key: value.replace("{url}", api.url) for key, value in AUTH[kind].items()}
    return customers_settings(api, auth=auth, paginator=PAGINATORS["cursor"])


@pytest.mark.parametrize("kind", AUTH)
def test_each_auth_kind_reaches_the_api_with_the_secret_from_the_environment(
    kind, api, tmp_path, database_url, monkeypatch
):
    monkeypatch.setenv("API_SECRET", SECRET)
    tokens = serve_authenticated_customers(api, kind)

    result = load(tmp_path, database_url, auth_settings(api, kind), {"customers": {"primary_key": "id"}})

    assert result.ok, result.error
    assert len(loaded_customers(database_url)) == len(CUSTOMERS)
    pages = api.requests_to("/customers")
    assert len(pages) == 3 and all(authorized(kind, request, tokens) for request in pages)
    if kind == "oauth2_client_credentials":  # one grant, reused for every page
        assert len(api.requests_to("/oauth/token")) == 1 and len(tokens.issued) == 1


@pytest.mark.parametrize("kind", ["bearer", "api_key_query"])
def test_a_wrong_secret_fails_the_load_with_the_status_and_endpoint(kind, api, tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("API_SECRET", "not-the-secret")
    serve_authenticated_customers(api, kind)

    result = load(tmp_path, database_url, auth_settings(api, kind))

    assert not result.ok
    assert "401 Client Error" in result.error and f"{api.url}/customers" in result.error
    assert "not-the-secret" not in result.error  # also redacted from the URL when sent as a query param
    assert len(api.requests_to("/customers")) == 1  # a 401 is not retried


def test_an_api_key_under_a_name_dlt_does_not_know_is_masked_in_an_error_quoting_it(api, tmp_path, database_url,
                                                                                       monkeypatch):
    key = f"k+/{secrets.token_hex(6)}@="  # characters a URL encodes, so the encoded form is the one to find
    monkeypatch.setenv("API_SECRET", key)
    api.get("/customers")(lambda request: Reply(500, {"error": f"upstream failed for access_key={key}"}))
    auth = {"type": "api_key", "name": "access_key", "api_key": "${API_SECRET}", "location": "query"}

    result = load(tmp_path, database_url, customers_settings(api, auth=auth))

    assert not result.ok
    assert api.requests_to("/customers")[0].param("access_key") == key  # it was sent, encoded
    assert f"500 Server Error: Internal Server Error for url: {api.url}/customers?access_key=***" in result.error
    for form in (key, quote(key, safe=""), quote_plus(key)):
        assert form not in result.error


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": "literal"},
        {"type": "api_key", "api_key": "literal"},
        {"type": "http_basic", "username": "loader", "password": "literal"},
        {"type": "oauth2_client_credentials", "access_token_url": "x", "client_id": "c", "client_secret": "literal"},
    ],
    ids=lambda auth: auth["type"],
)
def test_a_secret_written_in_the_config_is_rejected(auth, tmp_path):
    settings = {"client": {"base_url": "http://127.0.0.1:9", "auth": auth}, "resources": ["customers"]}

    with pytest.raises(ConfigError) as error:
        write_project(tmp_path, settings)

    secret_key = next(key for key, value in auth.items() if value == "literal")
    assert f"sources.api.settings.client.auth.{secret_key}: '{secret_key}' holds a secret" in str(error.value)


# Incremental parameter --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_state", ["kept", "lost"])
def test_a_second_run_asks_only_for_new_data_and_loads_only_new_and_changed_rows(
    local_state, api, tmp_path, database_url
):
    orders = {
        number: {"order_id": number, "amount": 10 * number, "updated_at": f"2024-02-0{number}T00:00:00+00:00"}
        for number in range(1, 5)
    }

    @api.get("/orders")
    def changed_orders(request: Received) -> Reply:  # like most APIs: updated_since is inclusive
        since = request.param("updated_since") or ""
        rows = sorted((row for row in orders.values() if row["updated_at"] >= since), key=lambda r: r["updated_at"])
        return Reply(body={"data": rows})

    settings = {
        "client": {"base_url": api.url, "paginator": "single_page"},
        "resources": [
            {
                "name": "orders",
                "endpoint": {
                    "path": "orders",
                    "data_selector": "data",
                    "params": {
                        "updated_since": {
                            "type": "incremental",
                            "cursor_path": "updated_at",
                            "initial_value": "1970-01-01T00:00:00+00:00",
                        }
                    },
                },
            }
        ],
    }
    tables = {"orders": {"primary_key": "order_id"}}

    first = load(tmp_path, database_url, settings, tables)
    if local_state == "lost":  # a fresh machine: the cursor comes back from the state dlt keeps in Postgres
        shutil.rmtree(tmp_path / ".headwater")
    orders[2] = {"order_id": 2, "amount": 25, "updated_at": "2024-02-06T00:00:00+00:00"}  # changed
    orders[5] = {"order_id": 5, "amount": 50, "updated_at": "2024-02-05T00:00:00+00:00"}  # new
    second = load(tmp_path, database_url, settings, tables)

    assert first.ok and second.ok, first.error or second.error
    assert [request.param("updated_since") for request in api.requests_to("/orders")] == [
        "1970-01-01T00:00:00+00:00",
        "2024-02-04T00:00:00+00:00",  # the highest updated_at of the first run
    ]
    assert first.rows == 4 and second.rows == 2  # order 4, sent again at the boundary, is not loaded twice
    rows = query(database_url, "SELECT order_id, amount, _dlt_load_id FROM raw_api.orders ORDER BY order_id")
    assert [(order_id, amount) for order_id, amount, _ in rows] == [(1, 10), (2, 25), (3, 30), (4, 40), (5, 50)]
    load_ids = {order_id: load_id for order_id, _, load_id in rows}
    assert {load_ids[1], load_ids[3], load_ids[4]} == set(first.load_ids)
    assert {load_ids[2], load_ids[5]} == set(second.load_ids)


def test_a_backfill_window_does_not_reach_an_incremental_param_and_the_load_says_so(api, tmp_path, database_url):
    rows = [{"order_id": n, "updated_at": f"2024-02-0{n}T00:00:00+00:00"} for n in range(1, 5)]
    api.get("/orders")(lambda request: Reply(body={"data": rows}))
    settings = {
        "client": {"base_url": api.url, "paginator": "single_page"},
        "resources": [{"name": "orders", "endpoint": {"path": "orders", "data_selector": "data", "params": {
            "updated_since": {"type": "incremental", "cursor_path": "updated_at", "initial_value": "2024-01-01"}}}}],
    }
    project = write_project(tmp_path, settings, {"orders": {"primary_key": "order_id"}})
    window = plan_reload(project, since="2024-02-02", until="2024-02-03")

    result = load_source(project, project.source("api"), connector_registry().get("rest_api"),
                         PostgresAddress.from_url(database_url), window)

    assert result.ok, result.error
    [orders] = result.tables
    assert (orders.table, orders.rows) == ("orders", 4)  # loaded as usual: from the param's initial_value
    assert orders.backfill == BackfillOutcome(False, "its cursor is a parameter in the source's settings "
                                                     "(`type: incremental`), which --since/--until do not reach; "
                                                     "loaded as usual")
    assert [request.param("updated_since") for request in api.requests_to("/orders")] == ["2024-01-01"]


# Parent and child endpoints ---------------------------------------------------------------------------------------


def test_child_endpoint_is_called_per_parent_row_and_lands_in_its_own_table_with_the_parent_key(
    api, tmp_path, database_url
):
    api.get("/customers")(lambda request: paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE))

    @api.get("/customers/{customer_id}/orders")
    def orders_of(request: Received, customer_id: str) -> Reply:  # customer n has n % 3 orders
        number = int(customer_id)
        return Reply(body=[{"order_id": number * 100 + line, "line": line} for line in range(number % 3)])

    settings = {
        "client": {"base_url": api.url, "paginator": PAGINATORS["cursor"]},
        "resources": [
            {"name": "customers", "endpoint": {"path": "customers", "data_selector": "data"}},
            {
                "name": "orders",
                "endpoint": {
                    "path": "customers/{customer_id}/orders",
                    "paginator": "single_page",
                    "params": {"customer_id": {"type": "resolve", "resource": "customers", "field": "id"}},
                },
                "include_from_parent": ["id"],
            },
        ],
    }
    result = load(
        tmp_path, database_url, settings, {"customers": {"primary_key": "id"}, "orders": {"primary_key": "order_id"}}
    )

    assert result.ok, result.error
    assert {(table.table, table.rows) for table in result.tables} == {("customers", 7), ("orders", 7)}
    assert len(loaded_customers(database_url)) == 7
    orders = query(database_url, "SELECT order_id, _customers_id FROM raw_api.orders ORDER BY order_id")
    expected = [(n * 100 + line, n) for n in range(1, 8) for line in range(n % 3)]
    assert orders == expected
    asked = [request.path for request in api.received if request.path.endswith("/orders")]
    assert sorted(asked) == [f"/customers/{n}/orders" for n in range(1, 8)]  # dlt interleaves parent pages


# Retries ----------------------------------------------------------------------------------------------------------


def test_rate_limits_and_server_errors_are_retried_and_the_load_succeeds(api, tmp_path, database_url):
    api.get("/customers")(lambda request: paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE))
    api.script("/customers", Reply(429, {"error": "slow down"}, {"Retry-After": "1"}), Reply(503))

    result = load(tmp_path, database_url, customers_settings(api, paginator=PAGINATORS["cursor"]))

    assert result.ok, result.error
    assert len(loaded_customers(database_url)) == 7
    first_page = [request for request in api.requests_to("/customers") if request.param("cursor") is None]
    assert len(first_page) == 3  # 429, 503, 200
    after_rate_limit, after_server_error = (b.at - a.at for a, b in pairwise(first_page))
    assert after_rate_limit >= 0.9  # waited as long as Retry-After asked
    assert after_server_error < 0.5  # exponential backoff, with the tests' small factor


def test_an_endpoint_that_keeps_failing_fails_the_load_naming_endpoint_and_status(api, tmp_path, database_url):
    api.get("/customers")(lambda request: Reply(503, {"error": "down for maintenance"}))

    result = load(tmp_path, database_url, customers_settings(api))

    assert not result.ok
    assert "503 Server Error" in result.error and f"{api.url}/customers" in result.error
    assert len(api.requests_to("/customers")) == 3  # RUNTIME__REQUEST_MAX_ATTEMPTS
    assert query(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw_api'") == [(0,)]


def test_a_source_can_set_its_own_retry_policy(api, tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("API_SECRET", SECRET)
    tokens = serve_authenticated_customers(api, "oauth2_client_credentials")
    api.script("/oauth/token", *[Reply(503)] * 4)  # the token endpoint follows the source's policy too
    api.script("/customers", *[Reply(502)] * 4)
    settings = auth_settings(api, "oauth2_client_credentials")
    settings["retries"] = {"max_attempts": 5, "backoff_factor": 0, "timeout": 5}

    result = load(tmp_path, database_url, settings)

    assert result.ok, result.error  # the process-wide policy (3 attempts) would have given up
    assert len(api.requests_to("/oauth/token")) == 5 and len(tokens.issued) == 1
    assert len(api.requests_to("/customers")) == 4 + 3


@pytest.mark.parametrize(
    "retries, message",
    [
        ({"max_attemps": 3}, "retries.max_attemps: unknown key; did you mean 'max_attempts'? "
                             "allowed: backoff_factor, max_attempts, max_delay, timeout"),
        ({"max_attempts": 0}, "retries.max_attempts: input should be greater than or equal to 1, got int 0"),
        ({"backoff_factor": "fast"}, "retries.backoff_factor: expected number, got str 'fast'"),
    ],
)
def test_an_invalid_retry_policy_is_rejected_with_the_config(retries, message, tmp_path):
    settings = {"client": {"base_url": "http://127.0.0.1:9"}, "resources": ["customers"], "retries": retries}

    with pytest.raises(ConfigError) as error:
        write_project(tmp_path, settings)

    assert f"sources.api.settings.{message}" in str(error.value)


# Settings types ---------------------------------------------------------------------------------------------------


def test_the_settings_types_take_every_key_of_dlts_rest_api_config_that_yaml_can_hold():
    from typing import get_args

    from dlt.sources.rest_api import typing as dlt_config
    from dlt.sources.rest_api.typing import AuthType
    from typing_extensions import get_type_hints

    from connectors.rest_api import settings as ours

    objects = {"session", "processing_steps", "convert"}  # Python objects and functions: not in a YAML file
    pairs = [
        (dlt_config.ClientConfig, ours.Client), (dlt_config.EndpointResource, ours.Resource),
        (dlt_config.EndpointResourceBase, ours.ResourceDefaults), (dlt_config.Endpoint, ours.Endpoint),
        (dlt_config.IncrementalConfig, ours.Incremental), (dlt_config.IncrementalParamConfig, ours.IncrementalParam),
        (dlt_config.ResolveParamConfig, ours.ResolveParam), (dlt_config.ResponseActionDict, ours.ResponseAction),
        (dlt_config.BearerTokenAuthConfig, ours.BearerAuth), (dlt_config.ApiKeyAuthConfig, ours.ApiKeyAuth),
        (dlt_config.HttpBasicAuthConfig, ours.HttpBasicAuth),
        (dlt_config.OAuth2ClientCredentialsConfig, ours.OAuth2ClientCredentials),
        (dlt_config.JSONResponseCursorPaginatorConfig, ours.CursorPaginator),
        (dlt_config.JSONLinkPaginatorConfig, ours.JsonLinkPaginator),
        (dlt_config.HeaderLinkPaginatorConfig, ours.HeaderLinkPaginator),
        (dlt_config.HeaderCursorPaginatorConfig, ours.HeaderCursorPaginator),
        (dlt_config.OffsetPaginatorConfig, ours.OffsetPaginator),
        (dlt_config.PageNumberPaginatorConfig, ours.PageNumberPaginator),
    ]
    for theirs, mine in pairs:
        assert set(get_type_hints(theirs)) - objects == set(get_type_hints(mine)), mine.__name__
    auth_tags = [get_args(member)[1].tag for member in get_args(get_args(ours.Auth)[0])]
    assert auth_tags == list(get_args(AuthType))
