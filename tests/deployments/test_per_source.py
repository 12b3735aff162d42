"""The per-source deployments written for `prefect deploy --all`, and the destination's global concurrency limit
created once and updated in place on a real Prefect server."""

from __future__ import annotations

import uuid

import yaml

from headwater.deployments.destination_limit import ensure_destination_limit
from headwater.deployments.per_source import PER_SOURCE_FILE, deploy_plan
from headwater.deployments.prefect_file import PREFECT_FILE, DeploymentSpec
from headwater.deployments.server import PrefectServer, prefect_client
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project

DAILY_SCHEDULE = [{"cron": "0 6 * * *", "timezone": "UTC"}]


def project_with(root, deploy_block: str):
    config = root / "headwater.yaml"
    config.write_text(config.read_text() + deploy_block)
    return load_project(config, connector_registry())


def test_one_load_deployment_per_enabled_source_and_a_build_with_daily_as_the_default(shop_project):
    config = shop_project / "headwater.yaml"
    config.write_text(config.read_text().replace("  shop_api:\n", "  shop_api:\n    enabled: false\n"))
    project = project_with(shop_project, "deploy: {pools: {shop_db: databases}, schedules: {shop_db: '0 * * * *'}}\n")

    plan = deploy_plan(shop_project, project, per_source=True)

    assert plan.prefect_file == PER_SOURCE_FILE
    assert plan.destination_limit == ("headwater-destination", 2)
    assert plan.specs == [DeploymentSpec("load-shop_files", "flows/source.py:load_source_flow", "headwater"),
                          DeploymentSpec("load-shop_db", "flows/source.py:load_source_flow", "databases"),
                          DeploymentSpec("build", "flows/build.py:build_flow", "headwater")]
    written = yaml.safe_load((shop_project / PER_SOURCE_FILE).read_text())
    assert [(d["name"], d["parameters"], d["work_pool"], d["schedules"]) for d in written["deployments"]] == [
        ("load-shop_files", {"source": "shop_files"}, {"name": "headwater", "work_queue_name": "default"},
         DAILY_SCHEDULE),
        ("load-shop_db", {"source": "shop_db"}, {"name": "databases", "work_queue_name": "default"},
         [{"cron": "0 * * * *", "timezone": "UTC"}]),
        ("build", {}, {"name": "headwater", "work_queue_name": "default"}, [{"cron": "0 * * * *", "timezone": "UTC"}]),
    ]


def test_without_per_source_headwater_deploy_registers_prefect_yaml_as_written(shop_project):
    plan = deploy_plan(shop_project, project_with(shop_project, ""), per_source=False)
    assert (plan.prefect_file, plan.destination_limit) == (PREFECT_FILE, None)
    assert plan.specs == [DeploymentSpec("daily", "flows/daily.py:daily", "headwater")]
    assert not (shop_project / PER_SOURCE_FILE).exists()


def test_the_destination_limit_is_created_once_and_updated_in_place(prefect_api):
    server = PrefectServer(api_url=prefect_api, origin="PREFECT_API_URL", ui_url=None)
    name = f"destination-{uuid.uuid4().hex[:8]}"

    changes = [ensure_destination_limit(server, name, slots).change for slots in (2, 2, 3)]

    with prefect_client(server) as client:
        limits = [limit for limit in client.read_global_concurrency_limits(limit=200) if limit.name == name]
    assert changes == ["created", "unchanged", "updated from 2 slots"]
    assert [(limit.limit, limit.active) for limit in limits] == [(3, True)]
    assert ensure_destination_limit(server, name, 1).describe() == (
        f"Global concurrency limit {name}: 1 slot (updated from 3 slots); each per-source load holds one while it "
        "writes")


def test_per_source_deployments_run_where_daily_runs_its_image_environment_and_steps(shop_project):
    prefect_yaml = shop_project / PREFECT_FILE
    document = yaml.safe_load(prefect_yaml.read_text())
    document["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": "/project"}}]
    document["deployments"][0]["work_pool"]["job_variables"] = {"image": "registry/shop:1.4",
                                                                "env": {"HEADWATER_CONFIG": "/project/headwater.yaml"}}
    prefect_yaml.write_text(yaml.safe_dump(document, sort_keys=False))

    deploy_plan(shop_project, project_with(shop_project, ""), per_source=True)

    written = yaml.safe_load((shop_project / PER_SOURCE_FILE).read_text())
    assert written["pull"] == document["pull"]
    assert [d["work_pool"]["job_variables"] for d in written["deployments"]] == \
        [document["deployments"][0]["work_pool"]["job_variables"]] * 4
