"""The bundled example shop: simulator ground truth, landing files, payments API, CLI."""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from headwater.example import Shop, serve_api
from headwater.example.landing import ORDERS_SCHEMA, read_orders_file

DAY0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
TOKEN = "test-token-not-a-secret"
EXPECTED_FILE_SCHEMA = {
    "order_id": pl.Int64,
    "customer_id": pl.Int64,
    "product_id": pl.Int64,
    "quantity": pl.Int64,
    "unit_price": pl.Float64,
    "status": pl.String,
    "ordered_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
}
PRIMARY_KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "payments": "payment_id",
}


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch):
    """Tests decide the token themselves; a developer's own $SHOP_API_TOKEN must not leak in."""
    monkeypatch.delenv("SHOP_API_TOKEN", raising=False)


def make_shop(root: Path) -> Shop:
    return Shop(root / ".headwater" / "example", secrets_file=root / ".headwater" / "secrets.env")


def by_key(truth: dict[str, list[dict]], table: str) -> dict[int, dict]:
    return {row[PRIMARY_KEYS[table]]: row for row in truth[table]}


def on_day(moment: datetime, day: int) -> bool:
    start = DAY0 + timedelta(days=day)
    return start <= moment < start + timedelta(days=1)


# -- simulator -------------------------------------------------------------


def test_init_creates_every_source_with_day_zero_volumes(tmp_path):
    shop = make_shop(tmp_path)
    assert shop.day == -1

    changes = shop.init()

    assert shop.day == 0
    assert changes.days == (0,)
    assert changes.counts() == {
        "customers": {"new": 60, "updated": 0},
        "products": {"new": 20, "updated": 0},
        "orders": {"new": 200, "updated": 0},
        "payments": {"new": 180, "updated": 0},
    }
    state = shop.state_dir
    assert (state / "shop.json").read_text().count('"day": 0') == 1
    assert sorted(p.name for p in shop.landing_dir.iterdir()) == ["orders_day000.csv"]

    # The operational database holds customers and products only; payments live
    # in the API's own store, which the database source must not see.
    with sqlite3.connect(shop.shop_db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"customers", "products"}
        assert con.execute("SELECT count(*) FROM customers").fetchone() == (60,)
        assert con.execute("SELECT count(*) FROM products").fetchone() == (20,)
        first = con.execute("SELECT email, created_at FROM customers WHERE customer_id = 1").fetchone()
    assert first[0].endswith("1@example.com")
    assert first[1].startswith("2026-11-01 ") and len(first[1]) == 19
    with sqlite3.connect(shop.api_db) as con:
        assert con.execute("SELECT count(*), min(status), max(status) FROM payments").fetchone() == (
            180,
            "paid",
            "paid",
        )

    truth = shop.truth()
    assert {t: len(rows) for t, rows in truth.items()} == {
        "customers": 60,
        "products": 20,
        "orders": 200,
        "payments": 180,
    }
    assert len({c["email"] for c in truth["customers"]}) == 60
    assert all(on_day(o["ordered_at"], 0) and o["status"] == "placed" for o in truth["orders"])
    orders = by_key(truth, "orders")
    for payment in truth["payments"]:
        order = orders[payment["order_id"]]
        assert payment["amount"] == round(order["quantity"] * order["unit_price"], 2)
        assert order["ordered_at"] < payment["updated_at"] and on_day(payment["updated_at"], 0)

    # Repeating init changes nothing.
    again = shop.init()
    assert again.empty and again.day == 0
    assert again.counts()["orders"] == {"new": 0, "updated": 0}
    assert shop.truth() == truth


def test_sqlalchemy_reflects_timestamp_columns_as_datetime(tmp_path):
    """dlt's sql_database needs DateTime columns to use updated_at as an incremental cursor."""
    shop = make_shop(tmp_path)
    shop.init()
    engine = sa.create_engine(f"sqlite:///{shop.shop_db}")
    try:
        customers = sa.Table("customers", sa.MetaData(), autoload_with=engine)
        products = sa.Table("products", sa.MetaData(), autoload_with=engine)
        assert isinstance(customers.c.created_at.type, sa.DateTime)
        assert isinstance(customers.c.updated_at.type, sa.DateTime)
        assert isinstance(products.c.updated_at.type, sa.DateTime)
        with engine.connect() as con:
            value = con.execute(sa.select(customers.c.updated_at).where(customers.c.customer_id == 1)).scalar()
    finally:
        engine.dispose()
    assert value == shop.truth()["customers"][0]["updated_at"].replace(tzinfo=None)


def test_token_is_generated_once_into_the_secrets_file(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    secrets_file = tmp_path / ".headwater" / "secrets.env"
    lines = secrets_file.read_text().splitlines()
    assert len(lines) == 1 and lines[0] == f"SHOP_API_TOKEN={shop.api_token}"
    assert len(shop.api_token) >= 40
    assert secrets_file.stat().st_mode & 0o777 == 0o600

    shop.advance()
    assert secrets_file.read_text().splitlines() == lines
    assert make_shop(tmp_path).api_token == shop.api_token


def test_token_from_environment_is_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", TOKEN)
    shop = make_shop(tmp_path)
    shop.init()
    assert shop.api_token == TOKEN
    assert not (tmp_path / ".headwater" / "secrets.env").exists()


def test_token_is_appended_after_existing_secrets(tmp_path):
    secrets_file = tmp_path / ".headwater" / "secrets.env"
    secrets_file.parent.mkdir(parents=True)
    secrets_file.write_text("PG_PASSWORD=abc")  # no trailing newline
    shop = make_shop(tmp_path)
    shop.init()
    assert secrets_file.read_text() == f"PG_PASSWORD=abc\nSHOP_API_TOKEN={shop.api_token}\n"


def test_advance_is_deterministic(tmp_path):
    first, second = make_shop(tmp_path / "a"), make_shop(tmp_path / "b")
    # advance before init initialises first, then simulates the requested days.
    first_changes = first.advance(3)
    second_changes = second.init().then(second.advance(1)).then(second.advance(2))

    assert first.day == second.day == 3
    assert first_changes.days == (0, 1, 2, 3)
    assert first.truth() == second.truth()
    assert first_changes == second_changes
    names = sorted(p.name for p in first.landing_dir.iterdir())
    assert names == ["orders_day000.csv", "orders_day001.jsonl", "orders_day002.parquet", "orders_day003.csv"]
    for name in names:
        assert (first.landing_dir / name).read_bytes() == (second.landing_dir / name).read_bytes()

    truth = first.truth()
    assert {t: len(rows) for t, rows in truth.items()} == {
        "customers": 70,
        "products": 20,
        "orders": 331,
        "payments": 301,
    }
    assert truth["customers"][0]["email"] == "rosa.tanaka1@example.com"


def truth_difference(before: dict, after: dict, table: str) -> tuple[set[int], set[int]]:
    old, new = by_key(before, table), by_key(after, table)
    created = set(new) - set(old)
    changed = {key for key in set(new) & set(old) if new[key] != old[key]}
    return created, changed


def test_advance_reports_exactly_the_truth_difference(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    for day in (1, 2):
        before = shop.truth()
        changes = shop.advance()
        after = shop.truth()
        assert changes.days == (day,) and shop.day == day
        for table in PRIMARY_KEYS:
            created, changed = truth_difference(before, after, table)
            assert set(changes.tables[table].new) == created, table
            assert set(changes.tables[table].updated) == changed, table
            assert changes[table] == {"new": len(created), "updated": len(changed)}
            # Everything written today carries today's timestamps; nothing else moved.
            rows = by_key(after, table)
            assert all(on_day(rows[k]["updated_at"], day) for k in created | changed)
        counts = changes.counts()
        assert 3 <= counts["customers"]["new"] <= 7
        assert counts["customers"]["updated"] == 3
        assert counts["products"] == {"new": 0, "updated": 2}
        assert 35 <= counts["orders"]["new"] <= 45
        assert counts["orders"]["updated"] == 6

        # Status updates only move earlier orders out of 'placed'; a cancelled,
        # paid order gets its payment refunded the same day.
        orders_before, orders_after = by_key(before, "orders"), by_key(after, "orders")
        cancelled = set()
        for order_id in changes.tables["orders"].updated:
            assert orders_before[order_id]["status"] == "placed"
            assert orders_after[order_id]["status"] in {"shipped", "cancelled"}
            assert orders_after[order_id]["ordered_at"] == orders_before[order_id]["ordered_at"]
            if orders_after[order_id]["status"] == "cancelled":
                cancelled.add(order_id)
        payments = by_key(after, "payments")
        refunded = {payments[k]["order_id"] for k in changes.tables["payments"].updated}
        assert all(payments[k]["status"] == "refunded" for k in changes.tables["payments"].updated)
        paid_orders = {p["order_id"] for p in before["payments"]}
        assert refunded == cancelled & paid_orders

    # Two days as one: a row created in the period counts as new only.
    before = shop.truth()
    changes = shop.advance(2)
    after = shop.truth()
    assert changes.days == (3, 4)
    for table in PRIMARY_KEYS:
        created, changed = truth_difference(before, after, table)
        assert (set(changes.tables[table].new), set(changes.tables[table].updated)) == (created, changed)


def test_advance_never_touches_earlier_landing_files(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    day0 = shop.landing_dir / "orders_day000.csv"
    long_ago = 1_700_000_000_000_000_000
    os.utime(day0, ns=(long_ago, long_ago))
    content = day0.read_bytes()

    shop.advance(3)

    assert day0.stat().st_mtime_ns == long_ago
    assert day0.read_bytes() == content
    assert len(list(shop.landing_dir.iterdir())) == 4
    # No temporary files are left where loaders look.
    assert not list(shop.landing_dir.glob(".*"))


def test_landing_files_hold_new_orders_and_updates_to_merge_on_order_id(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    changes = shop.advance(1)
    day1 = read_orders_file(shop.landing_dir / "orders_day001.jsonl").to_pylist()
    ids = [row["order_id"] for row in day1]
    assert set(ids) == set(changes.tables["orders"].new) | set(changes.tables["orders"].updated)
    assert len(ids) == len(set(ids))
    assert sum(1 for i in ids if i <= 200) == 6  # status updates of day-0 orders

    # Merging all files on order_id, keeping the newest updated_at, gives the truth.
    latest: dict[int, dict] = {}
    for path in sorted(shop.landing_dir.iterdir()):
        for row in read_orders_file(path).to_pylist():
            if row["order_id"] not in latest or row["updated_at"] > latest[row["order_id"]]["updated_at"]:
                latest[row["order_id"]] = row
    assert latest == by_key(shop.truth(), "orders")


def test_all_three_formats_read_back_with_the_same_columns_and_types(tmp_path):
    shop = make_shop(tmp_path)
    shop.advance(2)
    files = sorted(shop.landing_dir.iterdir())
    assert [p.suffix for p in files] == [".csv", ".jsonl", ".parquet"]
    csv_file, jsonl_file, parquet_file = files

    # Text formats write ISO-8601 with an explicit UTC offset.
    assert csv_file.read_text().splitlines()[1].endswith("+00:00")
    assert '"updated_at": "2026-11-02T' in jsonl_file.read_text().splitlines()[0]

    from_csv = pl.read_csv(csv_file, try_parse_dates=True)
    from_jsonl = pl.read_ndjson(jsonl_file).with_columns(
        pl.col("ordered_at", "updated_at").str.to_datetime(time_zone="UTC")
    )
    from_parquet = pl.read_parquet(parquet_file)
    for frame in (from_csv, from_jsonl, from_parquet):
        assert dict(frame.schema) == EXPECTED_FILE_SCHEMA

    assert pq.read_schema(parquet_file).field("updated_at").type == pa.timestamp("us", tz="UTC")
    for path in files:
        assert read_orders_file(path).schema == ORDERS_SCHEMA

    # Same values whichever reader; the newest file holds the latest version of its rows.
    for path, frame in zip(files, (from_csv, from_jsonl, from_parquet), strict=True):
        assert frame.equals(pl.from_arrow(read_orders_file(path)))
    assert from_csv["order_id"].to_list() == list(range(1, 201))
    truth = by_key(shop.truth(), "orders")
    assert from_parquet.height == 50  # 44 new orders + 6 status updates
    assert from_parquet.to_dicts() == [truth[i] for i in from_parquet["order_id"]]


# -- payments API ----------------------------------------------------------


@pytest.fixture(scope="module")
def api_shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    shop = make_shop(root)
    shop.advance(2)
    return shop


@pytest.fixture(scope="module")
def api(api_shop):
    with serve_api(api_shop.state_dir, token=TOKEN) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield client


def payment_as_json(payment: dict) -> dict:
    return dict(payment, updated_at=payment["updated_at"].isoformat())


def walk(api: httpx.Client, **params) -> tuple[list[dict], list[int]]:
    rows, sizes, cursor = [], [], None
    while True:
        response = api.get("/payments", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        sizes.append(len(body["data"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, sizes


def test_health_needs_no_token(api):
    response = httpx.get(f"{api.base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_payments_require_the_bearer_token(api, headers):
    response = httpx.get(f"{api.base_url}/payments", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in response.json()["error"]
    assert TOKEN not in response.text


def test_cursor_pagination_returns_every_payment_once_in_order(api, api_shop):
    truth = api_shop.truth()["payments"]
    rows, sizes = walk(api, limit=7)

    assert len(truth) == 264
    assert len(sizes) == math.ceil(264 / 7) == 38
    assert sizes[:-1] == [7] * 37 and sizes[-1] == 264 - 37 * 7
    assert len({r["payment_id"] for r in rows}) == len(rows) == 264
    keys = [(r["updated_at"], r["payment_id"]) for r in rows]
    assert keys == sorted(keys)
    assert sorted(rows, key=lambda r: r["payment_id"]) == [payment_as_json(p) for p in truth]
    assert rows[0]["updated_at"].endswith("+00:00")


def test_default_page_size_is_100(api):
    body = api.get("/payments").json()
    assert len(body["data"]) == 100
    assert isinstance(body["next_cursor"], str)


def test_updated_since_is_inclusive(api, api_shop):
    truth = sorted(api_shop.truth()["payments"], key=lambda p: (p["updated_at"], p["payment_id"]))
    boundary = truth[150]["updated_at"]
    expected = [payment_as_json(p) for p in truth if p["updated_at"] >= boundary]

    rows, _ = walk(api, updated_since=boundary.isoformat(), limit=50)
    assert rows == expected
    assert rows[0]["payment_id"] == truth[150]["payment_id"]

    # 'Z' and a naive value mean UTC too; one second later drops the boundary row.
    zulu = boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert walk(api, updated_since=zulu, limit=1000)[0] == expected
    naive = boundary.replace(tzinfo=None).isoformat()
    assert walk(api, updated_since=naive, limit=1000)[0] == expected
    later = (boundary + timedelta(seconds=1)).isoformat()
    assert [r["payment_id"] for r in walk(api, updated_since=later, limit=1000)[0]] == [
        p["payment_id"] for p in truth if p["updated_at"] > boundary
    ]
    assert api.get("/payments", params={"updated_since": "2030-01-01T00:00:00+00:00"}).json() == {
        "data": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "1001"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "ten"}, "limit must be an integer from 1 to 1000"),
        ({"updated_since": "yesterday"}, "updated_since must be an ISO-8601 timestamp"),
        ({"updated_since": ""}, "updated_since must be an ISO-8601 timestamp"),
        ({"cursor": "not-a-cursor"}, "cursor is not valid"),
        ({"since": "2026-11-01"}, "unknown parameter(s) since"),
    ],
)
def test_bad_parameters_are_rejected_with_a_message(api, params, message):
    response = api.get("/payments", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_repeated_parameter_and_unknown_path(api):
    response = api.get("/payments?limit=5&limit=6")
    assert response.status_code == 400
    assert response.json() == {"error": "parameter(s) given more than once: limit"}
    response = api.get("/orders")
    assert response.status_code == 404
    assert response.json() == {"error": "no such endpoint: /orders"}


def test_api_serves_what_the_shop_writes_after_it_started(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    with serve_api(shop.state_dir, token=TOKEN) as base_url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        last_seen = httpx.get(f"{base_url}/payments", params={"limit": 1000}, headers=headers).json()["data"]
        assert len(last_seen) == 180
        changes = shop.advance()
        since = last_seen[-1]["updated_at"]
        fresh = httpx.get(
            f"{base_url}/payments", params={"updated_since": since, "limit": 1000}, headers=headers
        ).json()["data"]
    changed = set(changes.tables["payments"].new) | set(changes.tables["payments"].updated)
    # The boundary row comes back (inclusive), plus everything the new day wrote.
    assert {r["payment_id"] for r in fresh} == changed | {last_seen[-1]["payment_id"]}


def test_api_uses_the_shop_token_by_default(tmp_path):
    shop = make_shop(tmp_path)
    shop.init()
    with serve_api(shop.state_dir) as base_url:
        ok = httpx.get(f"{base_url}/payments", headers={"Authorization": f"Bearer {shop.api_token}"})
        refused = httpx.get(f"{base_url}/payments", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (ok.status_code, len(ok.json()["data"])) == (200, 100)
    assert refused.status_code == 401


# -- CLI ---------------------------------------------------------------------


def test_cli_drives_the_project_shop_without_printing_the_token(tmp_path, monkeypatch, capsys):
    from headwater.commands import example

    (tmp_path / "headwater.yaml").write_text("project: shop\n")
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    parser = argparse.ArgumentParser(prog="headwater")
    example.add_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(["example", *argv])
        return args.run(args)

    assert run("status") == 0
    assert "not initialised" in capsys.readouterr().out
    assert run("init") == 0
    assert run("advance", "--days", "2") == 0
    assert run("advance", "--days", "0") == 2
    assert run("status") == 0
    out = capsys.readouterr().out

    shop = make_shop(tmp_path)
    assert shop.day == 2
    assert "days 1-2" in out and "day 2 (2026-11-03)" in out
    assert f"orders    │  {len(shop.truth()['orders'])}" in out
    assert "--days must be at least 1" in out
    assert shop.api_token not in out
