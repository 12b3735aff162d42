"""`${prefect:block-name}`: a Prefect Secret block's value, read from the server only when a value is needed.

Checking the config contacts no server; a run reads each block once; a block that cannot be read is
reported by name, with the server and what to do, and its value is never shown.
"""

from __future__ import annotations

import secrets
import textwrap
import time

import pytest

from headwater.common.interpolation import SecretBlockError
from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project
from tests.conftest import free_port

CONFIG = """\
    sources:
      shop_db:
        connector: sql_database
        settings:
          credentials: ${prefect:%(block)s}
        tables:
          customers:
            steps:
              - pii: {email: {hash: {salt: "${prefect:%(salt)s}"}}}
    alerts:
      - webhook: {url: "${prefect:%(hook)s}", headers: {Authorization: "Bearer ${prefect:%(token)s}"}}
    """


def write_project(tmp_path, **blocks: str):
    names = {"block": "shop-db-url", "salt": "pii-salt", "hook": "alert-url", "token": "alert-token"} | blocks
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(CONFIG % names))
    return load_project(tmp_path / "headwater.yaml", connector_registry())


@pytest.fixture
def unreachable_prefect(monkeypatch):
    """PREFECT_API_URL naming a port nothing listens on: any attempt to reach Prefect fails at once."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


def test_checking_a_config_with_secret_blocks_contacts_no_server(tmp_path, unreachable_prefect):
    started = time.perf_counter()
    project = write_project(tmp_path)

    assert time.perf_counter() - started < 5  # no connection attempt, no retries
    assert project.secret_blocks() == {"shop-db-url", "pii-salt", "alert-url", "alert-token"}
    # The parsed config keeps the references; the values are read by the run that needs them.
    assert project.source("shop_db").settings == {"credentials": "${prefect:shop-db-url}"}
    with pytest.raises(SecretBlockError) as raised:
        project.resolved_settings(project.source("shop_db"))
    assert str(raised.value).startswith(
        f"secret block 'shop-db-url': the Prefect server {unreachable_prefect} is unreachable (ConnectError: ")
    assert "start it (`headwater up`) or set PREFECT_API_URL to the server that holds the block" in str(raised.value)


def test_a_block_name_prefect_would_refuse_is_a_config_error(tmp_path, unreachable_prefect):
    with pytest.raises(ConfigError) as raised:
        write_project(tmp_path, block="Shop_DB", token="")

    message = str(raised.value)
    assert "2 problems" in message
    assert (":5: sources.shop_db.settings.credentials: ${prefect:Shop_DB}: a Prefect block name is lower-case "
            "letters, digits and dashes, e.g. ${prefect:shop-db-url}") in message
    assert ":11: alerts.0.webhook.headers: ${prefect:}: a Prefect block name is lower-case letters" in message


def test_a_literal_secret_is_refused_with_the_block_form_offered(tmp_path):
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent("""\
        sources:
          shop_db:
            connector: sql_database
            settings: {credentials: "postgresql://loader:hunter2@db/shop"}
        """))
    with pytest.raises(ConfigError) as raised:
        load_project(tmp_path / "headwater.yaml", connector_registry())
    assert ("'credentials' is a secret; do not write it in the file, reference it as ${CREDENTIALS} and set that in "
            "the environment or") in str(raised.value)
    assert "or as a Prefect Secret block: ${prefect:credentials}" in str(raised.value)


@pytest.mark.slow
def test_blocks_are_read_from_the_server_once_and_missing_ones_are_named(tmp_path, prefect_api, monkeypatch):
    from prefect.blocks.system import Secret

    suffix = secrets.token_hex(4)
    url_block, salt_block = f"shop-db-url-{suffix}", f"pii-salt-{suffix}"
    json_block, missing_block = f"alert-url-{suffix}", f"alert-token-{suffix}"
    database_url = f"postgresql://loader:{secrets.token_urlsafe(12)}@db.internal/shop"
    Secret(value=database_url).save(url_block)
    Secret(value="12345").save(salt_block)  # text that reads as JSON stays text
    Secret(value={"url": "https://hooks.example.com/x"}).save(json_block)
    try:
        project = write_project(tmp_path, block=url_block, salt=salt_block, hook=json_block, token=missing_block)
        assert project.resolved_settings(project.source("shop_db")) == {"credentials": database_url}
        Secret.delete(url_block)  # read once: the run keeps using what it read
        assert project.resolved_settings(project.source("shop_db")) == {"credentials": database_url}
        assert project.variables.resolve(project.source("shop_db").tables[0].steps[0]) == {
            "pii": {"email": {"hash": {"salt": "12345"}}}}

        with pytest.raises(SecretBlockError) as raised:
            project.variables.resolve(project.alerts[0].options)
        assert str(raised.value) == (f"secret block '{json_block}' holds dict, not text; save its value as a string")
        with pytest.raises(SecretBlockError) as raised:
            project.variables.resolve({"Authorization": f"Bearer ${{prefect:{missing_block}}}"})
        assert str(raised.value) == (
            f"secret block '{missing_block}' not found on {prefect_api}; create it there: Prefect UI, Blocks, "
            f"Secret named {missing_block}; or Secret(value=...).save('{missing_block}') from prefect.blocks.system")
    finally:
        for name in (salt_block, json_block):
            Secret.delete(name)
