"""`headwater init DIR` and `headwater new connector NAME`: write a new project or connector plugin package."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    _add_init(subparsers)
    _add_new(subparsers)


def _add_init(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init",
        help="Create a new project: headwater.yaml, a sample landing file, a dbt project and a Soda contract.",
        description="Write a project that runs as generated: headwater.yaml with a filesystem source over "
        "landing/ (and a sample CSV), sql_database and rest_api sources as commented examples, a dbt project in "
        "transform/ with one staging model, a Soda contract in quality/, .gitignore and a README.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="Folder of the new project; created if missing, must be empty (a .git folder is fine).")
    parser.add_argument("--force", action="store_true",
                        help="Write into a folder that is not empty: files of the same name are replaced.")
    parser.set_defaults(run=run_init)


def _add_new(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "new",
        help="Create a new connector plugin package.",
        description="Scaffold code that plugs into Headwater.",
    )
    kinds = parser.add_subparsers(dest="new_command", required=True, metavar="KIND")
    connector = kinds.add_parser(
        "connector",
        help="A pip-installable connector plugin: dlt source, hook, README and acceptance tests.",
        description="Create ./headwater-NAME/ (distribution headwater-NAME, module headwater_NAME; _ in NAME "
        "becomes - in the distribution and folder name): a plugin package that depends on dlt and pluggy only, "
        "with a working example source (JSON lines from a folder or URL, incremental) and acceptance tests.",
    )
    connector.add_argument("name", help="Connector name: lower-case letters, digits and _ (e.g. my_api).")
    connector.add_argument(
        "--directory", type=Path, help="Where to create the package (default ./headwater-NAME); must not exist."
    )
    connector.set_defaults(run=run_connector)


def run_init(args: argparse.Namespace) -> int:
    from headwater.scaffold import ScaffoldError
    from headwater.scaffold.project import new_project, project_name

    try:
        written = new_project(args.directory, force=args.force)
    except ScaffoldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    shown = _shown(args.directory)
    print(f"Created project {project_name(args.directory)} in {shown}:")
    for file in written:
        print(f"  {file.path.relative_to(args.directory)}" + ("  (replaced)" if file.replaced else ""))
    folder = shlex.quote(shown)
    _print_steps("Run it:", [
        (f"cd {folder} && headwater run", "load landing/, build transform/, verify quality/"),
        (f"HEADWATER_CONFIG={folder}/headwater.yaml python -m flows.daily", "the same, from here"),
    ])
    print("Without HEADWATER_DATABASE_URL, the data goes to an embedded PostgreSQL in .headwater/ of the project.")
    return 0


def run_connector(args: argparse.Namespace) -> int:
    from headwater.scaffold import ConnectorPackage, ScaffoldError, new_connector, validate_name

    try:
        validate_name(args.name)
        _refuse_installed_name(args.name)
        target, written = new_connector(args.name, args.directory)
    except ScaffoldError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    names = ConnectorPackage(args.name)
    shown = _shown(target)
    print(f"Created {names.package} in {shown}:")
    for path in written:
        print(f"  {path.relative_to(target)}")
    steps = [
        (f"pip install -e '{shown}[test]'", "install the plugin and its test tools"),
        (f"headwater connectors show {args.name}", "Headwater finds it through its entry point"),
        (f"cd {shown} && pytest", "acceptance tests: real loads into PostgreSQL"),
    ]
    _print_steps("Next steps:", steps)
    print(f"Then replace the example reading code in {names.module}/source.py with your own.")
    return 0


def _print_steps(title: str, steps: list[tuple[str, str]]) -> None:
    """Commands to type next, their comments aligned."""
    width = max(len(command) for command, _ in steps)
    print(f"\n{title}")
    for command, why in steps:
        print(f"  {command.ljust(width)}  # {why}")


def _refuse_installed_name(name: str) -> None:
    """Two connectors with one name cannot both load; say so now rather than after publishing."""
    from headwater.plugins.manager import connector_registry
    from headwater.scaffold import ScaffoldError

    existing = connector_registry().get(name)
    if existing is not None:
        plugin = existing.plugin
        raise ScaffoldError(
            f"a connector named {name!r} is already installed (plugin {plugin.name!r}, "
            f"{plugin.package} {plugin.version}); choose another name"
        )


def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when it is inside it."""
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return str(path)
    return f"./{relative}" if str(relative) != "." else "."
