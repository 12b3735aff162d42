"""The built-in `filesystem` connector under the acceptance kit: CSV, JSONL and Parquet landing files."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from headwater.testing import ConnectorAcceptanceTests

# Initial files get modification times in the past, one minute apart; each file add_rows writes is
# newer than all of them, so the incremental listing (on modification time) must pick it up.
START = time.time() - 3600
STEP = 60

ORDER_FIELDS = ("order_id", "customer_id", "amount", "status", "updated_at")


def order(order_id: int) -> dict:
    return {
        "order_id": order_id,
        "customer_id": 100 + order_id % 3,
        "amount": round(9.5 + order_id * 1.25, 2),
        "status": "paid" if order_id % 2 else "open",
        "updated_at": f"2024-01-{order_id:02d}T09:30:00+00:00",
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(ORDER_FIELDS)] + [",".join(str(row[field]) for field in ORDER_FIELDS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def write_parquet(path: Path, rows: list[dict]) -> None:
    # Parquet carries real types: the connector must land them like the text formats' inferred ones.
    schema = pa.schema(
        [
            ("order_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("amount", pa.float64()),
            ("status", pa.string()),
            ("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    table = pa.Table.from_pylist(
        [{**row, "updated_at": datetime.fromisoformat(row["updated_at"])} for row in rows], schema=schema
    )
    pq.write_table(table, path)


def touch(path: Path, moment: float) -> None:
    os.utime(path, (moment, moment))


class TestFilesystemConnector(ConnectorAcceptanceTests):
    connector = "filesystem"
    package = "headwater"
    tables = {
        "orders": {"primary_key": "order_id", "deduplicate_by": "updated_at"},
        "refunds": {"primary_key": "refund_id"},
    }

    def settings(self, workdir: Path) -> dict:
        return {"bucket_url": str(workdir), "files": {"orders": "orders/*", "refunds": "refunds/*.csv"}}

    def make_source(self, workdir: Path) -> dict:
        (workdir / "orders").mkdir()
        (workdir / "refunds").mkdir()
        write_csv(workdir / "orders" / "day1.csv", [order(i) for i in (1, 2, 3)])
        write_jsonl(workdir / "orders" / "day2.jsonl", [order(i) for i in (4, 5)])
        write_parquet(workdir / "orders" / "day3.parquet", [order(i) for i in (6, 7, 8, 9)])
        (workdir / "refunds" / "day1.csv").write_text("refund_id,order_id,amount\n1,2,11.0\n2,4,5.5\n")
        for index, path in enumerate(sorted(workdir.rglob("*.*"))):
            touch(path, START + index * STEP)
        return self.settings(workdir)

    def add_rows(self, workdir: Path) -> dict[str, int]:
        newest = max(path.stat().st_mtime for path in workdir.rglob("*.*"))
        write_csv(workdir / "orders" / "day4.csv", [order(i) for i in (10, 11)])
        (workdir / "refunds" / "day4.csv").write_text("refund_id,order_id,amount\n3,10,2.25\n")
        touch(workdir / "orders" / "day4.csv", newest + STEP)
        touch(workdir / "refunds" / "day4.csv", newest + STEP)
        return {"orders": 2, "refunds": 1}

    def make_empty_source(self, workdir: Path) -> dict:
        (workdir / "orders").mkdir()
        (workdir / "refunds").mkdir()
        return self.settings(workdir)

    def expected_rows(self) -> dict[str, int]:
        return {"orders": 9, "refunds": 2}
