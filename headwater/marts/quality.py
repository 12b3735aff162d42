"""Verify the Soda v4 data contracts in the quality folder against the warehouse.

Layout of the quality folder::

    quality/
      datasource.yml                   # Soda data source `headwater`, connection from HEADWATER_PG_*
      contracts/<schema>/<table>.yml   # one contract per table or view

A contract names its dataset as ``headwater/${env.HEADWATER_PG_DATABASE}/<schema>/<table>``.
Soda resolves ``${env.…}`` in contract files when it reads them, so the database
segment follows whichever database the run points at without rewriting any file.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from headwater.common.runtime import quiet_telemetry, scoped_environ
from headwater.postgres.address import PostgresAddress

DATASOURCE_FILE = "datasource.yml"
CONTRACTS_DIR = "contracts"
CONTRACT_SUFFIXES = (".yml", ".yaml")

# Soda's CheckOutcome names mapped onto Headwater's vocabulary. A check Soda could not
# evaluate (query error, missing column) is an error, not a pass.
_OUTCOMES = {"PASSED": "passed", "FAILED": "failed", "WARN": "warned"}

# Threshold fields of Soda's Threshold, in the order they read best.
_THRESHOLD_OPERATORS = (
    ("must_be", "="),
    ("must_not_be", "!="),
    ("must_be_greater_than", ">"),
    ("must_be_greater_than_or_equal", ">="),
    ("must_be_less_than", "<"),
    ("must_be_less_than_or_equal", "<="),
)


@dataclass(frozen=True)
class Contract:
    """One contract file; schema and table come from its place in the folder."""

    schema: str
    table: str
    path: Path


@dataclass
class CheckResult:
    """The outcome of one check of a contract.

    ``name`` is the check type (``row_count``, ``missing``, ``duplicate``, ``invalid``…,
    with ``:qualifier`` appended when the contract sets one); ``title`` is Soda's
    display name, which a contract can override. ``measured`` is the value Soda
    compared with the threshold, e.g. the number of duplicate values.
    """

    name: str
    column: str | None
    outcome: str  # 'passed' | 'failed' | 'warned' | 'error'
    measured: object | None
    threshold: str | None
    title: str | None = None
    # 'fail' blocks (the default); 'warn' is reported but never blocks. A contract makes a check
    # warn-only with Soda's own threshold level: ``threshold: {must_be: 0, level: warn}``.
    severity: str = "fail"

    @property
    def blocking(self) -> bool:
        """Whether this outcome stops what the contract guards (a failed or unevaluated fail check)."""
        return self.severity == "fail" and self.outcome in ("failed", "error")


@dataclass
class ContractResult:
    """The outcome of verifying one contract; ``passed`` is False on any failed check or error."""

    schema: str
    table: str
    passed: bool
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    contract_path: Path | None = None

    @property
    def dataset(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [check for check in self.checks if check.outcome in ("failed", "error")]

    @property
    def warned_checks(self) -> list[CheckResult]:
        """Checks that missed their threshold without blocking: warn severity or a warn band."""
        return [check for check in self.checks if check.outcome == "warned"]

    def check(self, name: str, column: str | None = None) -> CheckResult:
        """The check with this name (and column, for column checks)."""
        for check in self.checks:
            if check.name == name and check.column == column:
                return check
        raise KeyError(f"{self.dataset}: no check {name!r} on column {column!r}")


def discover_contracts(quality_dir: Path) -> list[Contract]:
    """Every contract under ``quality_dir/contracts/<schema>/<table>.yml``, sorted by schema and table."""
    contracts_dir = Path(quality_dir) / CONTRACTS_DIR
    if not contracts_dir.is_dir():
        return []
    contracts = [
        Contract(schema=path.parent.name, table=path.stem, path=path)
        for schema_dir in contracts_dir.iterdir()
        if schema_dir.is_dir()
        for path in schema_dir.iterdir()
        if path.is_file() and path.suffix in CONTRACT_SUFFIXES
    ]
    return sorted(contracts, key=lambda contract: (contract.schema, contract.table))


def verify_contracts(
    quality_dir: Path,
    address: PostgresAddress,
    *,
    schemas: set[str] | None = None,
    tables: set[tuple[str, str]] | None = None,
    relocate: dict[str, str] | None = None,
) -> list[ContractResult]:
    """Verify every contract (or those of ``schemas``, or the (schema, table) in ``tables``) at ``address``.

    ``relocate`` maps a contract schema to the schema actually verified, e.g. ``{"marts": "marts__audit"}``
    to audit freshly built tables before they are published; results keep the contract's schema.

    Never raises for data or connection problems: a contract whose table is missing,
    an unreachable database or an unreadable contract each yield a failed
    ContractResult with ``error`` set.
    """
    quality_dir = Path(quality_dir)
    relocate = relocate or {}
    contracts = [
        contract
        for contract in discover_contracts(quality_dir)
        if (schemas is None or contract.schema in schemas)
        and (tables is None or (contract.schema, contract.table) in tables)
    ]
    if not contracts:
        return []

    datasource_file = quality_dir / DATASOURCE_FILE
    if not datasource_file.is_file():
        return [_errored(contract, f"Soda data source file not found: {datasource_file}") for contract in contracts]
    weaker = weaker_tls(datasource_file, address)
    if weaker:
        return [_errored(contract, weaker) for contract in contracts]

    # Soda reports a missing table only as a failed query among its logs; looking the
    # tables up first gives a clear message and skips pointless queries.
    try:
        existing = address.relations({relocate.get(c.schema, c.schema) for c in contracts})
    except Exception as exc:  # psycopg raises several types for connection problems
        # A connection failure names the destination itself (PostgresAddress.connect).
        message = str(exc).strip() if address.safe_url in str(exc) else f"Cannot connect to {address.safe_url}: {exc}"
        return [_errored(contract, message.strip()) for contract in contracts]

    results = []
    with scoped_environ(address.tool_env()):
        for contract in contracts:
            schema = relocate.get(contract.schema, contract.schema)
            if (schema, contract.table) not in existing:
                results.append(
                    _errored(
                        contract,
                        f"Table {schema}.{contract.table} does not exist in database "
                        f"{address.database!r}: has the step that creates it run?",
                    )
                )
            elif schema != contract.schema:
                results.append(_verify_relocated(contract, schema, datasource_file))
            else:
                results.append(_verify_one(contract, datasource_file))
    return results


def weaker_tls(datasource_file: Path, address: PostgresAddress) -> str | None:
    """Why Soda would connect with less TLS than the destination asks for, or None.

    Soda passes its own sslmode (prefer: no certificate check) when the data source names none, and that
    overrides libpq's PGSSLMODE; data sources written before the destination had TLS settings lack the key.
    """
    sslmode = address.tool_env()["HEADWATER_PG_SSLMODE"]
    if sslmode in ("disable", "allow", "prefer"):
        return None
    try:
        connection = (yaml.safe_load(datasource_file.read_text()) or {}).get("connection") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None  # Soda reports what is wrong with the file itself
    if "sslmode" in connection:
        return None
    return (f"{datasource_file}: `connection` names no sslmode, so Soda would connect with sslmode=prefer (no "
            f"certificate check) where the destination asks for sslmode={sslmode}. Add "
            "`sslmode: ${env.HEADWATER_PG_SSLMODE}` under `connection` (see docs/configuration.md, The destination)")


def _verify_relocated(contract: Contract, schema: str, datasource_file: Path) -> ContractResult:
    """Verify ``contract`` against the same table in ``schema``, without touching the contract file.

    The dataset line is rewritten in a temporary copy: the contract in the repository keeps naming
    the published schema, which is what readers of the contract expect.
    """
    text = contract.path.read_text()
    pattern = re.compile(rf"^(dataset:\s*\S*/){re.escape(contract.schema)}(/{re.escape(contract.table)}\s*)$", re.M)
    relocated, count = pattern.subn(rf"\g<1>{schema}\g<2>", text)
    if count != 1:
        return _errored(contract, f"{contract.path}: no `dataset: …/{contract.schema}/{contract.table}` line to audit")
    with tempfile.TemporaryDirectory(prefix="headwater-audit-") as folder:
        copy = Path(folder) / contract.path.name
        copy.write_text(relocated)
        result = _verify_one(Contract(contract.schema, contract.table, copy), datasource_file)
    result.contract_path = contract.path
    return result


def _verify_one(contract: Contract, datasource_file: Path) -> ContractResult:
    """Run Soda on one contract; the HEADWATER_PG_* environment must already be set."""
    quiet_telemetry()  # Soda reads its telemetry switch when it is first imported
    from soda_core.contracts import verify_contract_locally

    try:
        session = verify_contract_locally(
            data_source_file_path=str(datasource_file),
            contract_file_path=str(contract.path),
        )
    except Exception as exc:  # invalid YAML and similar are raised, not reported
        return _errored(contract, f"Soda could not verify {contract.path}: {exc}")

    if not session.results:
        return _errored(contract, session.get_errors_str() or "Soda returned no result for the contract")
    soda_result = session.results[0]
    checks = [_check_result(check_result) for check_result in soda_result.check_results]
    error = None
    if soda_result.status.name == "ERROR" or session.has_errors:
        error = soda_result.get_errors_str() or session.get_errors_str() or "Soda reported an error"
    return ContractResult(
        schema=contract.schema,
        table=contract.table,
        # Only fail-severity checks block; a warn-severity check is reported and nothing more.
        passed=error is None and not any(check.blocking for check in checks),
        checks=checks,
        error=error,
        contract_path=contract.path,
    )


def _check_result(soda_check_result) -> CheckResult:
    check = soda_check_result.check
    name = check.type + (f":{check.qualifier}" if check.qualifier else "")
    threshold = _describe_threshold(check.threshold)
    severity = _severity(check)
    if threshold and severity == "warn":
        threshold += " (warn)"  # a miss only warns
    warn_threshold = _describe_threshold(getattr(check, "warn_threshold", None))
    if warn_threshold:
        threshold = f"{threshold or ''} (warn unless {warn_threshold})".strip()
    return CheckResult(
        name=name,
        column=check.column_name,
        outcome=_OUTCOMES.get(soda_check_result.outcome.name, "error"),
        measured=soda_check_result.threshold_value,
        threshold=threshold,
        title=check.name,
        severity=severity,
    )


def _severity(check) -> str:
    """'warn' when the check's only threshold is at Soda's warn level, else 'fail'.

    Soda puts a single threshold in the primary slot whatever its level; with a warn band and a
    fail threshold (``additional:``) the check can still fail, so it keeps fail severity.
    """
    level = getattr(getattr(check, "threshold", None), "level", None)
    level = getattr(level, "value", level)  # Soda's ThresholdLevel enum, or a plain string
    if level == "warn" and getattr(check, "warn_threshold", None) is None:
        return "warn"
    return "fail"


def _describe_threshold(threshold) -> str | None:
    """Soda's Threshold as a compact expression such as ``> 0`` or ``>= 1 and <= 5``."""
    if threshold is None:
        return None
    parts = [
        f"{operator} {getattr(threshold, attribute)}"
        for attribute, operator in _THRESHOLD_OPERATORS
        if getattr(threshold, attribute, None) is not None
    ]
    return " and ".join(parts) or None


def _errored(contract: Contract, message: str) -> ContractResult:
    return ContractResult(
        schema=contract.schema,
        table=contract.table,
        passed=False,
        checks=[],
        error=message,
        contract_path=contract.path,
    )
