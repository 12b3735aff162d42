"""prefect.yaml, read for what `headwater deploy` needs before Prefect reads it: each deployment's name,
entrypoint and work pool. Prefect's own `prefect deploy` reads the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.common.yaml_source import KeyPath, YamlDocument, YamlSyntaxError, read_yaml

PREFECT_FILE = "prefect.yaml"


class PrefectFileError(ValueError):
    """prefect.yaml is missing or does not say what `headwater deploy` needs; the message names file and line."""


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str  # path/to/file.py:flow_function
    work_pool: str
    # As written (YAML anchors resolved): what the per-source deployments take over from daily's.
    work_queue: str | None = field(default=None, compare=False)
    schedules: tuple = field(default=(), compare=False)


def read_prefect_file(root: Path, name: str = PREFECT_FILE) -> list[DeploymentSpec]:
    """The deployments of root/prefect.yaml (or another file of root), in file order."""
    path = root / name
    if not path.is_file():
        raise PrefectFileError(f"{path}: not found. `headwater deploy` registers the deployments this file "
                               "defines; run it from the project folder (the one holding headwater.yaml).")
    try:
        document = read_yaml(path)
    except YamlSyntaxError as error:
        raise PrefectFileError(str(error)) from None
    data = document.data if isinstance(document.data, dict) else {}
    deployments = data.get("deployments")
    if not isinstance(deployments, list) or not deployments:
        raise PrefectFileError(_at(document, ("deployments",),
                                   "`deployments:` must list at least one deployment (name, entrypoint, work_pool)."))
    specs = [_spec(document, index, item) for index, item in enumerate(deployments)]
    names = [spec.name for spec in specs]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise PrefectFileError(_at(document, ("deployments", index, "name"),
                                       f"deployments[{index}].name: `{name}` is used twice; each needs its own name."))
    return specs


def _spec(document: YamlDocument, index: int, item: Any) -> DeploymentSpec:
    where = ("deployments", index)
    if not isinstance(item, dict):
        raise PrefectFileError(_at(document, where, f"deployments[{index}] must be a mapping with name, entrypoint "
                                                    "and work_pool."))
    name = _text(document, item.get("name"), (*where, "name"), "the deployment's name, e.g. `daily`")
    entrypoint = _text(document, item.get("entrypoint"), (*where, "entrypoint"),
                       "the flow to deploy as path/to/file.py:function, e.g. `flows/daily.py:daily`")
    if ":" not in entrypoint:
        message = f"deployments[{index}].entrypoint: `{entrypoint}` must be path/to/file.py:function."
        raise PrefectFileError(_at(document, (*where, "entrypoint"), message))
    pool = item.get("work_pool")
    pool_name = _text(document, pool.get("name") if isinstance(pool, dict) else None, (*where, "work_pool", "name"),
                      "the work pool its runs wait in, e.g. `work_pool: {name: headwater}`")
    schedules = item.get("schedules")
    return DeploymentSpec(name=name, entrypoint=entrypoint, work_pool=pool_name, work_queue=pool.get("work_queue_name"),
                          schedules=tuple(schedules) if isinstance(schedules, list) else ())


def _text(document: YamlDocument, value: Any, key_path: KeyPath, what: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    dotted = ".".join(f"[{key}]" if isinstance(key, int) else key for key in key_path).replace(".[", "[")
    raise PrefectFileError(_at(document, key_path, f"{dotted}: missing; give {what}."))


def _at(document: YamlDocument, key_path: KeyPath, message: str) -> str:
    line = document.line_of(key_path)
    return f"{document.path}:{line}: {message}" if line else f"{document.path}: {message}"
