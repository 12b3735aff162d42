"""How a quarantine record is treated, and how a replay leaves treated fields alone (no database)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import polars as pl
import pytest

from headwater.common.problems import Problem
from headwater.plugins.manager import step_registry
from headwater.processing import build_plan, values_after_steps
from headwater.project.quarantine_settings import QuarantineSettings, parse_quarantine_settings
from headwater.quarantine.protection import NO_PROTECTION, marks_of, record_protection, redacted

STEPS = [
    {"rename": {"mail": "email"}},
    {"trim": ["email", "note"]},
    {"normalise": {"email": "upper"}},
    {"cast": {"qty": "int"}},
    {"pii": {"email": {"hash": {"salt": "pepper"}}, "phone": "mask", "ssn": "drop"}},
]
RECORD = {"id": 1, "mail": " ada@example.com ", "phone": "+44 20 7946 0958", "ssn": "078-05-1120",
          "name": "Ada Lovelace", "qty": "lots", "note": " hi "}


def protection(steps=STEPS, declared=("name",), keep_declared=False):
    plan = build_plan(steps, [], project_dir=Path("."), registry=step_registry())
    return record_protection(steps, plan, declared, keep_declared)


def digest(value: str, salt: str = "pepper") -> str:
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_a_record_holds_what_the_pii_step_makes_of_the_value_it_would_be_given():
    [protected] = protection().protect([RECORD])
    # Renamed, trimmed and upper-cased before the hash, as a clean load does; the failed cast does not matter.
    assert protected.record == {"id": 1, "mail": digest("ADA@EXAMPLE.COM"), "phone": "+** ** **** 0958",
                                "name": "*** ****lace", "qty": "lots", "note": " hi "}
    fingerprint = hmac.new(b"pepper", b"headwater pii salt", hashlib.sha256).hexdigest()[:8]
    assert protected.marks == {"mail": f"hash:{fingerprint}", "phone": "mask", "ssn": "drop", "name": "mask"}
    assert marks_of(protected.marks_json) == protected.marks
    assert protected.reason("email: ' ada@example.com ' is not valid; ssn 078-05-1120") == (
        f"email: '{digest('ADA@EXAMPLE.COM')}' is not valid; ssn [dropped]")


def test_fields_held_treated_are_left_alone_and_a_broken_line_is_shown_by_its_shape():
    held = {"mail": "hash:00000000", "phone": "mask"}
    record = {"mail": "already-a-hash", "phone": "+** ** **** 0958", "ssn": "078-05-1120",
              "_raw_line": '1,"ada@example.com",078-05-1120'}
    [protected] = protection().protect([record], marks=[held])
    assert protected.record == {"mail": "already-a-hash", "phone": "+** ** **** 0958",
                                "_raw_line": '*,"***@*******.***",***-**-****'}
    assert protected.marks == {**held, "ssn": "drop", "_raw_line": "mask"}
    # A table with no personal column keeps its records, raw lines included, as they are.
    assert protection([{"trim": ["note"]}], declared=()) is NO_PROTECTION
    assert NO_PROTECTION.protect([record])[0].record == record


def test_declared_pii_is_masked_unless_the_project_keeps_it():
    assert protection(declared=("name",)).fields["name"].mode == "mask"
    assert "name" not in protection(declared=("name",), keep_declared=True).fields
    # A declared column a step treats gets the step's treatment; a raw column name finds its renamed field.
    assert protection(declared=("email",)).fields["mail"].mode == "hash"


def test_a_replay_leaves_treated_fields_to_the_steps_after_their_treatment():
    guard = protection()
    [protected] = guard.protect([RECORD])
    treated = guard.treated_fields(protected.marks)
    assert treated == {"mail", "phone", "ssn"}  # name is declared PII without a step: not the step's to skip
    assert guard.steps_for(treated) == [{"rename": {"mail": "email"}}, {"trim": ["note"]}, {"cast": {"qty": "int"}}]
    assert guard.steps_for(frozenset({"phone"}))[-1] == {"pii": {"email": {"hash": {"salt": "pepper"}},
                                                                 "ssn": "drop"}}
    assert guard.dropped(treated) == ["ssn"]


@pytest.mark.parametrize(("marks", "problem"), [
    ({"mail": "hash:00000000"}, "mail is hashed with another salt in quarantine and the table now hashes it"),
    ({"name": "mask"}, "name is masked in quarantine and the table now loads it as it is"),
    ({"note": "drop"}, "note was dropped in quarantine and the table now loads it as it is"),
])
def test_a_field_treated_otherwise_than_the_table_treats_it_now_waits_for_its_value(marks, problem):
    reason = protection().unreplayable({}, marks)
    assert reason.startswith(f"not replayed: {problem}; give the value (--set ")
    assert protection().unreplayable({}, {"phone": "mask", "_raw_line": "mask"}) is None


def test_short_values_are_replaced_in_reasons_only_where_quoted():
    shown = {"Al": "**", "078-05-1120": "[dropped]"}
    assert redacted("name 'Al' at Alpha; ssn 078-05-1120", shown) == "name '**' at Alpha; ssn [dropped]"
    assert redacted(None, shown) is None


def test_values_after_steps_keep_every_row_a_step_rejects_as_it_was():
    plan = build_plan([{"cast": {"qty": "int"}}, {"normalise": {"name": "upper"}}], [], project_dir=Path("."),
                      registry=step_registry())
    frame = pl.DataFrame({"qty": ["1", "lots"], "name": ["ada", "bo"]})
    after = values_after_steps(frame, plan, {0, 1})
    assert after[0].select("qty", "name").rows() == [("1", "ada"), ("lots", "bo")]
    assert after[1].select("name").to_series().to_list() == ["ADA", "BO"]


def test_the_quarantine_block_on_a_source_overrides_the_projects_key_by_key():
    problems: list[Problem] = []
    project = parse_quarantine_settings({"retention": "30d", "declared_pii": "keep"}, ("quarantine",), problems)
    source = parse_quarantine_settings({"retention": "7d"}, ("sources", "s", "quarantine"), problems)
    assert problems == []
    merged = source.over(project)
    assert (merged.retention.days, merged.keeps_declared_pii) == (7, True)
    assert QuarantineSettings().over(QuarantineSettings()).retention is None

    parse_quarantine_settings({"retention": "soon", "declared_pii": "hide", "keep": 1}, ("quarantine",), problems)
    assert [(".".join(p.key_path), p.message) for p in problems] == [
        ("quarantine.keep", "unknown key; allowed: retention, declared_pii"),
        ("quarantine.retention", "expected a duration such as 30m, 26h, 2d or 1w, got 'soon': how long rows "
                                 "replayed or superseded are kept, e.g. 30d"),
        ("quarantine.declared_pii", "unknown choice 'hide'; allowed: mask, keep"),
    ]
