"""Every rule as a table of rows -> which pass, and the reason given for the ones that do not."""

from __future__ import annotations

from datetime import date

import pytest

from tests.processing.helpers import run


@pytest.mark.parametrize(
    ("rule", "values", "good", "reasons"),
    [
        ({"required": "v"}, ["a", None, " "], ["a"], ["v: missing", "v: blank"]),
        ({"required": ["v"]}, [1, None], [1], ["v: missing"]),
        (
            {"allowed": {"v": ["placed", "shipped"]}},
            ["placed", "lost", None],
            ["placed", None],
            ["v: 'lost' is not one of placed, shipped"],
        ),
        ({"allowed": {"v": [1, 2]}}, [1, 3], [1], ["v: '3' is not one of 1, 2"]),
        (
            {"range": {"v": {"min": 1, "max": 1000}}},
            [0, 1, 1000, 1001, None],
            [1, 1000, None],
            ["v: '0' is below the minimum 1", "v: '1001' is above the maximum 1000"],
        ),
        ({"range": {"v": {"min": 0.5}}}, [0.4, 0.5], [0.5], ["v: '0.4' is below the minimum 0.5"]),
        (
            {"range": {"v": {"min": "2026-01-01"}}},
            [date(2025, 12, 31), date(2026, 1, 1)],
            [date(2026, 1, 1)],
            ["v: '2025-12-31' is below the minimum 2026-01-01"],
        ),
        (
            {"pattern": {"v": r"^[^@\s]+@[^@\s]+$"}},
            ["a@b.c", "a b@c", None],
            ["a@b.c", None],
            [r"v: 'a b@c' does not match ^[^@\s]+@[^@\s]+$"],
        ),
    ],
)
def test_rule(rule, values, good, reasons):
    result = run({"v": values}, rules=[rule])
    assert result.good.get_column("v").to_list() == good
    assert result.rejected.get_column("_reason").to_list() == reasons
    assert set(result.rejected.get_column("_rule")) <= {next(iter(rule))}


def test_a_row_breaking_several_rules_is_reported_once_under_the_first():
    result = run(
        {"id": [None, 2], "status": ["lost", "placed"]},
        rules=[{"required": ["id"]}, {"allowed": {"status": ["placed"]}}],
    )
    assert result.rejected.to_dicts() == [{"id": None, "status": "lost", "_rule": "required", "_reason": "id: missing"}]


def test_rules_see_the_steps_output_but_report_the_original_values():
    result = run(
        {"qty": ["5", "0"], "cust_name": [" Ann ", "Bob"]},
        steps=[{"rename": {"cust_name": "name"}}, {"cast": {"qty": "int"}}, {"trim": ["name"]}],
        rules=[{"range": {"qty": {"min": 1}}}],
    )
    assert result.good.to_dicts() == [{"qty": 5, "name": "Ann"}]
    assert result.rejected.to_dicts() == [
        {"qty": "0", "cust_name": "Bob", "_rule": "range", "_reason": "qty: '0' is below the minimum 1"}
    ]
