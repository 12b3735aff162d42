"""Soda connects with the destination's sslmode: a data source that names none is refused, not run weaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.marts.quality import verify_contracts
from headwater.postgres.address import PostgresAddress

DATASOURCE_BEFORE_TLS = """\
type: postgres
name: headwater
connection:
  host: ${env.HEADWATER_PG_HOST}
  port: ${env.HEADWATER_PG_PORT}
  user: ${env.HEADWATER_PG_USER}
  password: ${env.HEADWATER_PG_PASSWORD}
  database: ${env.HEADWATER_PG_DATABASE}
"""
# Nothing listens on port 9: a contract that got as far as connecting would fail with another message.
DESTINATION = "postgresql://loader:pw@127.0.0.1:9/warehouse"


def quality_folder(root: Path, datasource: str) -> Path:
    (root / "contracts" / "raw_shop").mkdir(parents=True)
    (root / "contracts" / "raw_shop" / "orders.yml").write_text(
        "dataset: headwater/${env.HEADWATER_PG_DATABASE}/raw_shop/orders\nchecks:\n  - row_count:\n")
    (root / "datasource.yml").write_text(datasource)
    return root


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_a_data_source_without_sslmode_is_refused_when_the_destination_asks_for_tls(tmp_path, sslmode):
    quality = quality_folder(tmp_path, DATASOURCE_BEFORE_TLS)

    [result] = verify_contracts(quality, PostgresAddress.from_url(f"{DESTINATION}?sslmode={sslmode}"))

    assert not result.passed
    assert result.error.startswith(f"{quality / 'datasource.yml'}: `connection` names no sslmode")
    assert f"the destination asks for sslmode={sslmode}" in result.error
    assert "Add `sslmode: ${env.HEADWATER_PG_SSLMODE}` under `connection`" in result.error


def test_a_data_source_with_sslmode_goes_on_to_connect(tmp_path):
    quality = quality_folder(tmp_path, DATASOURCE_BEFORE_TLS + "  sslmode: ${env.HEADWATER_PG_SSLMODE}\n")

    [result] = verify_contracts(quality, PostgresAddress.from_url(f"{DESTINATION}?sslmode=verify-full"))

    assert result.error.startswith(
        "cannot connect to the destination postgresql://loader:***@127.0.0.1:9/warehouse?sslmode=verify-full: ")


def test_without_tls_settings_a_data_source_written_before_them_still_works(tmp_path, monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    quality = quality_folder(tmp_path, DATASOURCE_BEFORE_TLS)

    [result] = verify_contracts(quality, PostgresAddress.from_url(DESTINATION))

    assert result.error.startswith("cannot connect to the destination postgresql://loader:***@127.0.0.1:9/warehouse: ")
