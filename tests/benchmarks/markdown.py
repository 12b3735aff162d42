"""What the benchmark tests share: the servers' environment for a benchmark process, and Markdown tables read back."""

from __future__ import annotations

import os
import re

from tests.servers import postgres_server_url


def bench_env(mariadb) -> dict[str, str]:
    """The environment that points a benchmark at the tests' PostgreSQL and MariaDB servers."""
    return {
        **os.environ,
        "HEADWATER_BENCH_POSTGRES": postgres_server_url(),
        "HEADWATER_BENCH_MARIADB_HOST": mariadb.host,
        "HEADWATER_BENCH_MARIADB_PORT": str(mariadb.port),
        "HEADWATER_BENCH_MARIADB_USER": mariadb.user,
        "HEADWATER_BENCH_MARIADB_PASSWORD": mariadb.password,
    }


def table_after(text: str, heading: str, stop: str) -> dict[str, list[str]]:
    """The first Markdown table after ``heading`` and before ``stop``: first cell -> the other cells."""
    section = text.split(heading, 1)[1].split(stop, 1)[0]
    rows = {}
    for line in section.splitlines():
        # An escaped pipe stays in its cell.
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if line.startswith("|") and not set(cells[0]) <= {"-"} and cells[0] not in rows:
            rows[cells[0]] = cells[1:]
    header = next(iter(rows), None)
    return {name: cells for name, cells in rows.items() if name != header}
