"""The plan as a whole: row accounting, metadata columns, plugin steps, and the config errors validate_plan gives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from headwater.common.interpolation import Variables
from headwater.hookspecs import hookimpl
from headwater.plugins.connectors import Plugin
from headwater.plugins.manager import register_steps_of
from headwater.processing import PlanError, StepError, StepRegistry, build_plan, validate_plan
from tests.processing.helpers import run

PLUGIN = Plugin(name="acme", package="headwater-acme", version="1.0")


def test_every_row_is_either_good_or_rejected_once_with_its_original_values():
    frame = pl.DataFrame(
        {"id": ["1", "x", "3", "4"], "status": ["placed", "placed", "lost", "placed"], "_line": [2, 3, 4, 5]}
    )
    result = run(frame, steps=[{"cast": {"id": "int"}}], rules=[{"allowed": {"status": ["placed"]}}])
    assert result.good.to_dict(as_series=False) == {"id": [1, 4], "status": ["placed", "placed"], "_line": [2, 5]}
    assert result.rejected.to_dict(as_series=False) == {
        "id": ["x", "3"],
        "status": ["placed", "lost"],
        "_line": [3, 4],
        "_rule": ["cast", "allowed"],
        "_reason": ["id: 'x' is not an int", "status: 'lost' is not one of placed"],
    }
    assert result.good.height + result.rejected.height == frame.height


def test_no_rejects_gives_an_empty_frame_with_the_input_columns():
    result = run({"id": [1]}, rules=[{"required": ["id"]}])
    assert result.rejected.schema == pl.Schema({"id": pl.Int64, "_rule": pl.String, "_reason": pl.String})


class AcmePlugin:
    """A plugin as a package would write it: one hook implementation registering one step."""

    @staticmethod
    def only_big(frame: pl.DataFrame, options) -> pl.DataFrame:
        """Keep orders of at least `min`; upper-case everything else it sees, metadata included."""
        return frame.filter(pl.col("amount") >= options["min"]).with_columns(pl.col("_file_name").str.to_uppercase())

    @hookimpl
    def register_steps(self, register):
        register("only_big", self.only_big, description="keep big orders")


@pytest.fixture
def registry() -> StepRegistry:
    registry = StepRegistry()
    register_steps_of(PLUGIN, AcmePlugin(), registry)
    return registry


def test_a_plugin_step_runs_in_order_and_rows_it_removes_are_reported(registry):
    assert registry.problems == []
    assert registry.get("only_big").description == "keep big orders"
    result = run(
        {"amount": ["5", "50"], "_file_name": ["a.csv", "b.csv"]},
        steps=[{"cast": {"amount": "int"}}, {"only_big": {"min": 10}}],
        registry=registry,
    )
    assert result.good.to_dicts() == [{"amount": 50, "_file_name": "b.csv"}]  # `_` columns pass untouched
    assert result.rejected.to_dicts() == [
        {"amount": "5", "_file_name": "a.csv", "_rule": "only_big", "_reason": "removed by step 'only_big'"}
    ]


@pytest.mark.parametrize(
    ("name", "function", "problem"),
    [
        ("Bad-Name", lambda frame, options: frame, "step name 'Bad-Name' is invalid"),
        ("cast", lambda frame, options: frame, "registers step 'cast', a built-in name; the built-in is kept"),
        ("fine", "not callable", "step 'fine': expected a function(frame, options), got str"),
    ],
)
def test_a_broken_step_registration_is_reported_by_plugin(name, function, problem):
    class Broken:
        @hookimpl
        def register_steps(self, register):
            register(name, function)

    registry = StepRegistry()
    register_steps_of(PLUGIN, Broken(), registry)
    assert registry.names() == []
    assert len(registry.problems) == 1
    assert registry.problems[0].startswith("plugin 'acme' (headwater-acme)")
    assert problem in registry.problems[0]


def test_a_plugin_raising_in_its_step_is_named():
    def boom(frame, options):
        raise RuntimeError("no network")

    registry = StepRegistry()
    registry.registrar(PLUGIN)("boom", boom)
    with pytest.raises(
        StepError, match=r"steps.0.boom: step 'boom' \(plugin 'acme'\) failed: RuntimeError: no network"
    ):
        run({"a": [1]}, steps=[{"boom": None}], registry=registry)


WHERE = ("sources", "shop_files", "tables", "orders")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("PII_SALT", "pepper")
    monkeypatch.delenv("UNSET_SALT", raising=False)
    (tmp_path / "countries.csv").write_text("code,name\nDE,Germany\nDE,Deutschland\n")
    return tmp_path


def problems_of(steps, rules=(), project: Path = Path("."), registry=None) -> list[str]:
    problems = []
    variables = Variables(project, project / ".headwater" / "secrets.env")
    validate_plan(
        steps,
        list(rules),
        WHERE,
        problems,
        project_dir=project,
        variables=variables,
        registry=registry or StepRegistry(),
    )
    return [".".join(map(str, problem.key_path)) + ": " + problem.message for problem in problems]


P = "sources.shop_files.tables.orders"


@pytest.mark.parametrize(
    ("steps", "rules", "expected"),
    [
        (
            [{"rename": {"a": "b"}}, {"trim": ["a"]}, {"cast": {"ordered_at": "datetim"}}],
            [],
            f"{P}.steps.2.cast.ordered_at: unknown type 'datetim'; allowed: str, int, float, bool, date, timestamp, "
            "decimal(p,s)",
        ),
        ([{"cast": {"p": "decimal(40,2)"}}], [], f"{P}.steps.0.cast.p: decimal(40,2): precision must be 1-38"),
        ([{"renme": {"a": "b"}}], [], f"{P}.steps.0.renme: unknown step 'renme'; did you mean 'rename'? available: "),
        ([], [{"requierd": ["id"]}], f"{P}.rules.0.requierd: unknown rule 'requierd'; did you mean 'required'?"),
        (["trim"], [], f"{P}.steps.0: each step is a mapping with one key, e.g. {{rename: {{old: new}}}}; got 'trim'"),
        (
            [{"normalise": {"email": "lowercase"}}],
            [],
            f"{P}.steps.0.normalise.email: unknown mode 'lowercase'; allowed: lower",
        ),
        ([{"derive": {"total": "quantity *"}}], [], f"{P}.steps.0.derive.total: invalid SQL expression 'quantity *'"),
        ([{"rename": {"_line": "line"}}], [], f"{P}.steps.0.rename._line: column '_line' starts with '_'"),
        (
            [{"pii": {"email": {"hash": {"salt": "pepper"}}}}],
            [],
            f"{P}.steps.0.pii.email.hash.salt: the salt is a secret; do not write it in the file, reference it as "
            "${PII_SALT}",
        ),
        (
            [{"pii": {"email": {"hash": {"salt": "${UNSET_SALT}"}}}}],
            [],
            f"{P}.steps.0.pii.email.hash.salt: ${{UNSET_SALT}} is not set",
        ),
        ([{"pii": {"email": "hash"}}], [], f"{P}.steps.0.pii.email.hash: hash needs exactly a salt from a secret"),
        (
            [{"pii": {"email": "shred"}}],
            [],
            f"{P}.steps.0.pii.email: unknown pii mode 'shred'; allowed: drop, mask, hash",
        ),
        ([{"lookup": {"file": "nope.csv", "on": "code"}}], [], f"{P}.steps.0.lookup.file: file "),
        (
            [{"lookup": {"file": "countries.csv", "on": "code"}}],
            [],
            f"{P}.steps.0.lookup: countries.csv: key ('DE',) appears more than once",
        ),
        (
            [{"lookup": {"file": "countries.csv", "on": "iso", "missing": "drop"}}],
            [],
            f"{P}.steps.0.lookup.missing: unknown value 'drop'; allowed: null, reject",
        ),
        ([], [{"range": {"qty": {"minimum": 1}}}], f"{P}.rules.0.range.qty: expected {{min: ..., max: ...}}"),
        ([], [{"pattern": {"email": "(["}}], f"{P}.rules.0.pattern.email: invalid regular expression '(['"),
        ([], [{"allowed": {"status": "placed"}}], f"{P}.rules.0.allowed.status: expected a list of allowed values"),
    ],
)
def test_validate_plan_reports_with_key_path(project, steps, rules, expected):
    problems = problems_of(steps, rules, project)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_valid_plan_has_no_problems_and_references_are_allowed(project, registry):
    steps = [
        {"rename": {"cust_name": "name"}},
        {"cast": {"signup_date": "date", "price": "decimal(12,2)", "quantity": "int"}},
        {"trim": ["name", "email"]},
        {"normalise": {"email": "lower", "name": "title"}},
        {"derive": {"total": "quantity * price"}},
        {"pii": {"email": {"hash": {"salt": "${PII_SALT}"}}, "phone": "mask", "ssn": "drop"}},
        {"only_big": {"min": 1}},
    ]
    rules = [{"required": ["customer_id"]}, {"range": {"quantity": {"min": 1, "max": 1000}}}]
    assert problems_of(steps, rules, project, registry) == []


def test_build_plan_refuses_what_validation_refuses():
    with pytest.raises(PlanError, match=r"steps.0.cast.v: unknown type 'datetim'"):
        build_plan([{"cast": {"v": "datetim"}}], [], project_dir=Path("."), registry=StepRegistry())


def test_a_bad_step_in_headwater_yaml_is_a_config_error_with_its_line(tmp_path):
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import ConfigError, load_project

    (tmp_path / "landing").mkdir()
    (tmp_path / "headwater.yaml").write_text(
        "sources:\n"
        "  shop_files:\n"
        "    connector: filesystem\n"
        "    settings: {bucket_url: landing}\n"
        "    tables:\n"
        "      orders:\n"
        "        steps:\n"
        "          - rename: {a: b}\n"
        "          - trim: [b]\n"
        "          - cast: {ordered_at: datetim}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path / "headwater.yaml", connector_registry())
    assert (
        "headwater.yaml:10: sources.shop_files.tables.orders.steps.2.cast.ordered_at: unknown type 'datetim'; "
        "allowed: str, int, float, bool, date, timestamp, decimal(p,s)"
    ) in str(raised.value)
