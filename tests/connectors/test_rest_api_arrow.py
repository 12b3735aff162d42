"""Flat pages of the rest_api connector as Arrow tables: what lands is what dict rows made of the same records.

Each comparison loads the same API twice in one project, as source `rows` (`arrow_pages: false`,
every page as dicts, dlt's row-by-row normalizer) and as source `arrow` (the default), and compares
the two raw tables column by column (name, Postgres type, NOT NULL) and cell by cell.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import yaml

from connectors.rest_api import rest_api
from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query
from tests.connectors.rest_api_server import ApiServer, Received, Reply, paginated

pytestmark = pytest.mark.usefixtures("fast_retries")

CURSOR = {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"}
# Values of every kind JSON has, timestamps written in the forms APIs use, keys missing from some records.
FLAT = [
    {"id": 1, "amount": 1.5, "active": True, "name": "a", "created": "2024-01-01T00:00:00Z",
     "shifted": "2024-01-01T01:00:00+02:00", "naive": "2024-01-01T03:04:05.123456",
     "compact": "2024-03-01T10:00:00+0000",
     "day": "2024-01-01", "nothing": None, "mixed_text": "not a time"},
    {"id": 2, "amount": 2.0, "active": False, "name": None, "created": "2024-01-02T00:00:00.5+00:00",
     "shifted": None, "naive": "2024-01-01 03:04:05", "compact": "2024-03-02T10:00:00-0130", "day": "2024-01-02",
     "nothing": None, "mixed_text": "2024-01-01T00:00:00Z"},
    {"id": 3, "amount": 3, "name": "c", "created": "2024-01-03T00:00:00Z", "extra": 7, "nothing": None},
    {"id": 4, "amount": None, "active": None, "name": "d\u00e9j\u00e0 vu", "created": "2024-01-04T23:59:59.999999Z",
     "shifted": "2024-06-01T12:00:00-05:00", "day": None, "nothing": None, "extra": 8},
    {"id": 5, "amount": -0.25, "active": True, "name": "", "created": "2024-01-05T00:00:00Z", "nothing": None},
]
NESTED = [
    {"id": 1, "name": "a", "address": {"city": "Oslo", "zip": "0150"}, "tags": ["x", "y"]},
    {"id": 2, "name": "b", "address": {"city": "Bergen"}, "tags": []},
    {"id": 3, "name": "c", "lines": [{"sku": "s1", "qty": 2}, {"sku": "s2", "qty": 1}]},
]


def load_both(tmp_path, database_url: str, endpoint: dict, tables: dict | None = None, client: dict | None = None):
    """Load the endpoint as source `rows` (dicts) and as source `arrow` into one database; both results."""
    sources = {}
    for name, arrow in (("rows", False), ("arrow", True)):
        settings = {"client": client, "resources": [endpoint], "arrow_pages": arrow}
        sources[name] = {"connector": "rest_api", "settings": settings, **({"tables": tables} if tables else {})}
    path = tmp_path / "headwater.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    project = load_project(path, connector_registry())
    connector = connector_registry().get("rest_api")
    address = PostgresAddress.from_url(database_url)
    return [load_source(project, project.source(name), connector, address) for name in ("rows", "arrow")]


def columns(database_url: str, schema: str, table: str) -> list[tuple]:
    return query(database_url, """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
        WHERE a.attrelid = (%s || '.' || %s)::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
    """, schema, table)


def cells(database_url: str, schema: str, table: str, order_by: str) -> list[tuple]:
    """Every cell but dlt's ids of rows and loads, which differ by nature."""
    names = [name for name, _, _ in columns(database_url, schema, table) if name not in ("_dlt_id", "_dlt_load_id")]
    select = ", ".join(f'"{name}"' for name in names)
    return sorted(query(database_url, f'SELECT {select} FROM {schema}."{table}" ORDER BY {order_by}'), key=repr)


def tables_of(database_url: str, schema: str) -> list[str]:
    return [name for (name,) in query(database_url, "SELECT table_name FROM information_schema.tables WHERE "
                                      "table_schema = %s AND table_name NOT LIKE '\\_dlt%%' ORDER BY 1", schema)]


def serve(api: ApiServer, path: str, rows: list[dict], page_size: int) -> None:
    api.get(path)(lambda request: paginated(rows, "cursor", request, api.url, page_size))


def test_flat_pages_land_exactly_as_dict_rows_did(api, tmp_path, database_url):
    serve(api, "/things", FLAT, page_size=2)  # three pages: the first alone, the next two joined

    rows, arrow = load_both(tmp_path, database_url, {"name": "things", "endpoint": {"path": "things",
                                                                                   "data_selector": "data"}},
                            client={"base_url": api.url, "paginator": CURSOR})

    assert rows.ok and arrow.ok, rows.error or arrow.error
    assert rows.rows == arrow.rows == len(FLAT)
    assert tables_of(database_url, "raw_arrow") == tables_of(database_url, "raw_rows") == ["things"]
    expected_columns = columns(database_url, "raw_rows", "things")
    assert columns(database_url, "raw_arrow", "things") == expected_columns
    kinds = {name: kind for name, kind, _ in expected_columns}
    assert kinds["created"] == kinds["shifted"] == kinds["naive"] == kinds["compact"] == "timestamp with time zone"
    assert kinds["day"] == kinds["mixed_text"] == "character varying" and "nothing" not in kinds
    assert cells(database_url, "raw_arrow", "things", "id") == cells(database_url, "raw_rows", "things", "id")
    ids = query(database_url, "SELECT count(DISTINCT _dlt_id), count(*) FROM raw_arrow.things")
    assert ids == [(len(FLAT), len(FLAT))]


def test_flat_pages_reach_dlt_as_arrow_tables_and_nested_ones_as_records(api):
    serve(api, "/things", FLAT + NESTED, page_size=5)
    source = rest_api(client={"base_url": api.url, "paginator": CURSOR},
                      resources=[{"name": "things", "endpoint": {"path": "things", "data_selector": "data"}}])

    items = list(source.resources["things"])

    tables = [item for item in items if isinstance(item, pa.Table)]
    assert [table.num_rows for table in tables] == [len(FLAT)]
    assert tables[0].schema.field("created").type == pa.timestamp("us", "UTC")
    assert tables[0].column_names[-2:] == ["_dlt_load_id", "_dlt_id"]
    assert [item["id"] for item in items if isinstance(item, dict)] == [row["id"] for row in NESTED]


def test_nested_records_land_as_the_same_child_tables_and_columns(api, tmp_path, database_url):
    serve(api, "/things", FLAT[:2] + NESTED, page_size=2)  # a flat page first, then pages with nested values

    rows, arrow = load_both(tmp_path, database_url, {"name": "things", "endpoint": {"path": "things",
                                                                                   "data_selector": "data"}},
                            client={"base_url": api.url, "paginator": CURSOR})

    assert rows.ok and arrow.ok, rows.error or arrow.error
    assert tables_of(database_url, "raw_arrow") == tables_of(database_url, "raw_rows") == [
        "things", "things__lines", "things__tags"]
    assert columns(database_url, "raw_arrow", "things") == columns(database_url, "raw_rows", "things")
    assert cells(database_url, "raw_arrow", "things", "id") == cells(database_url, "raw_rows", "things", "id")
    for child in ("things__lines", "things__tags"):
        assert columns(database_url, "raw_arrow", child) == columns(database_url, "raw_rows", child)
        landed = {}
        for schema in ("raw_rows", "raw_arrow"):
            values = [name for name, _, _ in columns(database_url, schema, child) if not name.startswith("_dlt")]
            landed[schema] = query(database_url, f"""
                SELECT p.id, c._dlt_list_idx, {", ".join(f"c.{name}" for name in values)}
                FROM {schema}.{child} c JOIN {schema}.things p ON c._dlt_parent_id = p._dlt_id ORDER BY 1, 2""")
        assert landed["raw_arrow"] == landed["raw_rows"] and landed["raw_arrow"]
    flattened = query(database_url, "SELECT id, address__city, address__zip FROM raw_arrow.things "
                      "ORDER BY id, address__city NULLS FIRST")
    assert flattened == [(1, None, None), (1, "Oslo", "0150"), (2, None, None), (2, "Bergen", None), (3, None, None)]


def test_an_incremental_cursor_on_arrow_pages_loads_only_new_records_the_second_time(api, tmp_path, database_url):
    orders = [{"order_id": n, "amount": n * 10, "updated_at": f"2024-02-{n:02d}T00:00:00+00:00"} for n in range(1, 8)]

    @api.get("/orders")
    def changed_orders(request: Received) -> Reply:
        since = request.param("updated_since") or ""
        newer = [row for row in orders if row["updated_at"] >= since]
        return paginated(newer, "cursor", request, api.url, 2)

    endpoint = {"name": "orders", "endpoint": {"path": "orders", "data_selector": "data", "paginator": CURSOR,
                                               "params": {"updated_since": {
                                                   "type": "incremental", "cursor_path": "updated_at",
                                                   "initial_value": "2024-01-01T00:00:00+00:00"}}}}
    tables = {"orders": {"primary_key": "order_id"}}
    client = {"base_url": api.url}

    first = load_both(tmp_path, database_url, endpoint, tables, client)
    orders.append({"order_id": 8, "amount": 80, "updated_at": "2024-02-08T00:00:00+00:00"})
    orders[1] = {"order_id": 2, "amount": 25, "updated_at": "2024-02-09T00:00:00+00:00"}
    second = load_both(tmp_path, database_url, endpoint, tables, client)

    assert all(result.ok for result in first + second)
    assert [result.rows for result in first] == [7, 7]
    assert [result.rows for result in second] == [2, 2]  # order 7, sent again at the boundary, is not loaded twice
    asked = [request.param("updated_since") for request in api.requests_to("/orders") if not request.param("cursor")]
    assert asked == ["2024-01-01T00:00:00+00:00"] * 2 + ["2024-02-07T00:00:00+00:00"] * 2  # text, as the API wrote it
    assert columns(database_url, "raw_arrow", "orders") == columns(database_url, "raw_rows", "orders")
    assert ("updated_at", "timestamp with time zone", False) in columns(database_url, "raw_arrow", "orders")
    assert cells(database_url, "raw_arrow", "orders", "order_id, amount") == cells(
        database_url, "raw_rows", "orders", "order_id, amount")


def test_a_field_whose_type_changes_from_page_to_page_widens_its_column(api, tmp_path, database_url):
    records = ([{"id": n, "amount": n, "code": n} for n in range(1, 5)]  # integers
               + [{"id": n, "amount": n + 0.5, "code": n} for n in range(5, 7)]  # amount: floats
               + [{"id": n, "amount": n, "code": f"C-{n}"} for n in range(7, 9)])  # code: text
    serve(api, "/things", records, page_size=2)
    path = tmp_path / "headwater.yaml"
    settings = {"client": {"base_url": api.url, "paginator": CURSOR},
                "resources": [{"name": "things", "endpoint": {"path": "things", "data_selector": "data"}}]}
    path.write_text(yaml.safe_dump({"sources": {"api": {"connector": "rest_api", "settings": settings}}}))
    project = load_project(path, connector_registry())

    result = load_source(project, project.source("api"), connector_registry().get("rest_api"),
                         PostgresAddress.from_url(database_url))

    assert result.ok, result.error
    kinds = {name: kind for name, kind, _ in columns(database_url, "raw_api", "things")}
    assert (kinds["amount"], kinds["code"]) == ("double precision", "character varying")
    assert not [name for name in kinds if "__v_" in name]  # no variant columns: the columns widened
    landed = query(database_url, "SELECT id, amount, code FROM raw_api.things ORDER BY id")
    assert landed == [(n, float(n) + (0.5 if 5 <= n <= 6 else 0), f"C-{n}" if n >= 7 else str(n))
                      for n in range(1, 9)]


def test_rules_quarantine_the_same_rows_from_arrow_pages_as_from_dict_rows(api, tmp_path, database_url):
    serve(api, "/things", FLAT, page_size=2)
    # The pattern reads the timestamps as the API wrote them, on either path.
    tables = {"things": {"rules": [{"required": ["active"]}, {"range": {"amount": {"min": 0}}},
                                   {"pattern": {"created": "^2024-01-0[2-5]T"}}]}}

    rows, arrow = load_both(tmp_path, database_url, {"name": "things", "endpoint": {"path": "things",
                                                                                   "data_selector": "data"}},
                            tables, client={"base_url": api.url, "paginator": CURSOR})

    assert rows.ok and arrow.ok, rows.error or arrow.error
    assert [(table.rows, table.quarantined) for table in arrow.tables] == [
        (table.rows, table.quarantined) for table in rows.tables] == [(1, 4)]
    quarantined = "SELECT rule, record::jsonb->>'id', reason FROM {}.things__quarantine ORDER BY 2"
    assert query(database_url, quarantined.format("raw_arrow")) == query(database_url, quarantined.format("raw_rows"))
    assert cells(database_url, "raw_arrow", "things", "id") == cells(database_url, "raw_rows", "things", "id")


def test_a_read_limited_to_one_item_asks_for_the_first_page_only(api):
    serve(api, "/things", FLAT, page_size=2)
    source = rest_api(client={"base_url": api.url, "paginator": CURSOR},
                      resources=[{"name": "things", "endpoint": {"path": "things", "data_selector": "data"}}])

    items = list(source.resources["things"].add_limit(1))  # what `headwater check` reads

    assert [item.num_rows for item in items] == [2]
    assert len(api.requests_to("/things")) == 1  # the pages after it are fetched ahead only once it is handed on
