"""`headwater new` and `headwater init`: render a connector plugin package or a new project from the templates here.

Templates live in `templates/<kind>/` as `*.tmpl` files (so that neither pytest nor linters treat
them as code of this repository). `{{key}}` placeholders are replaced (`{{ ... }}` with spaces, as
dbt's Jinja writes it, is left alone), and in a connector a directory named `__module__` becomes the
plugin's import package. The project templates are rendered by `headwater.scaffold.project`.

Imports: nothing from headwater.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

TEMPLATE_SUFFIX = ".tmpl"
MODULE_DIR = "__module__"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# The same rule as connector names in the registry: they become Python identifiers and schema-safe names.
CONNECTOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
DESCRIPTION = "JSON-lines records from a local folder or URL, loaded incrementally"


class ScaffoldError(ValueError):
    """The package cannot be created as asked; str() is the message for the user."""


@dataclass(frozen=True)
class ConnectorPackage:
    """The names of a connector plugin package, all derived from the connector name."""

    name: str

    @property
    def package(self) -> str:
        """The distribution name, in its normalised form (pip and PyPI spell it with hyphens)."""
        return "headwater-" + self.name.replace("_", "-")

    @property
    def module(self) -> str:
        return f"headwater_{self.name}"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_") if part)

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "package": self.package,
            "module": self.module,
            "class_name": self.class_name,
            "description": DESCRIPTION,
        }


def validate_name(name: str) -> None:
    if not CONNECTOR_NAME.match(name):
        raise ScaffoldError(
            f"invalid connector name {name!r}: use lower-case letters, digits and _, starting with a letter "
            "(e.g. my_api)"
        )
    if keyword.iskeyword(name):
        raise ScaffoldError(f"invalid connector name {name!r}: it is a Python keyword")


def new_connector(name: str, directory: Path | None = None) -> tuple[Path, list[Path]]:
    """Create the plugin package for connector `name`; returns its folder and the files written.

    The folder must not exist yet: an existing package is never overwritten.
    """
    validate_name(name)
    names = ConnectorPackage(name)
    target = Path(directory) if directory is not None else Path.cwd() / names.package
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another --directory or remove it first")
    values = names.values()
    written = []
    for relative, template in templates("connector"):
        path = target / Path(*(names.module if part == MODULE_DIR else part for part in relative))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        written.append(path)
    return target, written


def render(text: str, values: dict[str, str]) -> str:
    """Replace every {{key}}; an unknown key is a bug in the template, so it fails loudly."""

    def replace(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return PLACEHOLDER.sub(replace, text)


def templates(kind: str) -> list[tuple[tuple[str, ...], Traversable]]:
    """The templates of one kind (`connector`, `project`), as (relative path without .tmpl, file), sorted."""
    return _templates(resources.files(__package__) / "templates" / kind)


def _templates(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    """Every template below folder, as (relative path without the .tmpl suffix, file), sorted."""
    found = []
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.is_dir():
            found.extend(_templates(item, (*prefix, item.name)))
        elif item.name.endswith(TEMPLATE_SUFFIX):
            found.append(((*prefix, item.name.removesuffix(TEMPLATE_SUFFIX)), item))
    return found
