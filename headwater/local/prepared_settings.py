"""Prefect's settings and logging configuration for the warm runner's next call, prepared by the spare while
it waits (headwater.local.warm_worker).

A process starting afresh reads Prefect's settings from its PREFECT_ variables, its folder's ``.env``,
``prefect.toml`` and ``pyproject.toml`` and the profiles file, then fills its logging configuration's
template with every one of them: about 0.1-0.2 s of each run. A runner's next call most likely comes from
where its last one came: the same folder, the same PREFECT_ variables. The spare reads both for such a call
ahead of time (``prepare``); the call takes them only when its variables, its folder and those files are
exactly what they were then (``PreparedSettings.fits``), and otherwise reads them afresh, as before.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.common.runtime import with_defaults

# Prefect's settings read environment variables of this prefix, in any case (pydantic-settings' default).
PREFECT_PREFIX = "PREFECT_"
# Files in the working folder that Prefect's settings read.
FOLDER_FILES = (".env", "prefect.toml", "pyproject.toml")


def prefect_variables(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name.upper().startswith(PREFECT_PREFIX)}


@dataclass(frozen=True)
class PreparedSettings:
    key: tuple  # what the settings were read from: variables, folder, and the files' stamps
    context: Any  # prefect.context.SettingsContext
    logging_path: Path
    logging_config: dict

    def fits(self, environ: Mapping[str, str], cwd: str) -> bool:
        """True when a process with ``environ`` in ``cwd`` would read these very settings now."""
        return _key(with_defaults(environ), cwd, self.context.settings) == self.key

    @contextmanager
    def logging_configuration(self) -> Iterator[None]:
        """Prefect's `setup_logging` takes the prepared configuration instead of filling the template again."""
        import prefect.logging.configuration as configuration

        original = configuration.load_logging_config

        def load(path: Path) -> dict:
            return copy.deepcopy(self.logging_config) if Path(path) == self.logging_path else original(path)

        configuration.load_logging_config = load
        try:
            yield
        finally:
            configuration.load_logging_config = original


def prepare(prefect_environ: Mapping[str, str], cwd: str) -> PreparedSettings | None:
    """Read the settings and logging configuration a call with these PREFECT_ variables, in ``cwd``, would read;
    this process's environment and folder are as they were afterwards. None when they cannot be read."""
    import prefect.context
    import prefect.logging.configuration as configuration

    saved_environ, saved_cwd = dict(os.environ), os.getcwd()
    try:
        for name in prefect_variables(os.environ):
            del os.environ[name]
        os.environ.update(with_defaults(prefect_environ))
        os.chdir(cwd)
        context = prefect.context.root_settings_context()
        settings = context.settings
        logging_path = Path(settings.logging.config_path)
        if not logging_path.exists():
            logging_path = configuration.DEFAULT_LOGGING_SETTINGS_PATH
        with prefect.context.SettingsContext(profile=context.profile, settings=settings):
            logging_config = configuration.load_logging_config(logging_path)
        return PreparedSettings(_key(os.environ, cwd, settings), context, logging_path, logging_config)
    except Exception:  # the call reads them itself, and reports what is wrong with them
        return None
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)


def _key(environ: Mapping[str, str], cwd: str, settings) -> tuple:
    files = [Path(cwd) / name for name in FOLDER_FILES]
    files += [Path(settings.profiles_path), Path(settings.logging.config_path)]
    return (tuple(sorted(prefect_variables(environ).items())), os.path.realpath(cwd),
            tuple((str(path), _stamp(path)) for path in files))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size
