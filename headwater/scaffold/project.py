"""`headwater init DIR`: a new project that runs as written, from the templates in `templates/project/`.

It holds one working source (the filesystem connector over `landing/`, with a sample CSV), the other
built-in connectors as commented examples, a dbt project with one staging model and the schema macro
Headwater's write-audit-publish needs, a Soda data source with one contract, `.gitignore` and a README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from headwater.scaffold import ScaffoldError, render, templates

TEMPLATE_KIND = "project"
# A folder holding only these is still empty for `init`: `git init` first is the usual start.
IGNORED_ENTRIES = frozenset({".git"})
FALLBACK_NAME = "headwater_project"
SHOWN_ENTRIES = 3


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    replaced: bool  # a file of that name was there before (only with force)


def project_name(directory: Path) -> str:
    """The folder's name as an identifier: dbt's project name and the `models:` key need one."""
    name = re.sub(r"[^a-z0-9]+", "_", directory.resolve().name.lower()).strip("_")
    if not name:
        return FALLBACK_NAME
    return f"project_{name}" if name[0].isdigit() else name


def new_project(directory: Path, force: bool = False) -> list[WrittenFile]:
    """Write the project's files into directory (created if missing); returns them in template order.

    A folder that already holds something is refused unless `force`, which replaces files of the same
    names and leaves every other file alone.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} is a file; give a folder for the new project")
    if not force:
        _refuse_non_empty(directory)
    values = {"project": project_name(directory), "folder": directory.resolve().name}
    written = []
    for relative, template in templates(TEMPLATE_KIND):
        path = directory / Path(*relative)
        replaced = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        written.append(WrittenFile(path, replaced))
    return written


def _refuse_non_empty(directory: Path) -> None:
    if not directory.is_dir():
        return
    entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in directory.iterdir()
                     if entry.name not in IGNORED_ENTRIES)
    if not entries:
        return
    shown = ", ".join(entries[:SHOWN_ENTRIES])
    if len(entries) > SHOWN_ENTRIES:
        shown += f" and {len(entries) - SHOWN_ENTRIES} more"
    raise ScaffoldError(
        f"{directory} is not empty (it holds {shown}); choose a new or empty folder, or add --force to write "
        "the project's files into it (files of the same name are replaced, others are left alone)"
    )
