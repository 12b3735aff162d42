"""A small, deterministic coffee shop that produces data for Headwater to load.

The shop exposes three kinds of source, each stored under `state_dir`:

* shop.db           operational SQLite database: customers, products
* landing/orders/   one immutable order file per day, rotating CSV / JSONL / Parquet
* api.db            the payments API's private store (served by api_server)

Every simulated day draws from `random.Random(f"shop-{day}")` over state read in
primary-key order, so two shops advanced the same number of days are identical.
Tests use `Shop.truth()` as the ground truth to compare loaded data against.

Timestamps come from a simulated clock: day N is 2026-11-01 + N days (UTC), and
every row written on a day carries times within that day. SQLite stores them as
'YYYY-MM-DD HH:MM:SS' (UTC) in TIMESTAMP columns, which SQLAlchemy reflects as
DateTime, so dlt's sql_database can use updated_at as an incremental cursor.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from headwater.example import catalog
from headwater.example.changes import TABLES, DayChanges, TableChanges
from headwater.example.credentials import ensure_token
from headwater.example.landing import orders_dir, write_orders_file

START = datetime(2026, 11, 1, tzinfo=timezone.utc)

# Volumes: day 0 seeds the shop, every later day adds a little.
INITIAL_CUSTOMERS = 60
INITIAL_ORDERS = 200
NEW_CUSTOMERS_PER_DAY = (3, 7)
UPDATED_CUSTOMERS_PER_DAY = 3
PRICE_CHANGES_PER_DAY = 2
NEW_ORDERS_PER_DAY = (35, 45)
STATUS_UPDATES_PER_DAY = 6
PAID_SHARE = 0.9
CANCELLED_SHARE = 0.3

# Phases of a simulated day (hours, UTC): catalogue and sign-ups before the shop
# opens, so every order refers to a customer and a price that already exist.
SIGNUP_HOURS = (0, 8)
ORDER_HOURS = (8, 22)
# Payments follow their order within the hour, so they stay on the same day.
PAYMENT_DELAY_SECONDS = (30, 3600)

SHOP_SCHEMA = """
CREATE TABLE IF NOT EXISTS main.customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    country TEXT NOT NULL,
    created_at TIMESTAMP,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS main.products (
    product_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price REAL NOT NULL,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS api.payments (
    payment_id INTEGER PRIMARY KEY,
    order_id INTEGER,
    amount REAL,
    method TEXT,
    status TEXT,
    updated_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS api.payments_by_update ON payments (updated_at, payment_id);
-- The simulator's own record of every order's latest version and of the day it
-- has reached; kept apart from shop.db so the database source never sees it.
CREATE TABLE IF NOT EXISTS ledger.orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    status TEXT NOT NULL,
    ordered_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Where each table lives and its primary key, in column order.
TABLE_COLUMNS = {
    "customers": ("main", ("customer_id", "name", "email", "country", "created_at", "updated_at")),
    "products": ("main", ("product_id", "name", "category", "price", "updated_at")),
    "orders": (
        "ledger",
        ("order_id", "customer_id", "product_id", "quantity", "unit_price", "status",
         "ordered_at", "updated_at"),
    ),
    "payments": ("api", ("payment_id", "order_id", "amount", "method", "status", "updated_at")),
}
TIMESTAMP_COLUMNS = {"created_at", "updated_at", "ordered_at"}


def day_start(day: int) -> datetime:
    """Midnight UTC of simulated day `day`."""
    return START + timedelta(days=day)


def to_db(moment: datetime) -> str:
    """UTC text form stored in SQLite; SQLAlchemy's SQLite dialect parses it as DateTime."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def from_db(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _primary_key(table: str) -> str:
    return TABLE_COLUMNS[table][1][0]


@dataclass
class _State:
    """Every table's current rows by primary key, with aware datetimes."""

    tables: dict[str, dict[int, dict]] = field(default_factory=lambda: {t: {} for t in TABLES})

    def next_id(self, table: str) -> int:
        return max(self.tables[table], default=0) + 1


@dataclass
class _DayResult:
    """One simulated day: the rows it wrote and the file rows it dropped."""

    changes: DayChanges
    rows: dict[str, list[dict]]
    landing_rows: list[dict]


class _DaySimulation:
    """Applies one day's events to an in-memory state, recording what changed."""

    def __init__(self, state: _State, day: int):
        self.state = state
        self.day = day
        self.start = day_start(day)
        self.rng = random.Random(f"shop-{day}")
        self.new: dict[str, set[int]] = {t: set() for t in TABLES}
        self.updated: dict[str, set[int]] = {t: set() for t in TABLES}

    def run(self) -> _DayResult:
        # Earlier rows are picked before today's are added, so an update never
        # touches a row created the same day.
        earlier_customers = sorted(self.state.tables["customers"])
        earlier_placed = sorted(
            order_id
            for order_id, order in self.state.tables["orders"].items()
            if order["status"] == "placed" and order["ordered_at"] < self.start
        )
        if self.day == 0:
            self._create_products()
            self._create_customers(INITIAL_CUSTOMERS)
            self._create_orders(INITIAL_ORDERS)
        else:
            self._change_prices(PRICE_CHANGES_PER_DAY)
            self._update_customers(earlier_customers, UPDATED_CUSTOMERS_PER_DAY)
            self._create_customers(self.rng.randint(*NEW_CUSTOMERS_PER_DAY))
            self._create_orders(self.rng.randint(*NEW_ORDERS_PER_DAY))
            self._update_order_statuses(earlier_placed, STATUS_UPDATES_PER_DAY)
        return self._result()

    # -- clock -------------------------------------------------------------

    def _time_between(self, hours: tuple[int, int]) -> datetime:
        return self.start + timedelta(seconds=self.rng.randrange(hours[0] * 3600, hours[1] * 3600))

    def _shortly_after(self, moment: datetime) -> datetime:
        return moment + timedelta(seconds=self.rng.randint(*PAYMENT_DELAY_SECONDS))

    # -- events ------------------------------------------------------------

    def _create_products(self) -> None:
        for product_id, (name, category, price) in enumerate(catalog.PRODUCTS, start=1):
            self._put("products", {
                "product_id": product_id, "name": name, "category": category,
                "price": price, "updated_at": self._time_between(SIGNUP_HOURS),
            })

    def _change_prices(self, count: int) -> None:
        products = self.state.tables["products"]
        for product_id in self.rng.sample(sorted(products), min(count, len(products))):
            product = dict(products[product_id])
            factor = self.rng.choice((self.rng.uniform(0.8, 0.95), self.rng.uniform(1.05, 1.25)))
            price = round(product["price"] * factor, 2)
            product["price"] = price if price != product["price"] else round(price + 0.01, 2)
            product["updated_at"] = self._time_between(SIGNUP_HOURS)
            self._put("products", product)

    def _create_customers(self, count: int) -> None:
        signups = sorted(self._time_between(SIGNUP_HOURS) for _ in range(count))
        for created_at in signups:
            customer_id = self.state.next_id("customers")
            first = self.rng.choice(catalog.FIRST_NAMES)
            last = self.rng.choice(catalog.LAST_NAMES)
            self._put("customers", {
                "customer_id": customer_id,
                "name": f"{first} {last}",
                # The id in the address keeps every email unique.
                "email": f"{first.lower()}.{last.lower()}{customer_id}@{catalog.EMAIL_DOMAINS[0]}",
                "country": self.rng.choice(catalog.COUNTRIES),
                "created_at": created_at,
                "updated_at": created_at,
            })

    def _update_customers(self, candidates: list[int], count: int) -> None:
        customers = self.state.tables["customers"]
        for customer_id in self.rng.sample(candidates, min(count, len(candidates))):
            customer = dict(customers[customer_id])
            if self.rng.random() < 0.5:
                local, domain = customer["email"].split("@")
                other = [d for d in catalog.EMAIL_DOMAINS if d != domain]
                customer["email"] = f"{local}@{self.rng.choice(other)}"
            else:
                other = [c for c in catalog.COUNTRIES if c != customer["country"]]
                customer["country"] = self.rng.choice(other)
            customer["updated_at"] = self._time_between((0, 24))
            self._put("customers", customer)

    def _create_orders(self, count: int) -> None:
        customer_ids = sorted(self.state.tables["customers"])
        products = self.state.tables["products"]
        product_ids = sorted(products)
        # Ids follow order time, as they would in a real shop.
        placed = sorted(self._time_between(ORDER_HOURS) for _ in range(count))
        for ordered_at in placed:
            product_id = self.rng.choice(product_ids)
            order = {
                "order_id": self.state.next_id("orders"),
                "customer_id": self.rng.choice(customer_ids),
                "product_id": product_id,
                "quantity": self.rng.choice(catalog.QUANTITIES),
                "unit_price": products[product_id]["price"],
                "status": "placed",
                "ordered_at": ordered_at,
                "updated_at": ordered_at,
            }
            self._put("orders", order)
            if self.rng.random() < PAID_SHARE:
                self._put("payments", {
                    "payment_id": self.state.next_id("payments"),
                    "order_id": order["order_id"],
                    "amount": round(order["quantity"] * order["unit_price"], 2),
                    "method": self.rng.choice(catalog.PAYMENT_METHODS),
                    "status": "paid",
                    "updated_at": self._shortly_after(ordered_at),
                })

    def _update_order_statuses(self, candidates: list[int], count: int) -> None:
        orders = self.state.tables["orders"]
        payment_of = {p["order_id"]: p for p in self.state.tables["payments"].values()}
        chosen = self.rng.sample(candidates, min(count, len(candidates)))
        for order_id in sorted(chosen):
            order = dict(orders[order_id])
            order["status"] = "cancelled" if self.rng.random() < CANCELLED_SHARE else "shipped"
            order["updated_at"] = self._time_between(ORDER_HOURS)
            self._put("orders", order)
            payment = payment_of.get(order_id)
            if order["status"] == "cancelled" and payment and payment["status"] == "paid":
                refund = dict(payment, status="refunded")
                refund["updated_at"] = self._shortly_after(order["updated_at"])
                self._put("payments", refund)

    # -- bookkeeping -------------------------------------------------------

    def _put(self, table: str, row: dict) -> None:
        key = row[_primary_key(table)]
        rows = self.state.tables[table]
        (self.updated if key in rows and key not in self.new[table] else self.new)[table].add(key)
        rows[key] = row

    def _result(self) -> _DayResult:
        rows = {
            table: [self.state.tables[table][key] for key in sorted(self.new[table] | self.updated[table])]
            for table in TABLES
        }
        landing = sorted(rows["orders"], key=lambda o: (o["updated_at"], o["order_id"]))
        changes = DayChanges(
            day=self.day,
            days=(self.day,),
            tables={
                t: TableChanges(new=frozenset(self.new[t]), updated=frozenset(self.updated[t]))
                for t in TABLES
            },
        )
        return _DayResult(changes=changes, rows=rows, landing_rows=landing)


class Shop:
    """The example shop kept in `state_dir`; see the module docstring for its layout."""

    def __init__(self, state_dir: Path, secrets_file: Path | None = None):
        self.state_dir = Path(state_dir)
        # The product keeps state in <project>/.headwater/example and secrets in
        # <project>/.headwater/secrets.env, hence the default.
        self.secrets_file = Path(secrets_file) if secrets_file else self.state_dir.parent / "secrets.env"

    # -- locations ---------------------------------------------------------

    @property
    def shop_db(self) -> Path:
        """The operational database (customers, products) for the sql_database source."""
        return self.state_dir / "shop.db"

    @property
    def api_db(self) -> Path:
        """The payments API's private store; only api_server reads it."""
        return self.state_dir / "api.db"

    @property
    def ledger_db(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def landing_dir(self) -> Path:
        """Folder of daily order files for the filesystem source."""
        return orders_dir(self.state_dir)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "shop.json"

    # -- public API --------------------------------------------------------

    @property
    def day(self) -> int:
        """The last simulated day, or -1 before `init`."""
        recorded = -1
        if self.state_file.exists():
            recorded = int(json.loads(self.state_file.read_text())["day"])
        committed = self._committed_day()
        if committed != recorded:
            # The database commit is the point of no return; if shop.json lags
            # behind (an advance stopped right after committing), catch it up.
            self._write_state_file(committed)
        return committed

    @property
    def api_token(self) -> str:
        """The bearer token the payments API accepts.

        $SHOP_API_TOKEN if set, else the SHOP_API_TOKEN line of the secrets file,
        which is generated and appended there on first use.
        """
        return ensure_token(self.secrets_file)

    def init(self) -> DayChanges:
        """Create day 0 unless it exists; return what was created (nothing on a repeat call)."""
        ensure_token(self.secrets_file)
        current = self.day
        if current >= 0:
            return DayChanges(day=current)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(SHOP_SCHEMA)
        return self._simulate(_State(), 0)

    def advance(self, days: int = 1) -> DayChanges:
        """Simulate the next `days` day(s), initialising first if needed; return all changes."""
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        changes = self.init()
        state = self._load_state()
        first = self.day + 1
        for day in range(first, first + days):
            changes = changes.then(self._simulate(state, day))
        return changes

    def truth(self) -> dict[str, list[dict]]:
        """Current rows of every table, sorted by primary key, timestamps as aware UTC datetimes.

        'orders' holds each order's latest version across all landing files.
        Returns empty lists before `init`.
        """
        if self.day < 0:
            return {table: [] for table in TABLES}
        state = self._load_state()
        return {table: [dict(state.tables[table][k]) for k in sorted(state.tables[table])] for table in TABLES}

    # -- storage -----------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection over all three files: a commit then covers them all at
        # once (SQLite's multi-database commit is atomic in rollback-journal mode).
        con = sqlite3.connect(self.shop_db, timeout=30, isolation_level=None)
        try:
            con.row_factory = sqlite3.Row
            con.execute("ATTACH DATABASE ? AS api", (str(self.api_db),))
            con.execute("ATTACH DATABASE ? AS ledger", (str(self.ledger_db),))
            yield con
        finally:
            con.close()

    def _committed_day(self) -> int:
        if not self.ledger_db.exists():
            return -1
        con = sqlite3.connect(f"file:{self.ledger_db}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'day'").fetchone()
        except sqlite3.OperationalError:
            return -1
        finally:
            con.close()
        return int(row[0]) if row else -1

    def _write_state_file(self, day: int) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Human-readable record; the ledger's meta table is what commits atomically.
        content = {"day": day, "clock_start": START.isoformat(), "seed_pattern": "shop-{day}"}
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(content, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def _load_state(self) -> _State:
        state = _State()
        with self._connect() as con:
            for table, (schema, columns) in TABLE_COLUMNS.items():
                query = f"SELECT {', '.join(columns)} FROM {schema}.{table}"
                for row in con.execute(query):
                    record = {
                        name: from_db(row[name]) if name in TIMESTAMP_COLUMNS else row[name]
                        for name in columns
                    }
                    state.tables[table][record[columns[0]]] = record
        return state

    def _simulate(self, state: _State, day: int) -> DayChanges:
        """Run one day and persist it: landing file, then one commit, then shop.json."""
        result = _DaySimulation(state, day).run()
        write_orders_file(self.state_dir, day, result.landing_rows)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for table, rows in result.rows.items():
                    schema, columns = TABLE_COLUMNS[table]
                    placeholders = ", ".join("?" for _ in columns)
                    con.executemany(
                        f"INSERT OR REPLACE INTO {schema}.{table} ({', '.join(columns)}) "
                        f"VALUES ({placeholders})",
                        [
                            tuple(to_db(r[c]) if c in TIMESTAMP_COLUMNS else r[c] for c in columns)
                            for r in rows
                        ],
                    )
                con.execute("INSERT OR REPLACE INTO ledger.meta VALUES ('day', ?)", (str(day),))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        self._write_state_file(day)
        return result.changes
