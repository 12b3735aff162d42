"""How each source column type lands in Postgres: the type dlt is told, and the SQL that reads the value exactly.

SQLAlchemy's reflected types, read as they are, lose values on the way: a MariaDB DOUBLE becomes a
decimal of 10 places, a BIGINT UNSIGNED overflows int64, a PostgreSQL `numeric` without precision is
rounded to numeric(38, 9), JSON's `null` turns into SQL NULL, a MariaDB FLOAT arrives as the 6 digits
the server prints. Per column this module gives:

- ``hint_type``: the SQLAlchemy type dlt derives the destination column from (dlt's
  ``type_adapter_callback``), e.g. a DOUBLE as a float, a zone-less timestamp as one with a zone;
- ``read_expression``: what the SELECT reads instead of the bare column, so that both backends get the
  exact value from the server (a 4-byte float widened to double, a bit string as its digits, JSON as
  its text, an interval in ISO 8601);
- ``carried_as_text``: decimals Arrow cannot hold (more than 76 digits, or no fixed scale) travel as
  their text and become `numeric` in Postgres (headwater.postgres.column_types).

The policies (one type per column, for both backends) are documented in docs/connectors.md.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import sqltypes
from sqlalchemy.sql.functions import FunctionElement

from headwater.postgres.column_types import UNCONSTRAINED_NUMERIC  # noqa: F401 - the hint, as the destination reads it

# Arrow's widest decimal (decimal256) holds 76 digits.
ARROW_DECIMAL_DIGITS = 76
# The types dlt has a data type for; a PostgreSQL column of any other type lands as its text.
DLT_MAPPED_TYPES = (
    sqltypes.Numeric, sqltypes.Integer, sqltypes.String, sqltypes._Binary, sqltypes.DateTime, sqltypes.Date,
    sqltypes.Time, sqltypes.JSON, sqltypes.ARRAY, sqltypes.Boolean, sqltypes.Uuid,
)
# MariaDB keeps JSON as LONGTEXT with this check; SQLAlchemy reflects it as LONGTEXT.
MARIADB_JSON_CHECK = "json_valid("


class _CastAsDouble(FunctionElement):
    """CAST(x AS DOUBLE PRECISION); SQLAlchemy skips a CAST to DOUBLE on MariaDB, which this needs."""

    type = sa.Double()
    name = "cast_as_double"
    inherit_cache = True


@compiles(_CastAsDouble)
def _cast_as_double(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE PRECISION)"


@compiles(_CastAsDouble, "mysql")
def _cast_as_double_mysql(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AS DOUBLE)"


def is_exact_decimal(sql_type: Any) -> bool:
    return isinstance(sql_type, sqltypes.Numeric) and not isinstance(sql_type, sqltypes.Float)


def carried_as_text(sql_type: Any) -> bool:
    """A decimal with no fixed precision, or more digits than Arrow's decimals hold: it travels as text."""
    return is_exact_decimal(sql_type) and (sql_type.precision is None or sql_type.precision > ARROW_DECIMAL_DIGITS)


def is_four_byte_float(sql_type: Any) -> bool:
    if isinstance(sql_type, sqltypes.Float) and not isinstance(sql_type, sqltypes.Double):
        # SQLAlchemy reflects MariaDB's FLOAT(p > 24) as DOUBLE, and PostgreSQL's float(p > 24) as DOUBLE_PRECISION.
        return not isinstance(sql_type, (mysql.DOUBLE, postgresql.DOUBLE_PRECISION))
    return False


def hint_type(sql_type: Any) -> Any:
    """The type dlt derives the destination column from (a ``type_adapter_callback``)."""
    if isinstance(sql_type, sqltypes.Float):
        return sa.Double()  # float and double both land as double precision, exactly (4-byte floats widened)
    if isinstance(sql_type, sqltypes.Integer) and getattr(sql_type, "unsigned", False) and isinstance(
        sql_type, sqltypes.BigInteger
    ):
        return sa.Numeric(20, 0)  # BIGINT UNSIGNED reaches 18446744073709551615, past int64
    if isinstance(sql_type, sqltypes.DateTime) and not sql_type.timezone:
        return sa.DateTime(timezone=True)  # a timestamp without zone is taken as UTC
    if isinstance(sql_type, (postgresql.BIT, mysql.BIT)):
        return sa.Boolean() if _is_single_bit(sql_type) else sa.Text()
    if isinstance(sql_type, sqltypes.Time) and (sql_type.timezone or isinstance(sql_type, mysql.TIME)):
        return sa.Text()  # time with zone keeps its offset; MariaDB TIME spans -838:59:59..838:59:59
    if isinstance(sql_type, mysql.YEAR):
        return sa.Integer()
    if isinstance(sql_type, (sqltypes.Enum, mysql.SET)):
        return sa.Text()
    if isinstance(sql_type, sqltypes.ARRAY):
        return sa.JSON()
    if not isinstance(sql_type, DLT_MAPPED_TYPES):
        return sa.Text()  # interval, money, xml, inet, ...: PostgreSQL's text form of the value
    return sql_type


def read_expression(column: sa.Column, dialect: str) -> Any:
    """What the SELECT reads for ``column`` so that the value arrives exactly; labelled with the column's name."""
    sql_type = column.type
    if is_four_byte_float(sql_type):
        # Drivers get the digits the server prints (MariaDB: 6), not the stored value; widened to double it is exact.
        expression = _CastAsDouble(column)
    elif isinstance(sql_type, sqltypes.Float):
        expression = sa.type_coerce(column, sa.Double())  # not through SQLAlchemy's float-to-Decimal conversion
    elif is_exact_decimal(sql_type) and (carried_as_text(sql_type) or dialect == "sqlite"):
        # SQLite stores decimals as 8-byte floats: its own text of the value has the digits that were written.
        expression = sa.cast(column, sa.Text())
    elif isinstance(sql_type, postgresql.BIT):
        text = sa.cast(column, sa.Text())
        expression = sa.cast(text, sa.Boolean()) if _is_single_bit(sql_type) else text
    elif isinstance(sql_type, mysql.BIT):
        if _is_single_bit(sql_type):
            expression = sa.type_coerce(column != 0, sa.Boolean())
        else:  # its n binary digits, leading zeros included
            expression = sa.type_coerce(sa.func.lpad(sa.func.bin(column), sql_type.length or 1, "0"), sa.Text())
    elif isinstance(sql_type, mysql.YEAR):
        expression = sa.type_coerce(sa.cast(column, sa.Integer()), sa.Integer())
    elif isinstance(sql_type, sqltypes.ARRAY):
        expression = sa.cast(sa.func.array_to_json(column), sa.Text())  # nested arrays become nested JSON arrays
    elif isinstance(sql_type, sqltypes.JSON):
        expression = sa.cast(column, sa.Text()) if dialect == "postgresql" else sa.type_coerce(column, sa.Text())
    elif isinstance(sql_type, (sqltypes.Enum, mysql.SET)):
        expression = sa.cast(column, sa.Text()) if dialect == "postgresql" else sa.type_coerce(column, sa.Text())
    elif isinstance(sql_type, sqltypes.Uuid) or (isinstance(sql_type, sqltypes.Time) and sql_type.timezone):
        expression = sa.cast(column, sa.Text())
    elif isinstance(sql_type, mysql.TIME):  # [-]HHH:MM:SS.ffffff, as MariaDB prints it
        expression = sa.cast(column, sa.Text())
    elif dialect == "postgresql" and not isinstance(sql_type, DLT_MAPPED_TYPES):
        expression = sa.cast(column, sa.Text())
    else:
        return column
    return expression.label(column.name)


def adapt_reflected_table(table: sa.Table, json_columns: set[str]) -> None:
    """Correct what reflection cannot see: MariaDB JSON columns (LONGTEXT with a json_valid check)."""
    for column in table.columns:
        if column.name in json_columns:
            column.type = mysql.JSON()


def mariadb_json_columns(connection, schema: str | None, table: str) -> set[str]:
    """Columns of a MariaDB table that hold JSON: MariaDB names their json_valid check after the column."""
    rows = connection.execute(
        sa.text(
            "select constraint_name, check_clause from information_schema.check_constraints"
            " where constraint_schema = coalesce(:schema, database()) and table_name = :table"
        ),
        {"schema": schema, "table": table},
    )
    return {name for name, clause in rows if clause.lower().startswith(MARIADB_JSON_CHECK)}


def _is_single_bit(sql_type: Any) -> bool:
    return (getattr(sql_type, "length", None) or 1) == 1 and not getattr(sql_type, "varying", False)
