"""`headwater new connector`: the generated package installs, registers, and passes the acceptance kit as generated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from headwater.cli import main
from tests.plugins.test_manager import pip_install
from tests.servers import postgres_server_url

NAME = "demo_feed"
PACKAGE = "headwater-demo-feed"


@pytest.fixture(scope="module")
def scaffolded():
    """`headwater new connector demo_feed` run in a fresh folder, as a user runs it.

    Not pytest's tmp_path: the generated tests may start an embedded PostgreSQL, which refuses to
    run from folders its (unprivileged) user cannot reach.
    """
    workdir = Path(tempfile.mkdtemp(prefix="headwater-scaffold-"))
    run = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "new", "connector", NAME],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )
    yield workdir, run
    shutil.rmtree(workdir, ignore_errors=True)


def test_new_connector_writes_a_plugin_package_and_says_what_next(scaffolded):
    workdir, run = scaffolded
    assert run.returncode == 0, run.stderr
    package = workdir / PACKAGE
    files = sorted(str(path.relative_to(package)) for path in package.rglob("*") if path.is_file())
    assert files == [
        ".gitignore", "README.md", "headwater_demo_feed/__init__.py", "headwater_demo_feed/source.py",
        "pyproject.toml", "tests/test_connector.py",
    ]
    assert f"pip install -e './{PACKAGE}[test]'" in run.stdout
    assert f"cd ./{PACKAGE} && pytest" in run.stdout

    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == PACKAGE
    # A plugin must not pull Headwater into production installs: only the test extra needs it.
    assert [dependency.split(">")[0] for dependency in project["dependencies"]] == ["dlt", "pluggy"]
    assert project["optional-dependencies"] == {"test": ["headwater", "pytest"]}
    assert project["entry-points"] == {"headwater": {NAME: "headwater_demo_feed"}}
    assert "import headwater" not in (package / "headwater_demo_feed" / "__init__.py").read_text()
    assert 'register(\n        "demo_feed",' in (package / "headwater_demo_feed" / "__init__.py").read_text()


def test_the_generated_package_passes_the_acceptance_kit(scaffolded):
    workdir, run = scaffolded
    assert run.returncode == 0, run.stderr
    site = workdir / "site"
    # --no-deps: the test extra (headwater, pytest) and dlt and pluggy are already in this environment.
    pip_install(workdir / PACKAGE, site)
    env = {**os.environ, "PYTHONPATH": str(site), "HEADWATER_TEST_SERVER_URL": postgres_server_url()}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=workdir / PACKAGE, env=env, capture_output=True, text=True, timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout

    listed = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "connectors", "show", NAME],
        env={**env, "COLUMNS": "250"}, capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert f"package: {PACKAGE} 0.1.0" in listed.stdout


@pytest.mark.parametrize(
    "name, message",
    [
        ("Demo-Feed", "invalid connector name 'Demo-Feed': use lower-case letters, digits and _"),
        ("9lives", "invalid connector name '9lives'"),
        ("class", "it is a Python keyword"),
        ("filesystem", "a connector named 'filesystem' is already installed (plugin 'builtin', headwater"),
    ],
)
def test_bad_names_are_refused(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.chdir(tmp_path)
    assert main(["new", "connector", name]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["new", "connector", "other_feed", "--directory", str(target)]) == 2
    assert f"{target} already exists" in capsys.readouterr().err
    assert [path.name for path in target.iterdir()] == ["keep.txt"]

    assert main(["new", "connector", "other_feed", "--directory", "elsewhere"]) == 0
    assert (tmp_path / "elsewhere" / "headwater_other_feed" / "source.py").exists()
