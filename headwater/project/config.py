"""headwater.yaml: the project's declarative list of sources, read and checked before anything runs.

Every problem is collected and reported together, each naming the file, line and
key and saying what is allowed, so a broken config stops the run before a single
row is written.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.common.interpolation import SECRETS_FILE, Variables
from headwater.common.problems import Problem
from headwater.common.runtime import STATE_DIR
from headwater.common.yaml_source import KeyPath, YamlDocument, YamlSyntaxError, read_yaml
from headwater.plugins.connectors import Connector, ConnectorRegistry
from headwater.plugins.manager import step_registry
from headwater.processing import validate_plan
from headwater.project.alerting import parse_alerts
from headwater.project.deletes import parse_deletes
from headwater.project.deploy_settings import DeploySettings, parse_deploy_settings
from headwater.project.freshness import FreshnessSLA, parse_freshness
from headwater.project.grants import GrantsConfig, parse_grants
from headwater.project.quarantine_settings import QuarantineSettings, parse_quarantine_settings
from headwater.project.run_settings import RunSettings, parse_run_settings
from headwater.project.scalars import column_names, flag, found, key_columns, text
from headwater.project.setting_types import check_setting

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
TOP_LEVEL_KEYS = {"project", "example", "sources", "transform", "quality", "alerts", "catalog", "run", "grants",
                  "quarantine", "deploy"}
SOURCE_KEYS = {"connector", "settings", "tables", "enabled", "freshness", "naming", "quarantine"}
# dlt naming conventions a source may choose: how source names become table and column names.
NAMING_CONVENTIONS = {
    "snake_case": "lower case, non-alphanumerics as _ (the default: ProductType -> product_type)",
    "sql_cs_v1": "names kept as the source writes them, case included (ProductType stays ProductType)",
    "sql_ci_v1": "lower case, otherwise as the source writes them",
    "direct": "every character kept as it is, spaces and punctuation included",
}
TABLE_KEYS = {"primary_key", "cursor", "write_disposition", "deduplicate_by", "deleted_flag", "steps", "rules",
              "freshness", "pii", "deletes"}
CATALOG_KEYS = {"pii_exposure", "site_after_run", "site_dir"}
PII_EXPOSURE_ACTIONS = ("warn", "fail")
WRITE_DISPOSITIONS = ("append", "merge", "replace", "scd2")
# The bundled examples, and the variables each provides to the config while it runs.
EXAMPLES = {"shop": frozenset({"SHOP_API_URL", "SHOP_API_TOKEN"})}
# Keys whose values are credentials wherever they appear in settings: only a ${NAME} reference is accepted.
SECRET_KEYS = {"password", "token", "api_key", "client_secret", "secret", "access_token", "private_key"}


@dataclass(frozen=True)
class TableConfig:
    name: str
    primary_key: str | list[str] | None = None
    cursor: str | None = None
    write_disposition: str | None = None
    # When one load holds several versions of a key, keep the row with the highest value here.
    deduplicate_by: str | None = None
    # Column marking rows the source deleted (true, or a non-null timestamp): they are removed on merge.
    deleted_flag: str | None = None
    # Enrichment steps and row rules, as written in headwater.yaml (validated by headwater.processing).
    steps: tuple[dict, ...] = ()
    rules: tuple[dict, ...] = ()
    # Freshness SLA (headwater.ops.freshness); None inherits the source's, FreshnessSLA() switches it off.
    freshness: FreshnessSLA | None = None
    # Columns holding personal data: lineage follows them to the marts (headwater.lineage.pii).
    pii: tuple[str, ...] = ()
    # Rows whose key is gone from the source: detect (remove) or flag them after each load (headwater.load.deletes).
    deletes: str | None = None

    @property
    def effective_write_disposition(self) -> str:
        """Merge where the data has a key, append where it has none, unless the config says otherwise."""
        if self.write_disposition:
            return self.write_disposition
        return "merge" if self.primary_key else "append"


@dataclass(frozen=True)
class SourceConfig:
    name: str
    connector: str
    settings: dict[str, Any]
    tables: tuple[TableConfig, ...] = ()
    enabled: bool = True
    freshness: FreshnessSLA | None = None  # applies to every table that sets none of its own
    naming: str = "snake_case"  # dlt naming convention for table and column names (NAMING_CONVENTIONS)
    # The source's `quarantine:` block; what it leaves unset comes from the project's (ProjectConfig.quarantine_of).
    quarantine: QuarantineSettings = field(default_factory=QuarantineSettings)

    @property
    def dataset(self) -> str:
        return f"raw_{self.name}"


@dataclass(frozen=True)
class CatalogConfig:
    """The `catalog:` block: what a run does about PII reaching published marts, and the catalog site."""

    pii_exposure: str = "warn"  # warn | fail: a published mart column carries unmasked PII
    site_after_run: bool = False  # regenerate the catalog site at the end of each daily run
    site_dir: Path | None = None  # where the site goes; None: .headwater/site


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    name: str
    sources: tuple[SourceConfig, ...]
    example: str | None = None
    transform_dir: Path | None = None
    quality_dir: Path | None = None
    variables: Variables | None = field(default=None, compare=False, repr=False)
    alerts: tuple = ()  # headwater.project.alerting.AlertConfig, one per entry of `alerts:`
    catalog: "CatalogConfig" = field(default_factory=lambda: CatalogConfig())
    run: RunSettings = field(default_factory=RunSettings)  # the `run:` block: waiting for busy sources
    grants: GrantsConfig | None = None  # the `grants:` block: least-privilege roles; None: runs as the URL's user
    quarantine: QuarantineSettings = field(default_factory=QuarantineSettings)  # the project's `quarantine:` block
    deploy: DeploySettings = field(default_factory=DeploySettings)  # the `deploy:` block: per-source deployments

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def quarantine_of(self, source: SourceConfig) -> QuarantineSettings:
        """The source's quarantine settings: its own, the project's where it sets none."""
        return source.quarantine.over(self.quarantine)

    def resolved_settings(self, source: SourceConfig) -> dict[str, Any]:
        """Settings with every reference replaced; only call this when the source is about to run.

        Reads the Prefect Secret blocks the settings reference (headwater.common.interpolation.SecretBlockError
        when one cannot be read).
        """
        assert self.variables is not None
        return self.variables.resolve(source.settings)

    def secret_blocks(self) -> set[str]:
        """Names of the Prefect Secret blocks (`${prefect:name}`) anywhere in the config: settings, steps, alerts."""
        if self.variables is None:
            return set()
        values = [[source.settings, [[table.steps, table.rules] for table in source.tables]] for source in self.sources]
        return self.variables.blocks_in([values, [alert.options for alert in self.alerts]])


class ConfigError(Exception):
    """headwater.yaml cannot be used as it is; str() is the message to show the user."""

    def __init__(self, path: Path, problems: list[Problem], document: YamlDocument | None = None):
        self.path = path
        self.problems = problems
        located = []
        for problem in problems:
            line = problem.line or (document.line_of(problem.key_path) if document else None)
            where = ":".join(str(part) for part in (path, line, problem.column) if part is not None)
            key = ".".join(str(part) for part in problem.key_path)
            located.append((line or 0, f"{where}: {key}: {problem.message}" if key else f"{where}: {problem.message}"))
        lines = [text for _, text in sorted(located, key=lambda item: item[0])]  # in file order
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"Invalid project config ({count}); nothing was run or written. Fix and run again:\n  "
            + "\n  ".join(lines)
        )


def load_project(path: Path, registry: ConnectorRegistry) -> ProjectConfig:
    """Read and fully validate headwater.yaml against the connectors that are installed."""
    path = path.resolve()
    if not path.exists():
        raise ConfigError(
            path,
            [Problem((), "file not found. Create it, or point HEADWATER_CONFIG at your project's config.")],
        )
    try:
        document = read_yaml(path)
    except YamlSyntaxError as error:
        raise ConfigError(path, [Problem((), error.reason, error.line, error.column)]) from None

    variables = Variables(path.parent, path.parent / STATE_DIR / SECRETS_FILE)
    problems: list[Problem] = []
    config = _parse(document, path, registry, variables, problems)
    if problems:
        raise ConfigError(path, problems, document)
    return config


def _parse(
    document: YamlDocument,
    path: Path,
    registry: ConnectorRegistry,
    variables: Variables,
    problems: list[Problem],
) -> ProjectConfig:
    data = document.data
    if not isinstance(data, dict):
        problems.append(Problem((), "the file must be a mapping with a `sources:` key"))
        return ProjectConfig(path=path, name="", sources=())
    _unknown_keys(data, TOP_LEVEL_KEYS, (), problems)

    project_name = data.get("project")
    if project_name is not None:
        project_name = text(project_name, ("project",), problems, "the project's name")
    example = data.get("example")
    if example is not None and (not isinstance(example, str) or example not in EXAMPLES):
        problems.append(Problem(("example",), f"unknown example {example!r}; allowed: {', '.join(EXAMPLES)}"))
        example = None

    raw_sources = data.get("sources")
    sources: list[SourceConfig] = []
    if not isinstance(raw_sources, dict) or not raw_sources:
        problems.append(Problem(("sources",), "must be a mapping of source name -> {connector, settings, tables}"))
    else:
        provided = EXAMPLES.get(example, frozenset())
        for source_name, raw in raw_sources.items():
            source = _parse_source(str(source_name), raw, registry, variables, provided, problems)
            if source is not None:
                sources.append(source)

    return ProjectConfig(
        path=path,
        name=project_name or path.parent.name,
        sources=tuple(sources),
        example=example,
        transform_dir=_folder(data, "transform", "project_dir", "transform", path.parent, problems),
        quality_dir=_folder(data, "quality", "contracts_dir", "quality", path.parent, problems),
        variables=variables,
        alerts=_alerts(data.get("alerts"), variables, problems),
        catalog=_catalog(data.get("catalog"), path.parent, problems),
        run=parse_run_settings(data.get("run"), problems),
        grants=parse_grants("grants" in data, data.get("grants"), problems),
        quarantine=parse_quarantine_settings(data.get("quarantine"), ("quarantine",), problems),
        # Names as written: a source with problems of its own is still one the deploy block may name.
        deploy=parse_deploy_settings(data.get("deploy"), [str(name) for name in raw_sources or {}]
                                     if isinstance(raw_sources, dict) else [], problems),
    )


def _catalog(raw: Any, root: Path, problems: list[Problem]) -> CatalogConfig:
    if raw is None:
        return CatalogConfig()
    if not isinstance(raw, dict):
        problems.append(Problem(("catalog",), "must be a mapping, e.g. {pii_exposure: warn, site_after_run: true}"))
        return CatalogConfig()
    _unknown_keys(raw, CATALOG_KEYS, ("catalog",), problems)
    action = raw.get("pii_exposure", "warn")
    if action not in PII_EXPOSURE_ACTIONS:
        problems.append(Problem(("catalog", "pii_exposure"),
                                f"unknown action {action!r}; allowed: {', '.join(PII_EXPOSURE_ACTIONS)}"))
        action = "warn"
    after_run = flag(raw.get("site_after_run", False), ("catalog", "site_after_run"), problems, default=False)
    site_dir = raw.get("site_dir")
    if site_dir is not None and not isinstance(site_dir, str):
        problems.append(Problem(("catalog", "site_dir"), "must be a folder path, relative to headwater.yaml"))
        site_dir = None
    return CatalogConfig(pii_exposure=action, site_after_run=after_run,
                         site_dir=(root / site_dir) if site_dir else None)


def _alerts(raw: Any, variables: Variables, problems: list[Problem]) -> tuple:

    return parse_alerts(raw, variables, problems) if raw is not None else ()


def _folder(data: dict, section: str, key: str, default: str, root: Path, problems: list[Problem]) -> Path | None:
    block = data.get(section)
    if block is None:  # not written, or written without a value: the default folder, if it exists
        block = {}
    if not isinstance(block, dict):
        problems.append(Problem((section,), f"must be a mapping, e.g. {{{key}: {default}, enabled: false}}; "
                                            f"got {found(block)}"))
        return None
    _unknown_keys(block, {key, "enabled"}, (section,), problems)
    if not flag(block.get("enabled", True), (section, "enabled"), problems, default=True):
        return None
    name = text(block[key], (section, key), problems, "a folder path") if key in block else default
    if name is None:
        return None
    folder = root / name
    if key in block and not folder.is_dir():
        problems.append(Problem((section, key), f"folder {folder} does not exist"))
    return folder if folder.is_dir() else None


def _parse_source(
    name: str,
    raw: Any,
    registry: ConnectorRegistry,
    variables: Variables,
    provided: frozenset[str],
    problems: list[Problem],
) -> SourceConfig | None:
    where: KeyPath = ("sources", name)
    if not SOURCE_NAME.match(name):
        problems.append(
            Problem(where, "source names become schema names (raw_<name>): use lower-case letters, digits and _")
        )
    if not isinstance(raw, dict):
        problems.append(Problem(where, "must be a mapping with `connector:` and `settings:`"))
        return None
    _unknown_keys(raw, SOURCE_KEYS, where, problems)

    connector_name = raw.get("connector")
    connector = None
    installed = ", ".join(registry.names())
    if not connector_name:
        problems.append(Problem(where, f"`connector:` is missing; installed: {installed}"))
    elif not isinstance(connector_name, str):
        expected = f"expected a connector name (text), got {found(connector_name)}"
        problems.append(Problem((*where, "connector"), f"{expected}; installed: {installed}"))
    else:
        connector = registry.get(connector_name)
    if connector is None and isinstance(connector_name, str) and connector_name:
        close = difflib.get_close_matches(connector_name, registry.names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        # A connector may be unknown because its plugin is broken: say so next to the name.
        broken = "".join(f"; note: {problem}" for problem in registry.problems)
        problems.append(Problem((*where, "connector"),
                                f"unknown connector {connector_name!r}; {hint}installed: {installed}{broken}"))

    settings = raw.get("settings")
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        problems.append(Problem((*where, "settings"), "must be a mapping of setting name -> value"))
        settings = {}
    if connector is not None:
        _check_settings(connector, settings, (*where, "settings"), variables, provided, problems)
    _check_secrets_are_references(settings, (*where, "settings"), problems)

    tables = _parse_tables(raw.get("tables"), (*where, "tables"), problems, variables)
    if connector is not None and connector.cursor_in_settings:
        for table in tables:
            if table.cursor:
                problems.append(
                    Problem(
                        (*where, "tables", table.name, "cursor"),
                        f"connector {connector.name!r} takes its incremental cursor in its settings "
                        "(for rest_api: an endpoint param with `type: incremental`); remove `cursor:` here",
                    )
                )
    if connector is not None:
        check_connector_lists_keys(connector, tables, (*where, "tables"), problems)
    return SourceConfig(
        name=name,
        connector=str(connector_name),
        settings=settings,
        tables=tables,
        enabled=flag(raw.get("enabled", True), (*where, "enabled"), problems, default=True),
        freshness=parse_freshness(raw["freshness"], (*where, "freshness"), problems) if "freshness" in raw else None,
        naming=_naming(raw.get("naming", "snake_case"), (*where, "naming"), problems),
        quarantine=parse_quarantine_settings(raw.get("quarantine"), (*where, "quarantine"), problems),
    )


def _naming(value: Any, where: KeyPath, problems: list[Problem]) -> str:
    if isinstance(value, str) and value in NAMING_CONVENTIONS:
        return value
    allowed = "; ".join(f"{name} ({meaning})" for name, meaning in NAMING_CONVENTIONS.items())
    problems.append(Problem(where, f"unknown naming {value!r}; allowed: {allowed}"))
    return "snake_case"


def _check_settings(
    connector: Connector,
    settings: dict,
    where: KeyPath,
    variables: Variables,
    provided: frozenset[str],
    problems: list[Problem],
) -> None:
    declared = {setting.name: setting for setting in connector.settings()}
    for key in settings:
        if key not in declared:
            close = difflib.get_close_matches(str(key), declared, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    (*where, key),
                    f"connector {connector.name!r} has no setting {key!r}; {hint}allowed: {', '.join(declared)}",
                )
            )
    for setting in declared.values():
        if setting.name not in settings:
            if setting.required:
                kind = "secret " if setting.secret else ""
                example = f"${{{setting.name.upper()}}}" if setting.secret else "..."
                problems.append(
                    Problem(
                        where,
                        f"connector {connector.name!r} needs {kind}setting {setting.name!r} "
                        f"({setting.type_name}); add `{setting.name}: {example}`",
                    )
                )
            continue
        value = settings[setting.name]
        for message in variables.reference_problems(value, provided):
            problems.append(Problem((*where, setting.name), message))
        if setting.secret and isinstance(value, str) and not variables.references_in(value):
            problems.append(
                Problem(
                    (*where, setting.name),
                    f"{setting.name!r} is a secret; do not write it in the file, reference it as "
                    f"${{{setting.name.upper()}}} and set that in the environment or {variables.secrets_file}, "
                    f"or as a Prefect Secret block: ${{prefect:{setting.name.replace('_', '-')}}}",
                )
            )
        # A value whose reference is not known yet is checked when it is: the example provides its own when it
        # runs, and Prefect Secret blocks are read by the run that needs them (checking contacts no server).
        check_setting(setting.annotation, value, variables.preview(value), setting.type_name, (*where, setting.name),
                      strict=not variables.references_in(value), problems=problems,
                      unresolved=lambda raw: bool(variables.references_in(raw) & provided or variables.missing(raw)
                                                  or variables.blocks_in(raw)))


def _check_secrets_are_references(value: Any, where: KeyPath, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in SECRET_KEYS and isinstance(item, str) and "${" not in item:
                problems.append(
                    Problem(
                        (*where, key),
                        f"{key!r} holds a secret; reference it as ${{NAME}} and set NAME in the "
                        "environment or .headwater/secrets.env, or as a Prefect Secret block: ${prefect:block-name}",
                    )
                )
            else:
                _check_secrets_are_references(item, (*where, key), problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_secrets_are_references(item, (*where, index), problems)


def _parse_tables(
    raw: Any, where: KeyPath, problems: list[Problem], variables: Variables | None = None
) -> tuple[TableConfig, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        raw = _listed_tables(raw, where, problems)
    if not isinstance(raw, dict):
        problems.append(Problem(where, "must be a list of table names or a mapping of table name -> options, "
                                       f"got {found(raw)}"))
        return ()
    tables = []
    for name, options in raw.items():
        if not isinstance(name, str):
            problems.append(Problem((*where, name), f"a table name is text, got {found(name)}; write it in quotes"))
            continue
        if options is None:  # `orders:` with no options
            options = {}
        if not isinstance(options, dict):
            allowed = ", ".join(sorted(TABLE_KEYS))
            problems.append(Problem((*where, name), f"options must be a mapping with keys {allowed}; "
                                                    f"got {found(options)}"))
            continue
        tables.append(_parse_table(name, options, (*where, name), problems, variables))
    return tuple(tables)


def _listed_tables(names: list, where: KeyPath, problems: list[Problem]) -> dict:
    """`tables: [orders, refunds]`: each a name, each once."""
    tables: dict = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            problems.append(Problem((*where, index), f"expected a table name (text), got {found(name)}"))
        elif name in tables:
            problems.append(Problem((*where, index), f"table {name!r} is listed twice; keep one"))
        else:
            tables[name] = {}
    return tables


def _parse_table(name: str, options: dict, where: KeyPath, problems: list[Problem],
                 variables: Variables | None) -> TableConfig:
    _unknown_keys(options, TABLE_KEYS, where, problems)
    # An option of the wrong kind is reported here and left out of the TableConfig.
    key = column_names(options["primary_key"], (*where, "primary_key"), problems) if "primary_key" in options else None
    columns = {option: text(options[option], (*where, option), problems, "a column name")
               for option in ("cursor", "deduplicate_by", "deleted_flag") if options.get(option) is not None}
    disposition = options.get("write_disposition")
    if disposition is not None and disposition not in WRITE_DISPOSITIONS:
        got = repr(disposition) if isinstance(disposition, str) else found(disposition)
        problems.append(Problem((*where, "write_disposition"),
                                f"unknown write disposition {got}; allowed: {', '.join(WRITE_DISPOSITIONS)}"))
        disposition = None
    if disposition in ("merge", "scd2") and not options.get("primary_key"):
        problems.append(Problem(where, f"write_disposition {disposition} needs a primary_key"))
    effective = disposition or ("merge" if options.get("primary_key") else "append")
    if options.get("deleted_flag") and effective not in ("merge", "scd2"):  # append/replace cannot delete a row
        problems.append(Problem((*where, "deleted_flag"),
                                f"deleted_flag needs write_disposition merge or scd2, not {effective}"))
    deletes = parse_deletes(options, effective, where, problems)
    pii = options.get("pii") or []
    if isinstance(pii, str):
        pii = [pii]
    if not isinstance(pii, list) or not all(isinstance(column, str) for column in pii):
        problems.append(Problem((*where, "pii"), "must be a list of column names, e.g. [email, phone]"))
        pii = []
    steps, rules = options.get("steps") or [], options.get("rules") or []
    for option, value in (("steps", steps), ("rules", rules)):
        if not isinstance(value, list):
            problems.append(Problem((*where, option), f"{option} must be a list"))
    if variables is not None and isinstance(steps, list) and isinstance(rules, list):
        project_dir = Path(variables.get("PROJECT_DIR") or ".")
        validate_plan(steps, rules, where, problems, project_dir=project_dir, variables=variables,
                      registry=step_registry())
        _check_steps_keep_keys(steps, options, where, problems)
    return TableConfig(
        name=name,
        primary_key=key,
        cursor=columns.get("cursor"),
        write_disposition=disposition,
        deduplicate_by=columns.get("deduplicate_by") or columns.get("cursor"),
        deleted_flag=columns.get("deleted_flag"),
        steps=tuple(steps) if isinstance(steps, list) else (),
        rules=tuple(rules) if isinstance(rules, list) else (),
        freshness=parse_freshness(options["freshness"], (*where, "freshness"), problems)
        if "freshness" in options else None,
        pii=tuple(pii),
        deletes=deletes,
    )


def _check_steps_keep_keys(steps: list, options: dict, where: KeyPath, problems: list[Problem]) -> None:
    """The key and cursor columns must reach dlt as the source names them.

    dlt reads the cursor from each batch after the steps ran (and pushes it into the source's own
    query), and merges on the primary key as loaded: a step renaming or dropping them breaks both.
    """
    protected = {column for column in (options.get("cursor"), *key_columns(options.get("primary_key")))
                 if isinstance(column, str)}
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or len(step) != 1:
            continue
        (kind, spec), = step.items()
        if kind == "rename" and isinstance(spec, dict):
            touched = {column for column in spec if column in protected}
        elif kind == "pii" and isinstance(spec, dict):
            touched = {column for column, mode in spec.items() if column in protected and mode == "drop"}
        else:
            continue
        for column in sorted(touched):
            problems.append(
                Problem(
                    (*where, "steps", index, kind, column),
                    f"{column!r} is this table's primary key or cursor and must keep its name; "
                    "rename it in a dbt staging model instead",
                )
            )


def _unknown_keys(mapping: dict, allowed: set[str], where: KeyPath, problems: list[Problem]) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem((*where, key), f"unknown key; {hint}allowed: {', '.join(sorted(allowed))}"))


def check_connector_lists_keys(connector: Connector, tables: Iterable[TableConfig], where: tuple,
                               problems: list[Problem]) -> None:
    """`deletes:` needs a connector that can list its source's keys (``where``: the source's `tables` path)."""
    if connector.list_keys is not None:
        return
    for table in tables:
        if table.deletes:
            problems.append(Problem(
                (*where, table.name, "deletes"),
                f"connector {connector.name!r} cannot list the keys of its source tables, so rows deleted there "
                "cannot be found (sql_database can); have the source mark them (deleted_flag) or reload the "
                "whole table (write_disposition: replace)",
            ))
