"""Connection checks: can every source be read and the destination be reached, without loading anything?

A source is checked by building its dlt source exactly as a run would and reading the first
item of each selected resource, outside any dlt pipeline: no rows are written, no pipeline
state is created or changed. The destination is checked with `select 1`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dlt.common.configuration.container import Container

from headwater.common.interpolation import SecretBlockError, prefect_server
from headwater.common.runtime import scoped_environ
from headwater.load.pipeline import build_source
from headwater.plugins.connectors import Connector, ConnectorRegistry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import SECRET_KEYS, ProjectConfig, SourceConfig

DEFAULT_TIMEOUT = 30.0
# dlt's HTTP client retries a refused connection for about a minute; a check should say so at once.
# Applied only for the duration of the checks, and only where the user has not chosen otherwise.
FAIL_FAST = {"RUNTIME__REQUEST_MAX_ATTEMPTS": "1"}
# One line per check in a table: longer messages (stack-trace-like driver output) are cut here.
MAX_DETAIL = 300

T = TypeVar("T")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: the destination or one source."""

    name: str
    kind: str  # "destination", or the source's connector name
    ok: bool
    detail: str
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "OK" if self.ok else "FAILED"


class CheckTimeout(Exception):
    """A check did not finish in time (a server that accepts the connection but never answers)."""


def check_destination(address: PostgresAddress, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Connect, run `select 1` and report the server version."""

    def probe() -> str:
        with address.connect(connect_timeout=max(1, int(timeout))) as connection:
            connection.execute("select 1").fetchone()
            version = connection.execute("show server_version").fetchone()[0]
        return f"PostgreSQL {version} at {address.safe_url}"

    try:
        return CheckResult("destination", "destination", True, _with_timeout(probe, timeout))
    except CheckTimeout as error:
        return CheckResult("destination", "destination", False, f"{address.safe_url}: {error}")
    except Exception as error:
        return CheckResult("destination", "destination", False, f"{address.safe_url}: cannot connect: {reason(error)}")


def check_secret_blocks(project: ProjectConfig, timeout: float = DEFAULT_TIMEOUT) -> list[CheckResult]:
    """Read each Prefect Secret block the config references (`${prefect:name}`), one result per block.

    From the Prefect server this process talks to; the values stay in the project's variables, for the
    source checks that follow, and are never shown.
    """
    results = []
    for name in sorted(project.secret_blocks()):
        check = f"prefect:{name}"
        try:
            _with_timeout(functools.partial(project.variables.resolve, f"${{{check}}}"), timeout)
        except CheckTimeout as error:
            results.append(CheckResult(check, "secret block", False, f"{prefect_server()}: {error}"))
        except SecretBlockError as error:
            results.append(CheckResult(check, "secret block", False, str(error)))
        else:
            results.append(CheckResult(check, "secret block", True, f"found on {prefect_server()}"))
    return results


def check_source(
    project: ProjectConfig, source: SourceConfig, connector: Connector, timeout: float = DEFAULT_TIMEOUT
) -> CheckResult:
    """Build the source as a run would and read one item from each selected resource.

    For a project with an example, call this inside `running_example(project)`: the example's
    API and its ${...} variables exist only while that block runs.
    """
    if not source.enabled:
        return CheckResult(source.name, source.connector, True, "enabled: false in headwater.yaml", skipped=True)
    # The step in progress, so a failure or a timeout can say where it happened.
    step = {"where": "opening the source"}

    def probe() -> str:
        dlt_source = build_source(project, source, connector)
        read, empty = [], []
        for name, resource in dlt_source.selected_resources.items():
            step["where"] = f"reading {name!r}"
            if not resource.is_transformer:
                # Stop the resource's generator after one page; transformers are stopped by the break below.
                resource.add_limit(1)
            (read if _first_item(resource) else empty).append(name)
        parts = [f"read {', '.join(read)}"] if read else []
        if empty:
            parts.append(f"no rows yet in {', '.join(empty)}")
        return "; ".join(parts) or "the source has no resources"

    try:
        return CheckResult(source.name, source.connector, True, _with_timeout(probe, timeout))
    except CheckTimeout as error:
        return CheckResult(source.name, source.connector, False, f"{error} while {step['where']}")
    except SecretBlockError as error:  # its message names the block and the server, never a value
        return CheckResult(source.name, source.connector, False, str(error))
    except Exception as error:
        what = "cannot connect" if _is_connection_error(error) else f"failed while {step['where']}"
        detail = f"{what}: {reason(error)}"
        # Driver and HTTP errors may quote a URL with a token in it; the report goes to terminals and CI logs.
        for secret in _secret_values(project, source, connector):
            detail = detail.replace(secret, "***")
        return CheckResult(source.name, source.connector, False, detail)


def check_sources(
    project: ProjectConfig, registry: ConnectorRegistry, timeout: float = DEFAULT_TIMEOUT
) -> list[CheckResult]:
    """Check every source of a validated project, in config order."""
    results = []
    with scoped_environ({name: value for name, value in FAIL_FAST.items() if name not in os.environ}):
        for source in project.sources:
            connector = registry.get(source.connector)
            if connector is None:  # load_project already rejects this; kept for callers with their own config
                results.append(CheckResult(source.name, source.connector, False, "connector is not installed"))
                continue
            results.append(check_source(project, source, connector, timeout))
    return results


def _secret_values(project: ProjectConfig, source: SourceConfig, connector: Connector) -> set[str]:
    """The resolved values of the source's secret settings and of secret-named keys nested in its settings."""
    secret_settings = {setting.name for setting in connector.settings() if setting.secret}
    found: set[str] = set()

    def collect(value: Any, secret: bool) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                collect(item, secret or str(key).lower() in SECRET_KEYS)
        elif isinstance(value, list):
            for item in value:
                collect(item, secret)
        elif secret and isinstance(value, str) and len(value) >= 4:  # shorter values would mask ordinary words
            found.add(value)

    for name, value in project.resolved_settings(source).items():
        collect(value, name in secret_settings or name.lower() in SECRET_KEYS)
    return found


def _first_item(resource: Any) -> bool:
    """Whether the resource yields anything; stops after the first item instead of reading everything."""
    items = iter(resource)
    try:
        next(items)
    except StopIteration:
        return False
    finally:
        items.close()
    return True


def _forget_contexts_of_an_ended_thread() -> None:
    """dlt keeps each thread's contexts (the active pipeline and its state) by thread id and never drops them,
    and a new thread may get the id of one that has ended: it would read incremental cursors from that thread's
    pipeline (a load that ran in a pool thread) and find no rows. Called first thing in a fresh thread."""
    if threading.get_ident() == Container._MAIN_THREAD_ID:
        return
    with Container._LOCK:
        Container().thread_contexts.pop(threading.get_ident(), None)


def _with_timeout(function: Callable[[], T], timeout: float) -> T:
    """Run function in a worker thread and give up waiting after timeout seconds.

    A thread cannot be killed; a hung driver call is left behind as a daemon thread, which is
    acceptable for a short-lived command and keeps one stuck source from blocking the report.
    The fresh thread also has dlt contexts of its own: no pipeline is active there, so incremental
    resources start from their initial values and never read or touch a real pipeline's state.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        _forget_contexts_of_an_ended_thread()
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="headwater-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CheckTimeout(f"no answer within {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps, outermost first; dlt wraps driver errors several levels deep."""
    chain = [error]
    while True:
        inner = chain[-1].__cause__ or (None if chain[-1].__suppress_context__ else chain[-1].__context__)
        if inner is None or inner in chain:
            return chain
        chain.append(inner)


def reason(error: BaseException) -> str:
    """The innermost cause as one readable line: `ExceptionType: message`."""
    innermost = _causes(error)[-1]
    message = " ".join(line.strip() for line in str(innermost).splitlines() if line.strip())
    text = f"{type(innermost).__name__}: {message}" if message else type(innermost).__name__
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def _is_connection_error(error: BaseException) -> bool:
    """Network and database-driver connection failures, recognised by type without importing the drivers."""
    for cause in _causes(error):
        if isinstance(cause, (ConnectionError, TimeoutError)):
            return True
        names = {cls.__name__ for cls in type(cause).__mro__}
        if names & {"OperationalError", "ConnectError", "ConnectionError", "ConnectTimeout"}:
            return True
    return False
