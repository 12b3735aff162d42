"""Run the bundled example next to a pipeline run: the shop exists, its API serves, the config can reach it."""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from headwater.common.interpolation import SECRETS_FILE
from headwater.example.api_server import serve_api
from headwater.example.changes import DayChanges
from headwater.example.simulator import Shop
from headwater.project.config import ProjectConfig

logger = logging.getLogger(__name__)


@contextmanager
def _one_at_a_time(state_dir: Path) -> Iterator[None]:
    """Per-source deployments start their loads together, each in a process of its own: the first creates
    the shop (and its API token) while the others wait, then find it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "example.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def project_shop(project: ProjectConfig) -> Shop:
    return Shop(project.state_dir / "example", secrets_file=project.state_dir / SECRETS_FILE)


@contextmanager
def running_example(project: ProjectConfig, advance_days: int = 0) -> Iterator[DayChanges | None]:
    """For a project with `example: shop`: create the shop on first use, advance it, and serve its API.

    Yields what the shop changed in this run (None for projects without an example).
    The API's URL and token reach the config as ${SHOP_API_URL} and ${SHOP_API_TOKEN}
    for the duration of the block only.
    """
    if project.example != "shop":
        yield None
        return
    shop = project_shop(project)
    with _one_at_a_time(project.state_dir):
        changes = shop.init()
        if advance_days > 0:
            changes = changes.then(shop.advance(advance_days))
    logger.info("Example shop at day %s", shop.day)
    token = shop.api_token
    with serve_api(shop.state_dir, token=token) as base_url:
        project.variables.provide("SHOP_API_URL", base_url)
        project.variables.provide("SHOP_API_TOKEN", token)
        yield changes
