"""headwater.local.prepared_settings: Prefect's settings read ahead for the warm runner's next call are used
only when the call would read exactly those, and are then what a fresh read gives."""

from __future__ import annotations

import logging
import os

import prefect.context
import prefect.logging.configuration as configuration
import pytest

from headwater.local.prepared_settings import prefect_variables, prepare

API = "http://127.0.0.1:9/api"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A project folder, and a process whose Prefect settings are put back afterwards."""
    saved = prefect.context.GLOBAL_SETTINGS_CONTEXT
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    prefect.context.GLOBAL_SETTINGS_CONTEXT = saved
    configuration.setup_logging(incremental=False)


def caller(**variables: str) -> dict[str, str]:
    """A caller's environment: this process's, with these PREFECT_ variables instead of its own."""
    environ = {name: value for name, value in os.environ.items() if name not in prefect_variables(os.environ)}
    return {**environ, **variables}


def test_prepared_settings_are_those_a_fresh_read_gives_and_leave_the_process_as_it_was(folder):
    environ_before, cwd_before = dict(os.environ), os.getcwd()
    prepared = prepare(prefect_variables(caller(PREFECT_API_URL=API, PREFECT_LOGGING_LEVEL="DEBUG")), str(folder))

    assert prepared is not None
    assert dict(os.environ) == environ_before and os.getcwd() == cwd_before
    assert str(prepared.context.settings.api.url) == API
    assert prepared.context.settings.logging.level == "DEBUG"
    with prefect.context.SettingsContext(profile=prepared.context.profile, settings=prepared.context.settings):
        assert prepared.logging_config == configuration.load_logging_config(prepared.logging_path)


def test_they_fit_only_the_same_variables_folder_and_files(folder, tmp_path_factory):
    environ = caller(PREFECT_API_URL=API)
    prepared = prepare(prefect_variables(environ), str(folder))
    assert prepared.fits(environ, str(folder))

    assert not prepared.fits(caller(PREFECT_API_URL="http://127.0.0.1:10/api"), str(folder))
    assert not prepared.fits(caller(PREFECT_API_URL=API, prefect_logging_level="DEBUG"), str(folder))  # any case
    assert not prepared.fits(environ, str(tmp_path_factory.mktemp("elsewhere")))
    (folder / "prefect.toml").write_text("[logging]\nlevel = 'DEBUG'\n")
    assert not prepared.fits(environ, str(folder))
    again = prepare(prefect_variables(environ), str(folder))
    assert again.fits(environ, str(folder)) and again.context.settings.logging.level == "DEBUG"
    (folder / ".env").write_text("PREFECT_LOGGING_LEVEL=WARNING\n")
    assert not again.fits(environ, str(folder))


def test_prepared_logging_is_what_setup_logging_would_configure(folder):
    prepared = prepare(prefect_variables(caller(PREFECT_API_URL=API, PREFECT_LOGGING_LEVEL="DEBUG")), str(folder))
    prefect.context.GLOBAL_SETTINGS_CONTEXT = prepared.context
    original = configuration.load_logging_config
    with prepared.logging_configuration():
        configuration.setup_logging(incremental=False)
    assert configuration.load_logging_config is original  # put back afterwards
    assert logging.getLogger("prefect").level == logging.DEBUG
    used = {key: value for key, value in configuration.PROCESS_LOGGING_CONFIG.items() if key != "incremental"}
    assert used == prepared.logging_config


def test_settings_that_cannot_be_read_are_not_prepared(folder):
    assert prepare(prefect_variables(caller(PREFECT_API_URL=API)), str(folder / "gone")) is None
