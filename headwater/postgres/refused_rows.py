"""Which rows of a refused load file Postgres refuses, and why: the rows copied again, in halves, until
each refused row stands alone.

A COPY stops at the first row Postgres refuses, and its reason names that row only. To load the
others, the file's rows are copied again into a scratch table shaped like the table the load was
bound for (a temporary table; every copy is rolled back, so nothing is written): first the rows of
each landing file apart, then halves of a part that fails, then halves of those, until each refused
row stands alone with Postgres's own reason for it. The copies go through the casts and the COPY of
the load itself (headwater.postgres.loader.FileCopy, column_types.copy_into): a row that copies
here loads there.

Rows cannot always be told apart. When a copy of no rows at all fails, a column of the file has a
type the table's column cannot take, whatever the values; when the copies allowed for one landing
file run out, the rows still failing are left together. Either way those rows come back as one
refusal marked ``together``.

A failure that is not about the rows (the connection drops, say) is raised as it is: nothing can be
told about the rows then, and the caller leaves the load as it was.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pyarrow as pa
from adbc_driver_manager import DatabaseError, dbapi
from dlt.destinations.impl.postgres.factory import get_adbc_driver_location

from headwater.common.file_rows import FILE_COLUMN
from headwater.postgres.column_types import copy_into, quoted
from headwater.postgres.loader import FileCopy, refuses_data

# Copies that may be spent telling the refused rows of one landing file from its good ones. Finding k
# refused rows among n takes about 2·k·log2(n/k) copies; a file where every row is refused takes about 2·n.
MAX_COPIES_PER_FILE = 200


@dataclass
class Refusal:
    """Rows Postgres refuses, by index into the rows searched, with its reason."""

    rows: list[int]
    reason: str  # whole: "Postgres refused the row for <where>: <detail>"
    where: str  # the table, and the column when Postgres names it
    detail: str  # Postgres's (or Arrow's) own message
    together: bool = False  # not told apart: some of these rows may load alone (see the module docstring)
    exhausted: bool = False  # together because the copies allowed ran out, not because of a column's type


def find_refused_rows(uri: str, schema: str, table: str, columns: dict, capabilities, rows: pa.Table,
                      max_copies_per_file: int = MAX_COPIES_PER_FILE) -> list[Refusal] | None:
    """The refused rows of ``rows`` bound for ``schema.table``, whose dlt columns are ``columns``; None when
    every row copies now (what failed before was not these rows).

    ``uri``: the destination, as the load connects to it. Raises the driver's error when the connection
    or the server fails.
    """
    qualified = f"{quoted(schema)}.{quoted(table)}"
    with dbapi.connect(driver=get_adbc_driver_location(), db_kwargs={"uri": uri}) as connection, \
            connection.cursor() as cursor:
        # Named as the table, so that Postgres's reasons name it too; pg_temp keeps the two apart.
        cursor.execute(f"create temporary table {quoted(table)} (like {qualified} including defaults)")
        connection.commit()
        probe = _Probe(connection, cursor, table, FileCopy(columns, capabilities, f"{schema}.{table}"))
        failure = probe(rows.schema, [])
        if failure is not None:  # not even a copy of no rows: a column's type, whatever the values
            if not failure.about_types:
                raise failure.error
            return [failure.refusal(list(range(rows.num_rows)), together=True)]
        groups = _file_groups(rows)
        failure = probe(rows.schema, _batches(rows))
        if failure is None:
            return None
        refusals = []
        for group in groups:
            if len(groups) > 1:
                failure = probe(rows.schema, _batches(rows.take(group)))
            if failure is not None:
                refusals += _halves(probe, rows, group, failure, max_copies_per_file)
        return refusals


class _Probe:
    """One copy of some rows into the scratch table, rolled back: None, or what refused them."""

    def __init__(self, connection, cursor, table: str, copy: FileCopy):
        self.connection = connection
        self.cursor = cursor
        self.table = table
        self.copy = copy

    def __call__(self, schema: pa.Schema, batches: list[pa.RecordBatch]) -> _Failure | None:
        self.copy.cast_failure = None
        if not batches:  # an empty batch still goes through every cast and the driver's type mapping
            batches = [pa.RecordBatch.from_arrays([pa.array([], field.type) for field in schema], schema=schema)]
        try:
            copy_into(self.cursor, self.table, self.copy.reader(schema, iter(batches)), db_schema_name="pg_temp")
        except Exception as error:
            self.connection.rollback()
            if self.copy.cast_failure is not None:
                return _Failure(self.copy, cast_failure=self.copy.cast_failure)
            if not isinstance(error, DatabaseError) or not refuses_data(error):
                raise
            return _Failure(self.copy, error=error)
        self.connection.rollback()
        return None


@dataclass
class _Failure:
    copy: FileCopy
    error: Exception | None = None
    cast_failure: str | None = None

    @property
    def about_types(self) -> bool:
        """Arrow or the driver could not turn the columns' types into the table's: no Postgres error, which a
        copy of no rows could not have caused."""
        return self.cast_failure is not None or not getattr(self.error, "sqlstate", None)

    def refusal(self, indexes: list[int], rows: str = "rows", **flags) -> Refusal:
        if self.cast_failure is not None:
            return Refusal(indexes, self.cast_failure, self.copy.where, self.cast_failure, **flags)
        where, detail = self.copy.refusal(self.error)
        return Refusal(indexes, self.copy.refused(self.error, rows=rows), where, detail, **flags)


def _halves(probe: _Probe, rows: pa.Table, group: list[int], failure: _Failure, budget: int) -> list[Refusal]:
    """Halve the failing ``group`` (row indexes) breadth first until each refused row stands alone."""
    refusals, failing = [], deque([(group, failure)])
    copies = 0
    while failing:
        part, failure = failing.popleft()
        if len(part) == 1:  # its failure is its own: every part's failure comes from a copy of that part's rows
            refusals.append(failure.refusal(part, rows="the row"))
            continue
        if copies + 2 > budget:
            refusals.append(failure.refusal(part, together=True, exhausted=True))
            continue
        middle = len(part) // 2
        first, second = part[:middle], part[middle:]
        copies += 1
        first_failure = probe(rows.schema, _batches(rows.take(first)))
        if first_failure is None:  # the row that failed the whole part is in the second half
            failing.append((second, failure))
            continue
        failing.append((first, first_failure))
        copies += 1
        second_failure = probe(rows.schema, _batches(rows.take(second)))
        if second_failure is not None:
            failing.append((second, second_failure))
    return refusals


def _file_groups(rows: pa.Table) -> list[list[int]]:
    """Row indexes per landing file (rows without a file are one group), in the order the files first appear."""
    if FILE_COLUMN not in rows.column_names:
        return [list(range(rows.num_rows))]
    groups: dict = {}
    for index, name in enumerate(rows.column(FILE_COLUMN).to_pylist()):
        groups.setdefault(name, []).append(index)
    return list(groups.values())


def _batches(rows: pa.Table) -> list[pa.RecordBatch]:
    return rows.combine_chunks().to_batches() if rows.num_rows else []


