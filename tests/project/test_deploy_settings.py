"""The `deploy:` block: defaults, per-source pools and schedules as written, and every mistake at its key and line."""

from __future__ import annotations

import pytest

from headwater.project.config import ConfigError
from headwater.project.deploy_settings import DeploySettings
from tests.project.test_grants import load  # headwater.yaml with one source, `files`, and the block given


def test_without_a_deploy_block_headwater_deploy_registers_prefect_yaml_and_two_loads_write_at_once(tmp_path):
    settings = load(tmp_path, "").deploy
    assert settings == DeploySettings()
    assert (settings.per_source, settings.destination_limit, settings.destination_slots) == (
        False, "headwater-destination", 2)
    assert (settings.build_pool, settings.build_schedule) == (None, "0 * * * *")


def test_pools_schedules_and_the_build_deployment_are_read_as_written(tmp_path):
    settings = load(tmp_path, """\
        deploy:
          per_source: true
          destination_slots: 4
          destination_limit: warehouse
          pools: {files: big-machine}
          schedules: {files: "*/15 * * * *"}
          build: {pool: transform, schedule: "30 6 * * *"}
        """).deploy
    assert settings == DeploySettings(per_source=True, destination_slots=4, destination_limit="warehouse",
                                      pools={"files": "big-machine"}, schedules={"files": "*/15 * * * *"},
                                      build_pool="transform", build_schedule="30 6 * * *")


def test_every_mistake_is_reported_at_its_line_and_key_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, """\
            deploy:
              per_source: "yes"
              destination_slots: 0
              pools: {shop: nightly, files: ""}
              schedules: {files: "every morning"}
              build: {schedule: "61 * * * *", workers: 2}
              pool: nightly
            """)
    path = tmp_path / "headwater.yaml"
    lines = str(error.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        f"{path}:6: deploy.per_source: 'yes' in quotes is text, not a boolean; write true without quotes",
        f"{path}:7: deploy.destination_slots: expected a whole number of at least 1 (loads writing at once), "
        "got int 0",
        f"{path}:8: deploy.pools.shop: `shop` is not a source of this project; its sources: files",
        f"{path}:8: deploy.pools.files: expected a name, got str ''",
        f"{path}:9: deploy.schedules.files: not a cron expression Prefect accepts: Invalid cron string: "
        '"every morning"',
        f"{path}:10: deploy.build.workers: unknown key; allowed: pool, schedule",
        f"{path}:10: deploy.build.schedule: not a cron expression Prefect accepts: Invalid cron string: "
        '"61 * * * *"',
        f"{path}:11: deploy.pool: unknown key; allowed: per_source, destination_slots, destination_limit, pools, "
        "schedules, build",
    ]
