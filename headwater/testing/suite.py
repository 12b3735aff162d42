"""The standard tests every Headwater connector should pass, as a base class for pytest.

A plugin subclasses `ConnectorAcceptanceTests`, names its connector and tables, and implements four
hooks that create a source, add rows to it, create an empty one and say how many rows the first
source holds. Every test gets its own folder and its own empty destination database, writes a
one-source headwater.yaml and loads it through the same code path as `python -m flows.daily`
(`load_project`, the plugin registry, `headwater.load.pipeline.load_source`).
"""

from __future__ import annotations

import copy
import inspect
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from headwater.load.pipeline import SourceLoad
from headwater.plugins.connectors import Connector
from headwater.plugins.manager import PLUGINS_ENV, connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import TABLE_KEYS, ConfigError
from headwater.testing.database import fresh_database
from headwater.testing.project import DATASET, AcceptanceProject, forget_active_pipeline
from headwater.testing.raw import RawDataset, column_identifiers, table_identifier

# Setting names that hold credentials; such a setting must be marked secret so that
# headwater.yaml can only reference it (${NAME}), never contain it.
SECRET_NAME = re.compile(r"(^|_)(password|passwd|token|secret|api_key|apikey|credentials|private_key)$")


class AcceptanceFailure(AssertionError):
    """One or more findings about the connector under test, each saying what to fix."""


class _Findings:
    """Collects every problem a test finds, so one run shows them all instead of the first only."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)

    def raise_if_any(self, title: str) -> None:
        __tracebackhide__ = True  # pytest shows the failing test, not this helper
        if self.problems:
            raise AcceptanceFailure(title + ":\n  - " + "\n  - ".join(self.problems))


class ConnectorAcceptanceTests:
    """Subclass as `TestMyConnector(ConnectorAcceptanceTests)` to run the standard connector tests.

    Set `connector` (registered name), `package` (distribution expected to provide it, or None) and
    `tables` (table options exactly as in headwater.yaml), and implement `make_source`, `add_rows`,
    `make_empty_source` and `expected_rows`. `set_env` and `add_cleanup` help hooks that need a
    secret in the environment or something to tear down after the test.
    """

    # The base class holds no test of its own; __init_subclass__ turns collection on for subclasses.
    __test__ = False

    connector: str | None = None
    package: str | None = None
    tables: dict[str, dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass may still opt out (an intermediate base shared by several test classes).
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    # -- hooks a connector's test class implements ------------------------------------------

    def make_source(self, workdir: Path) -> dict[str, Any]:
        """Create a source holding its initial rows in `workdir`; return the connector's settings."""
        raise NotImplementedError(self._missing_hook("make_source(self, workdir: Path) -> dict"))

    def add_rows(self, workdir: Path) -> dict[str, int]:
        """Add new rows to the source make_source created; return how many rows each table gained."""
        raise NotImplementedError(self._missing_hook("add_rows(self, workdir: Path) -> dict[str, int]"))

    def make_empty_source(self, workdir: Path) -> dict[str, Any]:
        """Create a source with no rows at all in `workdir`; return the connector's settings."""
        raise NotImplementedError(self._missing_hook("make_empty_source(self, workdir: Path) -> dict"))

    def expected_rows(self) -> dict[str, int]:
        """Rows per table in the source right after make_source."""
        raise NotImplementedError(self._missing_hook("expected_rows(self) -> dict[str, int]"))

    # -- helpers for the hooks ---------------------------------------------------------------

    def set_env(self, name: str, value: str) -> str:
        """Set an environment variable for this test only; returns the `${NAME}` reference to put in settings."""
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        os.environ[name] = value
        return "${" + name + "}"

    def add_cleanup(self, callback: Callable[[], Any]) -> None:
        """Run callback after the test (last added, first run), e.g. to stop a server or drop a database."""
        self._cleanups.append(callback)

    # -- fixtures ----------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _acceptance_test_context(self, tmp_path: Path) -> Iterator[None]:
        """A folder of its own for every test, and the environment and cleanups put back afterwards."""
        # The source lives apart from the project, so a glob over the source folder never sees headwater.yaml.
        self._workdir = tmp_path / "source"
        self._workdir.mkdir()
        self._project_dir = tmp_path / "project"
        self._saved_env: dict[str, str | None] = {}
        self._cleanups: list[Callable[[], Any]] = []
        try:
            yield
        finally:
            errors = []
            for callback in reversed(self._cleanups):
                try:
                    callback()
                except Exception as error:  # every cleanup runs even if one fails
                    errors.append(f"{getattr(callback, '__name__', callback)!s}: {type(error).__name__}: {error}")
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            # dlt keeps the last pipeline active for the process; code run after this test (another test
            # calling the source directly, say) would otherwise read this test's incremental state.
            forget_active_pipeline()
            if errors:
                raise RuntimeError("cleanup registered with add_cleanup failed:\n  " + "\n  ".join(errors))

    @pytest.fixture
    def acceptance_destination(self) -> Iterator[PostgresAddress]:
        """An empty destination database for this test only, dropped afterwards."""
        with fresh_database() as address:
            yield address

    # -- the standard tests ------------------------------------------------------------------

    def test_connector_is_discovered(self) -> None:
        name = self._connector_name()
        registry = connector_registry()
        connector = registry.get(name)
        if connector is None:
            raise AcceptanceFailure(
                f"connector {name!r} is not registered; installed connectors: {', '.join(registry.names()) or 'none'}."
                f"{_plugin_hints(registry.problems)}"
            )
        if self.package is not None:
            assert _canonical(connector.plugin.package) == _canonical(self.package), (
                f"connector {name!r} comes from package {connector.plugin.package!r} "
                f"(plugin {connector.plugin.name!r}), expected {self.package!r}: another installed package "
                "registers the same name first, or `package` is misspelt"
            )
        package = self.package or connector.plugin.package
        own = [problem for problem in registry.problems if f"({_canonical(package)})" in _canonical(problem)]
        assert not own, f"the plugin registry reports problems for package {package!r}:\n  " + "\n  ".join(own)

    def test_settings_schema_is_valid(self) -> None:
        connector = self._registered_connector()
        findings = _Findings()
        findings.check(
            bool(connector.description),
            f"connector {connector.name!r} has no description: give its source function a docstring "
            "or pass register(..., description=...)",
        )
        for setting in connector.settings():
            if setting.annotation is inspect.Parameter.empty:
                findings.check(
                    False,
                    f"setting {setting.name!r} has no type annotation: annotate the parameter "
                    f"(e.g. `{setting.name}: str`) so headwater.yaml values are type-checked before a run",
                )
            elif isinstance(setting.annotation, str):
                findings.check(
                    False,
                    f"the annotation {setting.annotation!r} of setting {setting.name!r} cannot be evaluated: "
                    "import the names it uses at module level",
                )
            findings.check(
                setting.secret or not SECRET_NAME.search(setting.name.lower()),
                f"setting {setting.name!r} looks like a credential but is not marked secret: default it to "
                f"dlt.secrets.value (or register(..., secrets=[{setting.name!r}])) so headwater.yaml can only "
                "reference it as ${NAME}",
            )
        findings.raise_if_any(f"the settings of connector {connector.name!r} are not a usable config contract")

        project = self._project(self._call_make_source())
        self._check_tables_are_resources(project)

    def test_loads_into_postgres(self, acceptance_destination: PostgresAddress) -> None:
        project = self._project(self._call_make_source())
        expected = self._expected_rows()
        load = self._run(project, acceptance_destination, "the first run")

        raw = RawDataset(acceptance_destination, DATASET)
        findings = _Findings()
        for table in self.tables:
            loaded = _rows_loaded(load, table)
            findings.check(
                loaded == expected[table],
                f"the first run loaded {loaded} rows into {table}, expected {expected[table]} "
                "(expected_rows()): does the connector read every row of the source, and only those?",
            )
            stored = raw.row_count(table)
            findings.check(
                stored == expected[table],
                f"{raw.qualified(table)} holds {stored} rows after the first run, expected {expected[table]}",
            )
            self._check_no_duplicate_keys(raw, table, "the first run", findings)
        findings.raise_if_any("loading the source into Postgres gave the wrong rows")

    def test_second_run_without_new_data_adds_nothing(self, acceptance_destination: PostgresAddress) -> None:
        project = self._project(self._call_make_source())
        self._run(project, acceptance_destination, "the first run")
        raw = RawDataset(acceptance_destination, DATASET)
        after_first = {table: raw.row_count(table) for table in self.tables}

        second = self._run(project, acceptance_destination, "the second run")
        findings = _Findings()
        for table in self.tables:
            loaded = _rows_loaded(second, table)
            findings.check(
                loaded == 0,
                f"the second run loaded {loaded} rows into {table}, expected 0 as nothing changed in the source: "
                "is the resource incremental (a `cursor` in tables, or an incremental parameter/cursor in the "
                "connector)?",
            )
            stored = raw.row_count(table)
            findings.check(
                stored == after_first[table],
                f"{raw.qualified(table)} holds {stored} rows after the second run but {after_first[table]} after "
                "the first: rows already loaded were appended again; give the table a primary_key (merge) or "
                "make the resource incremental",
            )
            self._check_no_duplicate_keys(raw, table, "the second run", findings)
        findings.raise_if_any("running again without new data changed the destination")

    def test_incremental_run_loads_only_new_rows(self, acceptance_destination: PostgresAddress) -> None:
        project = self._project(self._call_make_source())
        expected = self._expected_rows()
        self._run(project, acceptance_destination, "the first run")
        added = self._call_add_rows()
        second = self._run(project, acceptance_destination, "the run after add_rows()")

        raw = RawDataset(acceptance_destination, DATASET)
        findings = _Findings()
        for table in self.tables:
            loaded, new = _rows_loaded(second, table), added.get(table, 0)
            if loaded > new:
                findings.check(
                    False,
                    f"the run after add_rows() loaded {loaded} rows into {table}, expected {new} (the rows "
                    "add_rows() added): it read rows that were already loaded again; is the resource incremental "
                    "(a `cursor` in tables, or an incremental parameter/cursor in the connector)?",
                )
            elif loaded < new:
                findings.check(
                    False,
                    f"the run after add_rows() loaded {loaded} rows into {table}, expected {new} (the rows "
                    "add_rows() added): new rows were missed; does the incremental cursor skip past them "
                    "(add_rows() must give new rows later cursor values / modification times)?",
                )
            total, want = raw.row_count(table), expected[table] + new
            findings.check(
                total == want,
                f"{raw.qualified(table)} holds {total} rows after the second run, expected {want} "
                f"({expected[table]} from make_source() + {new} from add_rows())",
            )
            self._check_no_duplicate_keys(raw, table, "the run after add_rows()", findings)
        findings.raise_if_any("the incremental run did not load exactly the new rows")

    def test_empty_source_works(self, acceptance_destination: PostgresAddress) -> None:
        project = self._project(self._call_make_empty_source(), hook="make_empty_source()")
        load = self._run(project, acceptance_destination, "loading the empty source")
        loaded = {table.table: table.rows for table in load.tables if table.rows}
        assert not loaded, (
            f"loading the source from make_empty_source() loaded rows, expected none: {loaded}; "
            "make_empty_source() must describe a source without any rows"
        )

    def test_schema_is_stable(self, acceptance_destination: PostgresAddress) -> None:
        project = self._project(self._call_make_source())
        expected = self._expected_rows()
        self._run(project, acceptance_destination, "the first run")
        raw = RawDataset(acceptance_destination, DATASET)
        before = {table: raw.columns(table) for table in self.tables}
        missing = [table for table in self.tables if expected[table] and not before[table]]
        assert not missing, (
            f"after the first run there is no table {', '.join(raw.qualified(t) for t in missing)} although "
            "expected_rows() promised rows for it: does the resource name match the table name?"
        )

        # The run that brings new rows is where inferred types drift (another file, another page).
        self._call_add_rows()
        self._run(project, acceptance_destination, "the run after add_rows()")
        findings = _Findings()
        for table, columns in before.items():
            if columns:
                findings.check(columns == raw.columns(table), _schema_change(raw, table, columns))
        findings.raise_if_any("the raw tables' columns changed between runs")

    # -- internals ---------------------------------------------------------------------------

    def _connector_name(self) -> str:
        if not self.connector:
            raise AcceptanceFailure(
                f"{type(self).__name__} does not say which connector to test: set the class attribute "
                '`connector = "<registered name>"`'
            )
        return self.connector

    def _registered_connector(self) -> Connector:
        name = self._connector_name()
        connector = connector_registry().get(name)
        if connector is None:
            raise AcceptanceFailure(
                f"connector {name!r} is not registered (see test_connector_is_discovered)."
                f"{_plugin_hints(connector_registry().problems)}"
            )
        return connector

    def _checked_tables(self) -> dict[str, dict[str, Any]]:
        tables = self.tables
        if not isinstance(tables, dict) or not tables:
            raise AcceptanceFailure(
                f"{type(self).__name__}.tables must name at least one table, as in headwater.yaml, e.g. "
                "{'items': {'primary_key': 'id'}}"
            )
        for name, options in tables.items():
            unknown = sorted(set(options or {}) - TABLE_KEYS)
            if unknown:
                raise AcceptanceFailure(
                    f"{type(self).__name__}.tables[{name!r}] has unknown option(s) {', '.join(unknown)}; "
                    f"allowed: {', '.join(sorted(TABLE_KEYS))}"
                )
        return copy.deepcopy(tables)

    def _project(self, settings: dict[str, Any], hook: str = "make_source()") -> AcceptanceProject:
        name = self._connector_name()
        try:
            return AcceptanceProject.write(self._project_dir, name, settings, self._checked_tables())
        except ConfigError as error:
            raise AcceptanceFailure(
                f"headwater.yaml made from the settings of {hook} and `tables` is rejected by Headwater's "
                f"config validation:\n{error}"
            ) from None
        except yaml.YAMLError as error:
            raise AcceptanceFailure(
                f"the settings of {hook} cannot be written to headwater.yaml ({error}); use values a YAML file "
                "can hold: str, int, float, bool, date, datetime, lists and dicts of those"
            ) from None

    def _run(self, project: AcceptanceProject, address: PostgresAddress, label: str) -> SourceLoad:
        __tracebackhide__ = True
        load = project.load(address)
        if not load.ok:
            raise AcceptanceFailure(f"{label} of connector {project.connector.name!r} failed: {load.error}")
        return load

    def _check_tables_are_resources(self, project: AcceptanceProject) -> None:
        """Every configured table must be a resource of the source the settings build."""
        try:
            built = project.connector.source(**project.config.resolved_settings(project.source))
        except Exception as error:
            raise AcceptanceFailure(
                f"calling connector {project.connector.name!r} with the settings of make_source() failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        resources = getattr(built, "resources", None)
        names = set(resources.keys()) if resources is not None else {getattr(built, "name", "")}
        missing = [table for table in self.tables if table not in names]
        assert not missing, (
            f"table(s) {', '.join(missing)} in `tables` are not resources of connector {project.connector.name!r} "
            f"with the settings of make_source(); it provides: {', '.join(sorted(names)) or 'none'}"
        )

    def _check_no_duplicate_keys(self, raw: RawDataset, table: str, after: str, findings: _Findings) -> None:
        key = (self.tables[table] or {}).get("primary_key")
        if not key:
            return
        duplicates = raw.duplicate_keys(table, key)
        columns = column_identifiers(key)
        examples = [
            ", ".join(f"{column}={value!r}" for column, value in zip(columns, row[:-1], strict=True))
            + f" ({row[-1]} rows)"
            for row in duplicates
        ]
        findings.check(
            not duplicates,
            f"{raw.qualified(table)} has duplicate primary keys after {after}, e.g. {'; '.join(examples)}: "
            "rows are appended instead of merged; check write_disposition and primary_key",
        )

    def _call_make_source(self) -> dict[str, Any]:
        return _expect_settings(self.make_source(self._workdir), "make_source()")

    def _call_make_empty_source(self) -> dict[str, Any]:
        return _expect_settings(self.make_empty_source(self._workdir), "make_empty_source()")

    def _call_add_rows(self) -> dict[str, int]:
        added = self.add_rows(self._workdir)
        self._check_counts(added, "add_rows()", complete=False)
        assert sum(added.values()) > 0, (
            f"add_rows() returned {added}: it must add at least one row, or the incremental tests prove nothing"
        )
        return added

    def _expected_rows(self) -> dict[str, int]:
        expected = self.expected_rows()
        self._check_counts(expected, "expected_rows()", complete=True)
        assert sum(expected.values()) > 0, (
            f"expected_rows() returned {expected}: make_source() must create at least one row"
        )
        return expected

    def _check_counts(self, counts: Any, hook: str, complete: bool) -> None:
        """A hook's rows-per-table answer must use the names in `tables` and whole, non-negative counts."""
        if not isinstance(counts, dict):
            raise AcceptanceFailure(f"{hook} must return a dict of table name -> rows, got {type(counts).__name__}")
        unknown = sorted(set(counts) - set(self.tables))
        missing = sorted(set(self.tables) - set(counts)) if complete else []
        bad = {table: n for table, n in counts.items() if not isinstance(n, int) or isinstance(n, bool) or n < 0}
        problems = []
        if unknown:
            problems.append(f"names tables that are not in `tables`: {', '.join(map(str, unknown))}")
        if missing:
            problems.append(f"has no count for table(s) {', '.join(missing)}")
        if bad:
            problems.append(f"has counts that are not whole numbers >= 0: {bad}")
        if problems:
            raise AcceptanceFailure(f"{hook} returned {counts}, which " + "; ".join(problems))

    def _missing_hook(self, signature: str) -> str:
        return f"{type(self).__name__} must implement `def {signature}` for the connector acceptance tests"


def _expect_settings(settings: Any, hook: str) -> dict[str, Any]:
    if not isinstance(settings, dict):
        raise AcceptanceFailure(
            f"{hook} must return the connector's settings as a dict (the `settings:` of headwater.yaml), "
            f"got {type(settings).__name__}"
        )
    return settings


def _rows_loaded(load: SourceLoad, table: str) -> int:
    """Rows the load wrote into `table` (dlt reports tables under their normalized names)."""
    names = {table, table_identifier(table)}
    return sum(entry.rows for entry in load.tables if entry.table in names)


def _schema_change(raw: RawDataset, table: str, before: dict[str, str]) -> str:
    after = raw.columns(table)
    changes = [f"added {name} {after[name]}" for name in after if name not in before]
    changes += [f"removed {name}" for name in before if name not in after]
    changes += [
        f"{name} changed from {before[name]} to {after[name]}"
        for name in before
        if name in after and before[name] != after[name]
    ]
    return (
        f"{raw.qualified(table)} changed after the run that loaded add_rows()'s rows: {'; '.join(changes)}. "
        "Declare column types in the connector (columns= hints or a typed Arrow schema) instead of relying on "
        "inference from each batch"
    )


def _canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): case and -, _, . do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _plugin_hints(problems: list[str]) -> str:
    hints = [
        " Is the plugin package installed in this environment (`pip install -e .`), and does its "
        "pyproject.toml declare `[project.entry-points.headwater]` pointing at the module with the "
        "register_connectors hook?"
    ]
    if os.environ.get(PLUGINS_ENV) is not None:
        hints.append(f" ${PLUGINS_ENV}={os.environ[PLUGINS_ENV]!r} limits which plugins load.")
    if problems:
        hints.append(" The registry reports:\n  " + "\n  ".join(problems))
    return "".join(hints)
