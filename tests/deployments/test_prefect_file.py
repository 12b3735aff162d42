"""prefect.yaml read for `headwater deploy`: deployments with their pools, YAML merge keys, problems by line."""

from __future__ import annotations

import pytest

from headwater.deployments.prefect_file import DeploymentSpec, PrefectFileError, read_prefect_file
from tests.conftest import REPO


def test_the_bundled_prefect_yaml_defines_daily_in_the_headwater_pool():
    assert read_prefect_file(REPO) == [DeploymentSpec("daily", "flows/daily.py:daily", "headwater")]


def test_merge_keys_carry_the_work_pool_into_each_deployment(tmp_path):
    (tmp_path / "prefect.yaml").write_text(
        "definitions:\n"
        "  common: &common\n"
        "    entrypoint: flows/daily.py:daily\n"
        "    work_pool: {name: nightly}\n"
        "deployments:\n"
        "  - <<: *common\n"
        "    name: daily\n"
        "  - <<: *common\n"
        "    name: backfill\n"
        "    work_pool: {name: big-machine}\n"
    )
    assert read_prefect_file(tmp_path) == [DeploymentSpec("daily", "flows/daily.py:daily", "nightly"),
                                           DeploymentSpec("backfill", "flows/daily.py:daily", "big-machine")]


@pytest.mark.parametrize("text, message", [
    ("name: project\n", "prefect.yaml: `deployments:` must list at least one deployment (name, entrypoint, "
                        "work_pool)."),
    ("name: project\ndeployments: []\n", "prefect.yaml:2: `deployments:` must list at least one deployment"),
    ("deployments:\n  - name: daily\n    entrypoint: flows/daily.py\n    work_pool: {name: p}\n",
     "prefect.yaml:3: deployments[0].entrypoint: `flows/daily.py` must be path/to/file.py:function."),
    ("deployments:\n  - entrypoint: flows/daily.py:daily\n    work_pool: {name: p}\n",
     "prefect.yaml:2: deployments[0].name: missing; give the deployment's name, e.g. `daily`."),
    ("deployments:\n  - {name: a, entrypoint: 'f.py:a', work_pool: {name: p}}\n"
     "  - {name: a, entrypoint: 'f.py:b', work_pool: {name: p}}\n",
     "prefect.yaml:3: deployments[1].name: `a` is used twice; each needs its own name."),
    ("deployments: [\n", "prefect.yaml:1:14: not valid YAML: the [ that starts here is never closed; add ]"),
])
def test_problems_name_the_file_line_and_key(tmp_path, text, message):
    (tmp_path / "prefect.yaml").write_text(text)
    with pytest.raises(PrefectFileError) as raised:
        read_prefect_file(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path}/{message}")


def test_a_missing_prefect_yaml_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(PrefectFileError) as raised:
        read_prefect_file(tmp_path)
    assert str(raised.value) == (f"{tmp_path}/prefect.yaml: not found. `headwater deploy` registers the deployments "
                                 "this file defines; run it from the project folder (the one holding headwater.yaml).")
