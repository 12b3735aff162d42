"""Which quarantined rows `--rule`, `--location` and `--where` pick, and the text a record's values match as."""

from __future__ import annotations

import pytest

from headwater.quarantine.selection import Selection, parse_assignment, shown_fields, value_text

RECORD = {"id": 2, "email": None, "paid": True, "amount": 12.5, "note": "a=b", "_file_name": "o.csv", "_line": 3}


def test_values_read_as_show_prints_them_and_file_columns_are_left_to_the_location():
    assert [value_text(value) for value in (2, None, True, 12.5, "a=b", "crème")] == [
        "2", "null", "true", "12.5", "a=b", "crème"]
    assert shown_fields(RECORD) == [("id", "2"), ("email", "null"), ("paid", "true"), ("amount", "12.5"),
                                    ("note", "a=b")]
    # A whole file that could not be read has no line to show; an unreadable line shows its text.
    assert shown_fields({"_file_name": "o.parquet", "_raw_line": None}) == []
    assert shown_fields({"_raw_line": "3,x,,", "_line": 4}) == [("_raw_line", "3,x,,")]
    assert shown_fields("not an object") == [("record", "not an object")]


def test_every_filter_given_must_match():
    match = Selection(rule="pattern", locations=("o.csv:3", "o.csv:9"), fields=(("id", "2"), ("email", "null")))
    assert match.matches("pattern", "o.csv:3", RECORD)
    assert not match.matches("range", "o.csv:3", RECORD)
    assert not match.matches("pattern", "o.csv:4", RECORD)
    assert not match.matches("pattern", "o.csv:3", {**RECORD, "id": 3})
    assert not match.matches("pattern", "o.csv:3", "not an object")
    assert Selection().everything and Selection().matches("any", "anywhere", None)
    assert match.describe() == "rule pattern, location o.csv:3 or o.csv:9, id=2, email=null"
    assert Selection().describe() == "every quarantined row"


def test_assignments_split_at_the_first_equals_sign():
    assert parse_assignment("note=a=b") == ("note", "a=b")
    assert parse_assignment(" email =") == ("email", "")
    for text in ("email", "=x"):
        with pytest.raises(ValueError, match=f"expected FIELD=VALUE, e.g. qty=5; got {text!r}"):
            parse_assignment(text)
