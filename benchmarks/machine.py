"""A description of the machine and software a benchmark ran on, for the results file."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

import psutil
import psycopg

PACKAGES = ("headwater", "dlt", "pyarrow", "polars", "psycopg", "adbc-driver-postgresql", "sqlalchemy", "pymysql",
            "httpx", "prefect")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def postgres_version(url: str) -> str:
    with psycopg.connect(url) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


def mariadb_version() -> str:
    from benchmarks.databases import mariadb_connection

    try:
        with mariadb_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            return cursor.fetchone()[0]
    except Exception as error:  # the description must not fail the run
        return f"unavailable ({type(error).__name__})"


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe(postgres_url: str) -> dict[str, str]:
    """Machine, OS, Python, database and package versions, and the load on the machine when the run began."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "Cores": f"{psutil.cpu_count(logical=False)} physical, {psutil.cpu_count()} logical",
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "Load average at start (1, 5, 15 min)": load,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "PostgreSQL": postgres_version(postgres_url),
        "MariaDB": mariadb_version(),
        "Packages": ", ".join(f"{name} {ver}" for name, ver in package_versions().items()),
    }
