"""Whether a contender landed the source's rows: row count, distinct keys and a sum per numeric column."""

from __future__ import annotations

import psycopg

NUMERIC_COLUMNS = ("id", "customer_id", "quantity", "price", "discount")


def table_stats(url: str, schema: str, table: str) -> dict[str, str]:
    """Counts and sums as text (exact numeric), whatever type a tool gave the columns (text included)."""
    sums = ", ".join(f'round(sum("{column}"::numeric), 4)' for column in NUMERIC_COLUMNS)
    query = f'SELECT count(*), count(DISTINCT "id"), {sums} FROM "{schema}"."{table}"'
    with psycopg.connect(url) as connection:
        values = connection.execute(query).fetchone()
    return dict(zip(("rows", "distinct id", *(f"sum {column}" for column in NUMERIC_COLUMNS)),
                    (str(value) for value in values), strict=True))


def compare(expected: dict[str, str], url: str, schema: str, table: str) -> str:
    """"" when the target matches the source, else what differs (or why it could not be read)."""
    try:
        landed = table_stats(url, schema, table)
    except psycopg.Error as error:
        return f"target unreadable: {str(error).splitlines()[0]}"
    wrong = [f"{name} {landed[name]} != {value}" for name, value in expected.items() if landed.get(name) != value]
    return "; ".join(wrong)
