"""Pages a rest_api source cannot trust, from a real HTTP server on 127.0.0.1: bodies that are not JSON, loops.

A page that is not JSON is retried like a 5xx; one that stays so fails the source with the request,
page, status and start of the body, secrets masked. Pagination that leads back to a page already
fetched (a repeated cursor or next link, or the same rows again) stops the source before it asks
again, and nothing it extracted is loaded.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import yaml

from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE
from headwater.project.config import load_project
from tests.conftest import query
from tests.connectors.rest_api_server import Received, Reply, paginated
from tests.connectors.test_rest_api import (
    CUSTOMERS,
    PAGE_SIZE,
    PAGINATORS,
    SECRET,
    customers_settings,
    load,
    loaded_customers,
)

pytestmark = pytest.mark.usefixtures("fast_retries")

NOT_JSON = {
    "truncated": Reply(raw=b'{"data": [{"id": 4, "name": "custo'),
    "html": Reply(raw=b"<html><body><h1>Bad Gateway</h1></body></html>", headers={"Content-Type": "text/html"}),
    "empty": Reply(raw=b""),
}


def no_raw_tables(database_url: str) -> bool:
    return query(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw_api'") == [(0,)]


# Pages that are not JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", NOT_JSON)
def test_a_page_that_is_not_json_is_asked_for_again_and_every_row_loads_once(body, api, tmp_path, database_url):
    second_page = []

    @api.get("/customers")
    def customers(request: Received) -> Reply:
        if request.param("cursor") == "3":
            second_page.append(request)
            if len(second_page) == 1:
                return NOT_JSON[body]
        return paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE)

    result = load(tmp_path, database_url, customers_settings(api, paginator=PAGINATORS["cursor"]))

    assert result.ok, result.error
    assert loaded_customers(database_url) == [(row["id"], row["name"]) for row in CUSTOMERS]
    assert [request.param("cursor") for request in api.requests_to("/customers")] == [None, "3", "3", "6"]


@pytest.mark.parametrize("ahead", [False, True], ids=["file", "copied-ahead"])
def test_a_page_that_stays_unreadable_fails_the_source_naming_request_page_status_and_body(
    ahead, api, tmp_path, database_url, monkeypatch
):
    # copied-ahead: the pages before the bad one are COPY'd during extract (headwater.postgres.copy_ahead) into a
    # table created for them; the failed load rolls them back and drops that table, as if it never started
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if ahead else "1000000")
    monkeypatch.setenv("API_SECRET", SECRET)
    page = b"<html>\n<body><h1>Bad Gateway</h1><p>upstream refused key " + SECRET.encode() + b"</p></body></html>"

    @api.get("/customers")
    def customers(request: Received) -> Reply:
        if request.param("cursor") == "3":
            return Reply(raw=page, headers={"Content-Type": "text/html"})
        return paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE)

    auth = {"type": "api_key", "name": "key_for_crm", "api_key": "${API_SECRET}", "location": "query"}
    settings = customers_settings(api, paginator=PAGINATORS["cursor"], auth=auth)
    settings["retries"] = {"max_attempts": 4, "backoff_factor": 0.1}  # the source's own policy

    result = load(tmp_path, database_url, settings)

    assert not result.ok
    assert result.error == (
        f"UnreadablePage: page 2 (cursor '3') of GET {api.url}/customers?cursor=3&key_for_crm=*** answered "
        f"200 OK (text/html, {len(page)} bytes) with a body that is not JSON (Expecting value: line 1 column 1 "
        "(char 0)): it starts '<html> <body><h1>Bad Gateway</h1><p>upstream refused key ***</p></body></html>'; "
        "nothing of this extract is loaded. 4 answer(s) to this page were not JSON, asked for again as the "
        "source's `retries` (or dlt's RUNTIME__REQUEST_* settings) allow. If the API sends such pages now and "
        "then, allow more attempts; if always, check the endpoint's path and auth"
    )
    assert SECRET not in result.error
    attempts = [request for request in api.requests_to("/customers") if request.param("cursor") == "3"]
    assert len(attempts) == 4  # the source's max_attempts (the process-wide policy allows 3)
    waits = [later.at - earlier.at for earlier, later in pairwise(attempts)]
    for wait, backoff in zip(waits, [0.1, 0.2, 0.4], strict=True):  # the source's backoff_factor * 2^(n-1)
        assert backoff - 0.02 <= wait < backoff + 0.5, waits
    assert no_raw_tables(database_url)


@pytest.mark.parametrize("body, detail", [
    ("truncated", "Unterminated string starting at: line 1 column 29 (char 28)): it starts "
                  """'{"data": [{"id": 4, "name": "custo'"""),
    ("empty", "Expecting value: line 1 column 1 (char 0)): the body is empty"),
])
def test_the_error_of_an_unreadable_page_says_how_its_body_breaks(body, detail, api, tmp_path, database_url):
    api.get("/customers")(lambda request: NOT_JSON[body])

    result = load(tmp_path, database_url, customers_settings(api, paginator=PAGINATORS["cursor"]))

    assert not result.ok
    assert result.error.startswith(f"UnreadablePage: page 1 of GET {api.url}/customers answered 200 OK "
                                   f"(application/json, {len(NOT_JSON[body].raw)} bytes) with a body that is not "
                                   f"JSON ({detail}; nothing of this extract is loaded. 3 answer(s) to this page "
                                   "were not JSON")
    assert len(api.requests_to("/customers")) == 3  # RUNTIME__REQUEST_MAX_ATTEMPTS


@pytest.mark.parametrize("ignored", [False, True])
def test_no_content_is_not_asked_for_again_and_a_response_action_can_end_the_walk_on_it(
    ignored, api, tmp_path, database_url
):
    @api.get("/customers")
    def customers(request: Received) -> Reply:
        return Reply(204) if request.param("cursor") == "3" else paginated(CUSTOMERS, "cursor", request, api.url,
                                                                             PAGE_SIZE)

    settings = customers_settings(api, paginator=PAGINATORS["cursor"])
    if ignored:
        settings["resources"][0]["endpoint"]["response_actions"] = [{"status_code": 204, "action": "ignore"}]

    result = load(tmp_path, database_url, settings)

    assert len(api.requests_to("/customers")) == 2
    if ignored:
        assert result.ok, result.error
        assert len(loaded_customers(database_url)) == PAGE_SIZE
    else:
        assert result.error.startswith(f"UnreadablePage: page 2 (cursor '3') of GET {api.url}/customers?cursor=3 "
                                       "answered 204 No Content (application/json, 0 bytes) with a body that is not "
                                       "JSON (Expecting value: line 1 column 1 (char 0)): the body is empty; nothing "
                                       "of this extract is loaded. No Content is not asked for again; if the "
                                       "endpoint has nothing to send, add the response action "
                                       "`{status_code: 204, action: ignore}`")


def test_a_child_endpoint_for_one_entity_asks_again_for_a_page_that_is_not_json(api, tmp_path, database_url):
    api.get("/customers")(lambda request: paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE))
    api.get("/customers/{customer_id}")(lambda request, customer_id: Reply(body=CUSTOMERS[int(customer_id) - 1]))
    api.script("/customers/4", NOT_JSON["html"])
    settings = {  # `customers/{customer_id}` is one entity: dlt reads it as a single page, whatever the client's
        "client": {"base_url": api.url, "paginator": PAGINATORS["cursor"]},
        "resources": [
            {"name": "customers", "endpoint": {"path": "customers", "data_selector": "data"}},
            {"name": "details", "endpoint": {"path": "customers/{customer_id}", "params": {
                "customer_id": {"type": "resolve", "resource": "customers", "field": "id"}}}},
        ],
    }

    result = load(tmp_path, database_url, settings)

    assert result.ok, result.error
    assert query(database_url, "SELECT id, name FROM raw_api.details ORDER BY id") == loaded_customers(database_url)
    assert len(query(database_url, "SELECT id FROM raw_api.details")) == len(CUSTOMERS)
    assert len(api.requests_to("/customers/4")) == 2


# Pagination loops -------------------------------------------------------------------------------------------------


def serve_looping(api, style: str) -> None:
    """Customers in `style`, except that the API's pagination goes wrong on the second page."""

    @api.get("/customers")
    def customers(request: Received) -> Reply:
        reply = paginated(CUSTOMERS, "cursor" if style == "header_cursor" else style, request, api.url, PAGE_SIZE)
        second = request.param("cursor") == "3" or request.param("start") == "3"
        if style == "cursor" and second:
            reply.body["next_cursor"] = "3"  # the cursor it was asked with
        elif style == "header_cursor":
            cursor = reply.body.pop("next_cursor")
            reply.headers["X-Next-Cursor"] = "3" if second else cursor
        elif style == "json_link" and second:
            reply.body["next"] = f"{api.url}/customers"  # back to the first page
        elif style == "header_link" and second:
            reply.headers["Link"] = f'<{api.url}/customers?start=3>; rel="next"'  # itself
        return reply

    @api.get("/ignoring")
    def ignoring(request: Received) -> Reply:  # offset and page number: the parameter makes no difference
        return Reply(body={"data": CUSTOMERS[:PAGE_SIZE], "total": len(CUSTOMERS), "total_pages": 3})


LOOPS = {
    "cursor": (PAGINATORS["cursor"], "/customers",
               "page 2 (cursor '3') of GET {url}/customers?cursor=3 gives the next cursor '3', "
               "which page 2 was already fetched with"),
    "header_cursor": ({"type": "header_cursor", "cursor_key": "X-Next-Cursor"}, "/customers",
                      "page 2 (cursor '3') of GET {url}/customers?cursor=3 gives the next cursor '3', "
                      "which page 2 was already fetched with"),
    "json_link": (PAGINATORS["json_link"], "/customers",
                  "page 2 of GET {url}/customers?start=3 links to {url}/customers as the next page: that is page 1"),
    "header_link": (PAGINATORS["header_link"], "/customers",
                    "page 2 of GET {url}/customers?start=3 links to {url}/customers?start=3 as the next page: "
                    "that is page 2"),
    "detected json_link": ("auto", "/customers",
                           "page 2 of GET {url}/customers?start=3 links to {url}/customers as the next page: "
                           "that is page 1"),
    "offset": (PAGINATORS["offset"], "/ignoring",
               "page 2 (`offset`=3) of GET {url}/ignoring?offset=3&limit=3 holds the same 3 rows as page 1: "
               "the API seems to ignore `offset`, or to repeat its last page past the end"),
    "page_number": (PAGINATORS["page_number"], "/ignoring",
                    "page 2 (`page`=2) of GET {url}/ignoring?page=2 holds the same 3 rows as page 1: "
                    "the API seems to ignore `page`, or to repeat its last page past the end"),
}
STYLE_SERVED = {"detected json_link": "json_link"}


@pytest.mark.parametrize("style", LOOPS)
def test_pagination_that_leads_back_to_a_page_stops_the_source_before_it_asks_again(
    style, api, tmp_path, database_url
):
    paginator, path, message = LOOPS[style]
    serve_looping(api, STYLE_SERVED.get(style, style))
    settings = {
        "client": {"base_url": api.url, "paginator": paginator},
        "resources": [{"name": "customers", "endpoint": {"path": path.strip("/"), "data_selector": "data"}}],
    }

    result = load(tmp_path, database_url, settings)

    assert not result.ok
    assert result.error.startswith("PaginationLoop: " + message.format(url=api.url) + "; stopped before asking "
                                   "again; nothing of this extract is loaded, so no page is loaded twice. Check the "
                                   "endpoint's `paginator` settings")
    assert len(api.requests_to(path)) == 2
    assert no_raw_tables(database_url)


def two_sources(tmp_path, api, settings: dict):
    """A project with the source `looping` (settings) and `steady`, which serves the same rows from /steady."""
    steady = {"client": {"base_url": api.url, "paginator": PAGINATORS["cursor"]},
              "resources": [{"name": "customers", "endpoint": {"path": "steady", "data_selector": "data"}}]}
    sources = {"looping": {"connector": "rest_api", "settings": settings},
               "steady": {"connector": "rest_api", "settings": steady}}
    path = tmp_path / "headwater.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    return load_project(path, connector_registry())


def test_a_looping_source_fails_alone_and_its_pages_load_once_when_the_api_is_fixed(api, tmp_path, database_url):
    loops = [True]

    @api.get("/customers")
    def customers(request: Received) -> Reply:
        reply = paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE)
        if loops[0] and request.param("cursor") == "6":
            reply.body["next_cursor"] = "3"  # back to the second page
        return reply

    api.get("/steady")(lambda request: paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE))
    project = two_sources(tmp_path, api, customers_settings(api, paginator=PAGINATORS["cursor"]))
    connector = connector_registry().get("rest_api")
    address = PostgresAddress.from_url(database_url)

    looping, steady = (load_source(project, project.source(name), connector, address) for name in ("looping", "steady"))
    loops[0] = False
    fixed = load_source(project, project.source("looping"), connector, address)

    assert not looping.ok and "PaginationLoop: page 3 (cursor '6') of GET" in looping.error
    assert steady.ok and steady.rows == len(CUSTOMERS)
    assert fixed.ok and fixed.rows == len(CUSTOMERS) and len(fixed.load_ids) == 1  # nothing left over to load
    rows = query(database_url, "SELECT id, _dlt_load_id FROM raw_looping.customers ORDER BY id")  # appended
    assert rows == [(row["id"], fixed.load_ids[0]) for row in CUSTOMERS]


def test_walks_that_send_the_same_cursors_are_no_loop(api, tmp_path, database_url):
    """Every endpoint and every parent row's child walk gives cursors '3', '6': each walk is checked on its own."""
    orders = {customer["id"]: [{"order_id": customer["id"] * 100 + n} for n in range(5)] for customer in CUSTOMERS}
    for path in ("/customers", "/suppliers"):
        api.get(path)(lambda request: paginated(CUSTOMERS, "cursor", request, api.url, PAGE_SIZE))
    api.get("/customers/{customer_id}/orders")(
        lambda request, customer_id: paginated(orders[int(customer_id)], "cursor", request, api.url, PAGE_SIZE))
    settings = {
        "client": {"base_url": api.url},
        "resource_defaults": {"endpoint": {"data_selector": "data", "paginator": PAGINATORS["cursor"]}},
        "resources": ["customers", "suppliers", {"name": "orders", "endpoint": {
            "path": "customers/{customer_id}/orders",
            "params": {"customer_id": {"type": "resolve", "resource": "customers", "field": "id"}}}}],
    }

    result = load(tmp_path, database_url, settings)

    assert result.ok, result.error
    assert {(table.table, table.rows) for table in result.tables} == {("customers", 7), ("suppliers", 7),
                                                                      ("orders", 35)}
    assert query(database_url, "SELECT count(DISTINCT order_id) FROM raw_api.orders") == [(35,)]
    assert len(api.requests_to("/customers/1/orders")) == 2
