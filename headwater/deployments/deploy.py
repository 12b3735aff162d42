"""`headwater deploy` step by step, each step said as it happens: the server, the work pools, the destination's
concurrency limit (per-source deployments), the deployments registered (a table with their ids), then optionally
one run followed to its final state, and a worker."""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.deployments.destination_limit import ensure_destination_limit
from headwater.deployments.per_source import DeployPlan, deploy_plan
from headwater.deployments.prefect_file import DeploymentSpec, PrefectFileError, read_prefect_file
from headwater.deployments.register import (
    DeployError,
    PoolStatus,
    RegisteredDeployment,
    ensure_work_pools,
    read_registered,
    register_deployments,
)
from headwater.deployments.runs import (
    RUN_QUEUE,
    WORKER_LOG,
    RunNotStarted,
    RunOutcome,
    serve_worker,
    start_run,
    start_worker,
    wait_for_run,
    worker_command,
)
from headwater.deployments.server import PrefectServer, find_or_start_server, safe_url, ui_url
from headwater.local.embedded_postgres import LocalPostgresError
from headwater.local.stack import StackError
from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project

TAIL_LINES = 25


class UsageError(ValueError):
    """The options do not fit prefect.yaml or the work pool."""


def deploy(root: Path, state_dir: Path, config: Path, *, run: str | None = None, worker: bool = False,
           per_source: bool = False) -> int:
    """Register the deployments of root/prefect.yaml, or with `per_source` (or `deploy.per_source` in the config)
    one per source and a build deployment; `run` ("" for the only one, or a name) then runs one once, `worker`
    then serves its pool in the foreground. Returns the exit code: 1 after saying what went wrong."""
    out = Console()
    err = Console(stderr=True)
    try:
        read_prefect_file(root)  # its problems first: the per-source deployments take its defaults too
        plan = deploy_plan(root, load_project(config, connector_registry()), per_source)
        chosen = _chosen_deployment(plan, run) if run is not None else None
        pool = _worker_pool(plan, chosen) if (worker or chosen) else None
        return _deploy(out, err, root, state_dir, plan, chosen, pool, worker)
    except (PrefectFileError, UsageError, DeployError, StackError, LocalPostgresError, RunNotStarted,
            ConfigError) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        err.print("Interrupted.")
        return 130
    except httpx.HTTPError as error:
        url = f" at {safe_url(str(error.request.url))}" if _has_request(error) else ""
        err.print(f"[red]error:[/red] the Prefect API{escape(url)} did not answer as expected: {escape(str(error))}. "
                  "Is the server running? Without PREFECT_API_URL, `headwater deploy` uses (and starts) the one "
                  "of `headwater up`.", highlight=False, soft_wrap=True)
    return 1


def _chosen_deployment(plan: DeployPlan, wanted: str) -> DeploymentSpec:
    specs = plan.specs
    if wanted:
        for spec in specs:
            if spec.name == wanted:
                return spec
        raise UsageError(f"--run {wanted}: {plan.prefect_file} has no deployment of that name; it has "
                         f"{', '.join(spec.name for spec in specs)}.")
    if len(specs) > 1:
        raise UsageError(f"--run: {plan.prefect_file} defines {len(specs)} deployments; name one: "
                         + " or ".join(f"--run {spec.name}" for spec in specs) + ".")
    return specs[0]


def _worker_pool(plan: DeployPlan, chosen: DeploymentSpec | None) -> str:
    """The one pool a started worker serves: the chosen deployment's, or the only pool of the prefect file."""
    pools = list(dict.fromkeys(spec.work_pool for spec in ([chosen] if chosen else plan.specs)))
    if len(pools) > 1:
        raise UsageError(f"--worker: {plan.prefect_file} uses the work pools {', '.join(pools)}; a worker serves one. "
                         "Start one per pool with `prefect worker start --pool NAME`.")
    return pools[0]


def _deploy(out: Console, err: Console, root: Path, state_dir: Path, plan: DeployPlan,
            chosen: DeploymentSpec | None, pool: str | None, with_worker: bool) -> int:
    specs = plan.specs
    with err.status("Looking for the Prefect server…") as spinner:
        server = find_or_start_server(state_dir, progress=spinner.update)
    ui = ui_url(server)
    if server.started_now:
        out.print(f"Prefect server: started it (as `headwater up` does) at {server.safe_api_url}, UI {ui}. "
                  "It keeps running; stop it with `headwater down`.", soft_wrap=True)
    else:
        out.print(f"Prefect server: {server.safe_api_url} ({server.origin})", soft_wrap=True)

    pools = ensure_work_pools(server, [spec.work_pool for spec in specs])
    for status in pools:
        out.print(f"Work pool {status.name} ({status.type}): {'created' if status.created else 'exists'}"
                  f"{', paused' if status.paused else ''}; workers online: {status.workers_online}", soft_wrap=True)
    if pool is not None:
        _check_servable(next(status for status in pools if status.name == pool))

    if plan.destination_limit is not None:
        out.print(ensure_destination_limit(server, *plan.destination_limit).describe(), soft_wrap=True)

    with err.status(f"Registering the deployments of {plan.prefect_file} (prefect deploy --all)…"):
        register_deployments(server, root, plan.prefect_file)
        registered = read_registered(server, specs)
    out.print(_deployments_table(registered, ui))
    if plan.destination_limit is not None:
        out.print("The deployments of prefect.yaml were left as they are on the server: pause a daily deployment "
                  "registered before (`prefect deployment pause 'daily/daily'`) so sources do not load twice.",
                  soft_wrap=True)

    target = registered[specs.index(chosen)] if chosen else None
    if target is None and not with_worker:
        _print_next_steps(out, server, registered, pools)
        return 0

    worker = None
    if with_worker:
        worker = start_worker(server, root, worker_command(pool))
        out.print(f"Worker started for work pool {pool} (pid {worker.pid}); it runs scheduled runs until Ctrl-C "
                  "or SIGTERM.", soft_wrap=True)
    try:
        code = _run_once(out, server, root, state_dir, target, pool, worker, ui) if target else 0
    except KeyboardInterrupt:
        if worker is not None:
            serve_worker(worker)  # it had the same Ctrl-C: let it finish shutting down
        raise
    except BaseException:
        if worker is not None:  # not left running behind an error
            worker.terminate()
            worker.wait()
        raise
    if worker is None:
        return code
    worker_code = serve_worker(worker)
    out.print(f"Worker stopped (exit code {worker_code}).")
    return code or worker_code


def _check_servable(status: PoolStatus) -> None:
    if status.paused:
        raise UsageError(f"Work pool {status.name} is paused: no worker takes runs from it. "
                         f"Resume it with `prefect work-pool resume {status.name}`.")
    if status.type != "process":
        raise UsageError(f"Work pool {status.name} is a {status.type} pool; `headwater deploy` starts process "
                         f"workers only. Start its worker with `prefect worker start --pool {status.name}`.")


def _run_once(out: Console, server: PrefectServer, root: Path, state_dir: Path, deployment: RegisteredDeployment,
              pool: str, worker, ui: str | None) -> int:
    started = start_run(server, deployment.id)
    out.print(f"Flow run {started.name} ({started.id}) of {deployment.full_name} started, in work queue "
              f"{RUN_QUEUE} of pool {pool}.", soft_wrap=True)
    one_shot = None
    log = state_dir / WORKER_LOG
    if worker is None:
        one_shot = start_worker(server, root, worker_command(pool, queue=RUN_QUEUE, once=True), log=log)
        out.print(f"A worker started for it runs it; its output, the run's summary too, goes to {log}.",
                  soft_wrap=True)
    try:
        with Console(stderr=True).status(f"Flow run {started.name}: Scheduled…") as spinner:
            outcome = wait_for_run(server, started, one_shot or worker,
                                   on_state=lambda state: spinner.update(f"Flow run {started.name}: {state}…"))
    except RunNotStarted as error:
        if one_shot is None:
            raise
        raise RunNotStarted(f"{error} Last lines of {log}:\n{_tail(log)}") from None
    finally:
        if one_shot is not None:
            one_shot.wait()  # --run-once returns once the run it took has finished
    out.print(_outcome_table(outcome, deployment, ui))
    if outcome.completed:
        return 0
    if outcome.message:
        out.print(f"[red]{escape(outcome.message)}[/red]", highlight=False)
        if one_shot is not None:
            out.print(f"The worker's output, with the traceback: {log}", soft_wrap=True)
    elif one_shot is not None:
        out.print(f"Last lines of {log}:\n{escape(_tail(log))}", highlight=False)
    return 1


def _deployments_table(registered: list[RegisteredDeployment], ui: str | None) -> Table:
    table = Table(title="Deployments registered (prefect deploy --all)", title_justify="left", box=None,
                  padding=(0, 2, 0, 0))
    for column in ("deployment", "id", "work pool", "schedule"):
        table.add_column(column, no_wrap=column != "schedule")
    for deployment in registered:
        table.add_row(deployment.full_name, str(deployment.id), deployment.work_pool or "-",
                      ", ".join(deployment.schedules) or "none")
    if ui:
        table.caption = f"UI: {ui}/deployments"
        table.caption_justify = "left"
    return table


def _print_next_steps(out: Console, server: PrefectServer, registered: list[RegisteredDeployment],
                      pools: list[PoolStatus]) -> None:
    prefix = "" if server.origin == "PREFECT_API_URL" else f"PREFECT_API_URL={server.safe_api_url} "
    name = "'" + registered[0].full_name.replace("'", "'\\''") + "'"  # quoted for the shell
    # With several deployments --run needs a name: the first one's, as Prefect's command below.
    which = "" if len(registered) == 1 else f" {registered[0].full_name.partition('/')[2]}"
    out.print(f"Run it once:  headwater deploy --run{which}", soft_wrap=True)
    out.print(f"         or:  {prefix}prefect deployment run {name}   (a worker must be running)", soft_wrap=True)
    if not any(status.workers_online for status in pools):
        out.print("No worker is online: runs (scheduled ones too) wait until one starts. "
                  "Start one with `headwater deploy --worker` (README, Deploying: keeping it running).", soft_wrap=True)


def _outcome_table(outcome: RunOutcome, deployment: RegisteredDeployment, ui: str | None) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    style = "green" if outcome.completed else "red"
    table.add_row("Flow run", f"{outcome.name} ({outcome.id})")
    table.add_row("Deployment", deployment.full_name)
    table.add_row("State", f"[{style}]{outcome.state}[/{style}]")
    if outcome.seconds is not None:
        table.add_row("Run time", f"{outcome.seconds:.1f}s")
    if ui:
        table.add_row("UI", f"{ui}/runs/flow-run/{outcome.id}")
    return table


def _has_request(error: httpx.HTTPError) -> bool:
    try:
        return error.request is not None
    except RuntimeError:  # httpx raises when the error was made without a request
        return False


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
