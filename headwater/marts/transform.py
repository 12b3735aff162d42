"""Run the dbt project in-process and report what happened to each node.

dbt is driven through its programmatic entry point (``dbtRunner``) rather than a
subprocess: it saves the interpreter start-up and gives structured per-node results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headwater.common.runtime import quiet_telemetry, scoped_environ
from headwater.marts.build_progress import BuildProgress
from headwater.postgres.address import PostgresAddress

# Node statuses (dbt's NodeStatus values) that mean the node itself went wrong.
# "skipped" is left out: a skip is the consequence of an upstream failure, which is
# already reported on that upstream node.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})

# For tests the adapter's row count is that of the test's own summary query, not of
# any data, so it is only reported for nodes that write relations.
_TEST_RESOURCE_TYPES = frozenset({"test", "unit_test"})


@dataclass
class DbtNodeResult:
    """The outcome of one model, test, seed or snapshot in a dbt invocation."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    execution_time: float
    rows_affected: int | None
    message: str | None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass
class DbtRunResult:
    """The outcome of a whole dbt invocation."""

    success: bool
    nodes: list[DbtNodeResult] = field(default_factory=list)
    error: str | None = None

    @property
    def failed_nodes(self) -> list[DbtNodeResult]:
        return [node for node in self.nodes if node.failed]

    @property
    def warned_nodes(self) -> list[DbtNodeResult]:
        return [node for node in self.nodes if node.status == "warn"]

    def node(self, name: str) -> DbtNodeResult:
        """The result for the node with this name (or unique_id)."""
        for node in self.nodes:
            if name in (node.name, node.unique_id):
                return node
        raise KeyError(name)


def dbt_state_dirs(state_dir: Path) -> tuple[Path, Path]:
    """Where dbt writes its build artifacts and its logs under Headwater's state directory."""
    return state_dir / "dbt" / "target", state_dir / "dbt" / "logs"


def build_dbt_args(
    command: list[str],
    *,
    project_dir: Path,
    state_dir: Path,
    select: list[str] | None = None,
    full_refresh: bool = False,
    target_path: Path | None = None,
) -> list[str]:
    """The dbt CLI arguments for one invocation (without the leading ``dbt``).

    ``target_path``: where artifacts go instead of the build's target (dbt_state_dirs).
    """
    # dbt resolves a relative --target-path against the project, not the working
    # directory, so every path is made absolute here.
    project_dir = Path(project_dir).resolve()
    build_target, log_path = dbt_state_dirs(Path(state_dir).resolve())
    target_path = Path(target_path).resolve() if target_path else build_target
    args = [
        *command,
        "--project-dir", str(project_dir),
        # The profile ships with the project and reads its connection from HEADWATER_PG_*.
        "--profiles-dir", str(project_dir),
        # Artifacts and logs go to the state directory so the project folder stays clean.
        "--target-path", str(target_path),
        "--log-path", str(log_path),
        # Only errors reach the console; the full log is in log_path/dbt.log and the
        # per-node outcome is returned to the caller.
        "--quiet",
    ]
    if select:
        args += ["--select", *select]
    if full_refresh:
        args.append("--full-refresh")
    return args


def run_dbt(
    command: list[str],
    *,
    project_dir: Path,
    state_dir: Path,
    address: PostgresAddress,
    select: list[str] | None = None,
    full_refresh: bool = False,
    target_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> DbtRunResult:
    """Run a dbt command (e.g. ``["build"]``) against ``address`` and collect node results.

    ``progress`` is told every few seconds how many nodes have finished (headwater.marts.build_progress).

    Never raises for dbt's own failures: a failed node, a compilation error or an
    unreachable database all come back as ``success=False`` with ``error`` set.
    The process environment is changed for the duration of the call, so concurrent
    calls in one process must not overlap.
    """
    quiet_telemetry()
    from dbt.cli.main import dbtRunner

    args = build_dbt_args(
        command,
        project_dir=project_dir,
        state_dir=state_dir,
        select=select,
        full_refresh=full_refresh,
        target_path=target_path,
    )
    with scoped_environ(address.tool_env()):
        try:
            callbacks = [BuildProgress(command[0], progress)] if progress else []
            outcome = dbtRunner(callbacks=callbacks).invoke(args)
        except Exception as exc:  # dbtRunner catches most errors itself; this is the safety net
            return DbtRunResult(success=False, error=f"dbt raised {type(exc).__name__}: {exc}")

    nodes = _node_results(outcome.result)
    result = DbtRunResult(success=bool(outcome.success), nodes=nodes)
    if outcome.exception is not None:
        result.error = str(outcome.exception).strip() or type(outcome.exception).__name__
    elif not outcome.success:
        result.error = _summarize_failures(result.failed_nodes) or "dbt reported failure"
    return result


def _node_results(execution_result: object) -> list[DbtNodeResult]:
    # Only run-like commands (build, run, test, seed, snapshot, compile) return per-node
    # results; parse, ls, deps and friends return something else or nothing.
    results = getattr(execution_result, "results", None)
    if not isinstance(results, list):
        return []
    nodes = []
    for run_result in results:
        node = run_result.node
        resource_type = str(node.resource_type)
        rows = (run_result.adapter_response or {}).get("rows_affected")
        if resource_type in _TEST_RESOURCE_TYPES or not isinstance(rows, int) or rows < 0:
            rows = None  # dbt reports -1 for statements without a row count (views)
        nodes.append(
            DbtNodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=resource_type,
                status=str(run_result.status),
                execution_time=float(run_result.execution_time or 0.0),
                rows_affected=rows,
                message=run_result.message.strip() if run_result.message else None,
            )
        )
    return nodes


def _summarize_failures(failed: list[DbtNodeResult]) -> str:
    lines = [f"{node.unique_id} ({node.status}): {node.message or 'no message'}" for node in failed]
    if not lines:
        return ""
    noun = "node" if len(lines) == 1 else "nodes"
    return f"{len(lines)} dbt {noun} failed:\n" + "\n".join(lines)


def docs_target_dir(state_dir: Path) -> Path:
    """Where `dbt docs generate` (lineage, catalog) writes manifest.json and catalog.json.

    Apart from the build's target (dbt_state_dirs): the docs are compiled for the published schemas,
    while a daily build compiles marts into their audit schema; sharing one folder would mix the two
    and make each invocation re-parse the whole project.
    """
    return Path(state_dir).resolve() / "dbt" / "docs"


def generate_docs(*, project_dir: Path, state_dir: Path, address: PostgresAddress) -> DbtRunResult:
    """`dbt docs generate` into docs_target_dir: manifest.json with compiled SQL, catalog.json with column types.

    No audit-schema var, so refs render the published schemas (`marts`, not `marts__audit`).
    Never raises for dbt's own failures, like run_dbt.
    """
    return run_dbt(["docs", "generate"], project_dir=project_dir, state_dir=state_dir, address=address,
                   target_path=docs_target_dir(state_dir))
