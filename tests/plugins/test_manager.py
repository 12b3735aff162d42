"""Connector plugins as users install them: a real third-party package, broken ones, HEADWATER_PLUGINS, secrets.

Plugin packages are pip-installed into a folder of their own (`pip install --target`) and put on
PYTHONPATH (or sys.path) only where a test wants them: the shared environment, and every other test
running in it, never sees them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import date
from pathlib import Path

import pytest

from headwater.load.pipeline import load_source
from headwater.plugins import manager as plugins
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.commands.test_connectors import table_rows
from tests.conftest import REPO, query
from tests.servers import postgres_server_url

EXAMPLE = REPO / "examples" / "headwater-exchange-rates"
WIDE = "250"


def pip_install(project: Path, target: Path) -> None:
    """Build and install a local project into target, offline when the environment can build it itself."""
    # A source tree is built in place; building a copy keeps build/ and *.egg-info out of the repository.
    build_copy = Path(tempfile.mkdtemp(prefix="headwater-build-")) / project.name
    shutil.copytree(project, build_copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    if importlib.util.find_spec("setuptools") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "setuptools>=77"], check=True)
    # With setuptools present, no isolated build environment has to be fetched from the package index.
    command.append("--no-build-isolation")
    try:
        subprocess.run([*command, str(build_copy)], check=True, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(build_copy.parent, ignore_errors=True)


def headwater(*args: str, pythonpath: list[Path] = (), cwd: Path | None = None, **env: str):
    environment = {**os.environ, "COLUMNS": WIDE, **env}
    environment["PYTHONPATH"] = os.pathsep.join(str(path) for path in pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "headwater.cli", *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=120,
    )


def load_fake_api():
    """The example plugin's own stand-in for the exchange-rate API (it lives in the plugin's tests)."""
    spec = importlib.util.spec_from_file_location("fake_rates_api", EXAMPLE / "tests" / "fake_rates_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exchange_rates_site():
    """examples/headwater-exchange-rates, pip-installed into a folder of its own; removed afterwards."""
    site = Path(tempfile.mkdtemp(prefix="headwater-plugin-site-"))
    pip_install(EXAMPLE, site)
    yield site
    shutil.rmtree(site, ignore_errors=True)


@pytest.fixture(scope="module")
def broken_site():
    """Two installed plugins that go wrong: one cannot be imported, one registers a built-in's name."""
    site = Path(tempfile.mkdtemp(prefix="headwater-broken-site-"))
    plugins_found = {
        "headwater_broken_demo": ("broken_demo", "headwater_broken_demo_module_that_does_not_exist"),
        "headwater_copycat": ("copycat", "headwater_copycat"),
    }
    for dist, (entry_point, module) in plugins_found.items():
        info = site / f"{dist}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[headwater]\n{entry_point} = {module}\n")
    (site / "headwater_copycat.py").write_text(
        textwrap.dedent(
            '''\
            import dlt
            import pluggy

            hookimpl = pluggy.HookimplMarker("headwater")


            @dlt.source
            def files(path: str):
                """Another connector that wants the name filesystem."""
                return []


            @hookimpl
            def register_connectors(register):
                register("filesystem", files)
            '''
        )
    )
    yield site
    shutil.rmtree(site, ignore_errors=True)


def test_installed_plugin_is_listed_with_its_package_and_version(exchange_rates_site):
    run = headwater("connectors", "list", pythonpath=[exchange_rates_site])
    assert run.returncode == 0, run.stderr
    rows = table_rows(run.stdout)
    assert rows["exchange_rates"][:2] == ["exchange_rates", "headwater-exchange-rates 0.1.0"]
    assert rows["exchange_rates"][2].startswith("Daily currency exchange rates")
    assert {"filesystem", "sql_database", "rest_api"} <= set(rows)
    assert "problem" not in run.stdout

    show = headwater("connectors", "show", "exchange_rates", pythonpath=[exchange_rates_site])
    assert show.returncode == 0, show.stderr
    settings = table_rows(show.stdout)
    assert settings["api_key"] == ["api_key", "str | None", "None", "no", "yes"]
    assert settings["start_date"][1:4] == ["date | None", "None", "no"]
    assert settings["rates"] == ["rates", "date, currency", "date", ""]


def test_plugin_connector_loads_rows_into_postgres_incrementally(
    exchange_rates_site, tmp_path, database_url, monkeypatch
):
    monkeypatch.syspath_prepend(str(exchange_rates_site))
    # A registry of its own: the process-wide one was built before the plugin was on sys.path.
    registry = plugins.connector_registry.__wrapped__()
    assert registry.get("exchange_rates").plugin.package == "headwater-exchange-rates"
    fake = load_fake_api()
    config = tmp_path / "headwater.yaml"
    with fake.FakeRatesApi(api_key="s3cret") as api:
        api.publish(date(2024, 3, 4), 5)
        monkeypatch.setenv("FX_API_KEY", "s3cret")
        config.write_text(
            textwrap.dedent(
                f"""\
                sources:
                  fx:
                    connector: exchange_rates
                    settings:
                      base_url: {api.url}
                      start_date: 2024-03-01
                      symbols: [USD, GBP]
                      api_key: ${{FX_API_KEY}}
                    tables:
                      rates: {{primary_key: [date, currency]}}
                transform: {{enabled: false}}
                quality: {{enabled: false}}
                """
            )
        )
        project = load_project(config, registry)
        source = project.source("fx")
        address = PostgresAddress.from_url(database_url)

        first = load_source(project, source, registry.get("exchange_rates"), address)
        assert first.ok, first.error
        assert first.rows == 10  # 5 working days x 2 currencies
        api.publish(date(2024, 3, 11), 1)
        second = load_source(project, source, registry.get("exchange_rates"), address)
        assert second.ok, second.error
        assert second.rows == 2

    assert api.requests[-1] == "/2024-03-08..?base=EUR&symbols=USD%2CGBP"  # from the last loaded day on
    rows = query(
        database_url, "select count(*), count(distinct (date, currency)), min(date), max(date) from raw_fx.rates"
    )
    assert rows == [(12, 12, date(2024, 3, 4), date(2024, 3, 11))]
    usd = query(database_url, "select rate from raw_fx.rates where date = '2024-03-04' and currency = 'USD'")
    assert usd == [(fake.EUR_RATES["USD"],)]


def test_check_tests_a_plugin_source_and_refuses_an_unset_secret(exchange_rates_site, tmp_path):
    fake = load_fake_api()
    with fake.FakeRatesApi() as api:
        api.publish(date(2024, 3, 4), 1)
        config = tmp_path / "headwater.yaml"
        config.write_text(f"sources:\n  fx:\n    connector: exchange_rates\n    settings: {{base_url: '{api.url}'}}\n")
        env = {"HEADWATER_CONFIG": str(config), "HEADWATER_DATABASE_URL": f"{postgres_server_url()}/postgres"}
        ok = headwater("check", pythonpath=[exchange_rates_site], cwd=tmp_path, **env)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert table_rows(ok.stdout)["fx"][1:3] == ["exchange_rates", "OK"]

    config.write_text(
        "sources:\n  fx:\n    connector: exchange_rates\n    settings:\n      api_key: ${UNSET_FX_KEY_NAME}\n"
    )
    missing = headwater("check", pythonpath=[exchange_rates_site], cwd=tmp_path, **env)
    assert missing.returncode == 2
    assert f"{config}:5: sources.fx.settings.api_key: ${{UNSET_FX_KEY_NAME}} is not set" in missing.stderr
    assert "export UNSET_FX_KEY_NAME=..." in missing.stderr


def test_broken_and_duplicate_plugins_are_reported_by_name_and_the_rest_still_load(broken_site):
    run = headwater("connectors", "list", pythonpath=[broken_site])
    assert run.returncode == 0, run.stderr
    assert "2 plugin problem(s)" in run.stdout
    assert (
        "plugin 'broken_demo' (headwater-broken-demo) failed to import "
        "'headwater_broken_demo_module_that_does_not_exist': ModuleNotFoundError"
    ) in run.stdout
    assert (
        "plugin 'copycat' (headwater-copycat) registers connector 'filesystem', already registered by plugin "
        "'builtin' (headwater)"
    ) in run.stdout
    rows = table_rows(run.stdout)
    assert {"filesystem", "sql_database", "rest_api"} <= set(rows)
    assert rows["filesystem"][1].startswith("headwater ")  # the first registration is kept


def test_headwater_plugins_restricts_which_plugins_load(exchange_rates_site, broken_site):
    only_fx = headwater(
        "connectors", "list", pythonpath=[exchange_rates_site, broken_site], HEADWATER_PLUGINS="exchange_rates"
    )
    assert "exchange_rates" in table_rows(only_fx.stdout)
    assert "problem" not in only_fx.stdout  # the broken plugins were not even imported

    other = headwater("connectors", "list", pythonpath=[exchange_rates_site], HEADWATER_PLUGINS="something_else")
    rows = table_rows(other.stdout)
    assert "exchange_rates" not in rows
    assert {"filesystem", "sql_database", "rest_api"} <= set(rows)  # built-ins always load


def test_the_example_plugin_passes_its_own_acceptance_tests(exchange_rates_site):
    """examples/headwater-exchange-rates/tests, run the way its author runs them."""
    workdir = Path(tempfile.mkdtemp(prefix="headwater-example-tests-"))
    try:
        shutil.copytree(EXAMPLE, workdir / EXAMPLE.name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        env = {
            **os.environ,
            "PYTHONPATH": str(exchange_rates_site),
            "HEADWATER_TEST_SERVER_URL": postgres_server_url(),
        }
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=workdir / EXAMPLE.name, env=env, capture_output=True, text=True, timeout=300,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
