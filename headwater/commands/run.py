"""`headwater run`: the daily pipeline now, the same as `python -m flows.daily`; `headwater deploy`: its
deployments (prefect.yaml) on a Prefect server, optionally one run now and a worker for the schedule."""

from __future__ import annotations

import argparse

from headwater.load.reload import add_reload_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the daily pipeline (python -m flows.daily)")
    parser.add_argument("--advance-example", type=int, default=0, metavar="DAYS",
                        help="simulate DAYS days of the bundled shop before loading")
    add_reload_arguments(parser)
    parser.add_argument("--full-build", action="store_true",
                        help="rebuild every dbt model, not only those downstream of tables that received rows")
    parser.set_defaults(run=run)

    deploy = subparsers.add_parser(
        "deploy",
        help="register the deployments of prefect.yaml on the Prefect server; run one now, start a worker",
        description="Register the deployments of prefect.yaml (work pools created when missing) on the Prefect "
        "server of PREFECT_API_URL, else on the local server of `headwater up`, started if it is not running.",
    )
    deploy.add_argument(
        "--run", dest="run_once", nargs="?", const="", default=None, metavar="DEPLOYMENT",
        help="then run a deployment once now and wait for its final state (exit code 1 unless Completed); "
        "DEPLOYMENT is its name in prefect.yaml, needed only when the file defines several",
    )
    deploy.add_argument(
        "--worker", action="store_true",
        help="then run a process worker for the work pool in the foreground until Ctrl-C or SIGTERM: "
        "it runs the scheduled runs",
    )
    deploy.set_defaults(run=run_deploy)


def run(args: argparse.Namespace) -> int:
    from headwater.local.stack import use_local_stack

    use_local_stack()
    from flows.daily import main

    argv = ["--advance-example", str(args.advance_example)]
    for item in args.full_refresh or []:
        argv += ["--full-refresh", item]
    for name in ("since", "until"):
        if getattr(args, name):
            argv += [f"--{name}", getattr(args, name)]
    if args.full_build:
        argv.append("--full-build")
    return main(argv)


def run_deploy(args: argparse.Namespace) -> int:
    from headwater.common.runtime import project_root, state_dir
    from headwater.deployments.deploy import deploy

    return deploy(project_root(), state_dir(), run=args.run_once, worker=args.worker)
