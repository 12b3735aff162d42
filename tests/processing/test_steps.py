"""Every built-in step as a table of input -> output, and the rows `cast` and `lookup` reject."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import polars as pl
import pytest

from headwater.processing import StepError
from headwater.processing.pii import hashed
from tests.processing.helpers import run

UTC = timezone.utc


def test_rename():
    result = run({"cust_name": ["Ann"], "_line": [1]}, steps=[{"rename": {"cust_name": "name"}}])
    assert result.good.columns == ["name", "_line"]


@pytest.mark.parametrize(
    ("type_", "values", "expected"),
    [
        ("int", ["1", " 2 ", "", None], [1, 2, None, None]),
        ("float", ["1.5", "1e3", "-0"], [1.5, 1000.0, -0.0]),
        ("bool", ["true", "No", "1", "y", "F"], [True, False, True, True, False]),
        ("str", ["a", None], ["a", None]),
        ("date", ["2026-01-31", " 2026-02-01"], [date(2026, 1, 31), date(2026, 2, 1)]),
        ("decimal(12,2)", ["1.5", "12.25"], [Decimal("1.50"), Decimal("12.25")]),
        (
            "timestamp",
            ["2026-01-02T10:11:12Z", "2026-01-02 10:11:12", "2026-01-02T12:11:12.5+02:00", "2026-01-02"],
            [
                datetime(2026, 1, 2, 10, 11, 12, tzinfo=UTC),
                datetime(2026, 1, 2, 10, 11, 12, tzinfo=UTC),
                datetime(2026, 1, 2, 10, 11, 12, 500000, tzinfo=UTC),
                datetime(2026, 1, 2, tzinfo=UTC),
            ],
        ),
        ({"type": "date", "format": "%d.%m.%Y"}, ["31.01.2026"], [date(2026, 1, 31)]),
    ],
)
def test_cast_converts(type_, values, expected):
    result = run({"v": values}, steps=[{"cast": {"v": type_}}])
    assert result.good.get_column("v").to_list() == expected
    assert result.rejected.height == 0


@pytest.mark.parametrize(
    ("type_", "values", "good", "reason"),
    [
        (
            "timestamp",
            ["2026-01-02", "2026-13-45"],
            [datetime(2026, 1, 2, tzinfo=UTC)],
            "v: '2026-13-45' is not a timestamp",
        ),
        ("int", ["1", "1.5"], [1], "v: '1.5' is not an int"),
        ("int", [1.0, 1.5], [1], "v: '1.5' is not an int"),
        ("bool", ["yes", "maybe"], [True], "v: 'maybe' is not a bool"),
        ("date", ["2026-02-28", "2026-02-30"], [date(2026, 2, 28)], "v: '2026-02-30' is not a date"),
        ("decimal(4,2)", ["12.5", "123.5"], [Decimal("12.50")], "v: '123.5' is not a decimal(4,2)"),
    ],
)
def test_cast_rejects_only_the_rows_that_do_not_convert(type_, values, good, reason):
    result = run({"v": values, "_line": [1, 2]}, steps=[{"cast": {"v": type_}}])
    assert result.good.get_column("v").to_list() == good
    assert result.rejected.to_dicts() == [{"v": values[1], "_line": 2, "_rule": "cast", "_reason": reason}]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["name"], {"name": ["a b", ""], "code": [" x ", "y "], "_file_name": [" f ", " g "]}),
        ("all", {"name": ["a b", ""], "code": ["x", "y"], "_file_name": [" f ", " g "]}),
    ],
)
def test_trim(option, expected):
    frame = {"name": ["  a b ", " "], "code": [" x ", "y "], "_file_name": [" f ", " g "]}
    assert run(frame, steps=[{"trim": option}]).good.to_dict(as_series=False) == expected


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("lower", "Ann@Example.COM", "ann@example.com"),
        ("upper", "de", "DE"),
        ("title", "jane DOE", "Jane Doe"),
        ("nfc", "Cafe\u0301", "Caf\u00e9"),
        ("collapse_spaces", "  a   b \t c ", "a b c"),
        (["collapse_spaces", "title"], " jane   doe ", "Jane Doe"),
    ],
)
def test_normalise(mode, value, expected):
    assert run({"v": [value]}, steps=[{"normalise": {"v": mode}}]).good.item() == expected


@pytest.mark.parametrize(
    ("expressions", "column", "expected"),
    [
        ({"full_name": "first_name || ' ' || last_name"}, "full_name", ["Ann Lee"]),
        ({"total": "quantity * unit_price"}, "total", [7.5]),
        ({"total": "quantity * unit_price", "with_tax": "total * 2"}, "with_tax", [15.0]),
        ({"big": "CASE WHEN quantity > 2 THEN 'yes' ELSE 'no' END"}, "big", ["yes"]),
    ],
)
def test_derive(expressions, column, expected):
    frame = {"first_name": ["Ann"], "last_name": ["Lee"], "quantity": [3], "unit_price": [2.5]}
    assert run(frame, steps=[{"derive": expressions}]).good.get_column(column).to_list() == expected


@pytest.fixture
def project(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "countries.csv").write_text("code,country_name\nDE,Germany\nFR,France\n007,Bond\n")
    pl.DataFrame({"code": [1, 2], "tier": ["gold", "silver"]}).write_parquet(tmp_path / "reference" / "tiers.parquet")
    return tmp_path


@pytest.mark.parametrize(
    ("lookup", "frame", "good", "rejected"),
    [
        (
            {"file": "reference/countries.csv", "on": {"country_code": "code"}, "columns": ["country_name"]},
            {"country_code": ["FR", "XX", "007"]},
            {"country_code": ["FR", "XX", "007"], "country_name": ["France", None, "Bond"]},
            [],
        ),
        (
            {"file": "reference/countries.csv", "on": {"country_code": "code"}, "missing": "reject"},
            {"country_code": ["DE", "XX"]},
            {"country_code": ["DE"], "country_name": ["Germany"]},
            [
                {
                    "country_code": "XX",
                    "_rule": "lookup",
                    "_reason": "country_code: 'XX' not found in reference/countries.csv",
                }
            ],
        ),
        (
            {"file": "reference/tiers.parquet", "on": "code", "missing": None},
            {"code": [2, 3]},
            {"code": [2, 3], "tier": ["silver", None]},
            [],
        ),
    ],
)
def test_lookup(project, lookup, frame, good, rejected):
    result = run(frame, steps=[{"lookup": lookup}], project_dir=project)
    assert result.good.to_dict(as_series=False) == good
    assert result.rejected.to_dicts() == rejected


def test_lookup_refuses_to_overwrite_a_column(project):
    with pytest.raises(
        StepError, match="steps.0.lookup: reference/countries.csv would overwrite column .country_name."
    ):
        run(
            {"code": ["DE"], "country_name": ["x"]},
            steps=[{"lookup": {"file": "reference/countries.csv", "on": "code"}}],
            project_dir=project,
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jane.doe@example.com", "j*******@example.com"),
        ("+49 170 1234567", "+** *** ***4567"),
        ("DE89 3704 0044", "**** **** 0044"),
        ("1234", "****"),
        (None, None),
    ],
)
def test_pii_mask_keeps_length_and_shape(value, expected):
    result = run({"v": pl.Series([value], dtype=pl.String)}, steps=[{"pii": {"v": "mask"}}]).good.item()
    assert result == expected
    assert value is None or len(result) == len(value)


def test_pii_hash_is_keyed_by_the_salt_and_keeps_nulls():
    frame = {"email": ["a@x.com", "b@x.com", "a@x.com", None]}
    first = run(frame, steps=[{"pii": {"email": {"hash": {"salt": "one"}}}}]).good.get_column("email").to_list()
    again = run(frame, steps=[{"pii": {"email": {"hash": {"salt": "one"}}}}]).good.get_column("email").to_list()
    other = run(frame, steps=[{"pii": {"email": {"hash": {"salt": "two"}}}}]).good.get_column("email").to_list()
    assert first == again
    assert first[0] == first[2] != first[1] and first[3] is None
    assert all(len(digest) == 64 for digest in first[:3])
    assert set(first[:3]).isdisjoint(other[:3])


def test_pii_hash_is_hmac_sha256():
    import hashlib
    import hmac

    expected = hmac.new(b"salt", b"a@x.com", hashlib.sha256).hexdigest()
    assert hashed(pl.Series(["a@x.com"]), "salt").to_list() == [expected]


def test_pii_drop():
    result = run({"id": [1], "ssn": ["123"]}, steps=[{"pii": {"ssn": "drop"}}])
    assert result.good.columns == ["id"]


def test_a_missing_column_stops_the_batch_with_the_step_named():
    with pytest.raises(StepError, match=r"steps.1.trim: column 'nme' not found; the data has: name"):
        run({"name": ["a"]}, steps=[{"rename": {"name": "name"}}, {"trim": ["nme"]}])
