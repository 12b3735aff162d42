"""The `grants:` block: default roles, named roles and members, and every mistake reported at its key and line."""

from __future__ import annotations

import textwrap

import pytest

from headwater.plugins.manager import connector_registry
from headwater.project.config import ConfigError, load_project
from headwater.project.grants import GrantsConfig, RoleConfig

SOURCES = """\
sources:
  files:
    connector: filesystem
    settings: {bucket_url: landing, files: {orders: "orders/*.csv"}}
"""


def load(tmp_path, grants: str):
    (tmp_path / "landing").mkdir(exist_ok=True)
    path = tmp_path / "headwater.yaml"
    path.write_text(SOURCES + textwrap.dedent(grants))
    return load_project(path, connector_registry())


def test_without_a_grants_block_runs_keep_the_users_own_rights(tmp_path):
    assert load(tmp_path, "").grants is None


@pytest.mark.parametrize("block", ["grants: {}\n", "grants:\n"])
def test_an_empty_grants_block_takes_the_default_roles(tmp_path, block):
    grants = load(tmp_path, block).grants
    assert grants == GrantsConfig()
    assert [role.name for role in grants.roles] == ["headwater_loader", "headwater_transformer", "headwater_reader"]
    assert grants.transform_schemas == ("staging",)


def test_roles_members_and_dbt_schemas_are_read_as_written(tmp_path):
    grants = load(tmp_path, """\
        grants:
          loader: {role: etl_loader, members: [etl]}
          transformer: {members: [etl, ci], schemas: [staging, intermediate]}
          reader: {role: bi_reader, members: metabase}
        """).grants
    assert grants.loader == RoleConfig("etl_loader", ("etl",))
    assert grants.transformer == RoleConfig("headwater_transformer", ("etl", "ci"))
    assert grants.reader == RoleConfig("bi_reader", ("metabase",))
    assert grants.transform_schemas == ("staging", "intermediate")


def test_every_mistake_is_reported_at_its_line_and_key_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, """\
            grants:
              loader: {role: "Loader Role"}
              transformer: {role: etl_loader, schemas: [raw_shop]}
              reader: {role: etl_loader, members: [etl_loader, 5], grant: all}
              writer: {}
            """)
    message = str(error.value)
    lines = message.splitlines()
    assert "Invalid project config (7 problems); nothing was run or written" in lines[0]
    expected = [
        ":6: grants.loader.role: 'Loader Role' is not a plain role name: use lower-case letters, digits and _",
        ":7: grants.transformer.schemas.0: 'raw_shop' is not a schema dbt builds into",
        ":8: grants.reader.role: 'etl_loader' is already the transformer role; each kind of work needs a role",
        ":8: grants.reader.members.0: 'etl_loader' is one of the three roles; members are login users",
        ":8: grants.reader.members.1: expected a login user name (text), got int 5; write it in quotes",
        ":8: grants.reader.grant: unknown key; allowed: role, members",
        ":9: grants.writer: unknown key; allowed: loader, transformer, reader",
    ]
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, message)


def test_grants_of_the_wrong_kind_say_what_is_expected(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, "grants: [loader]\n")
    assert ":5: grants: must be a mapping, e.g. {reader: {members: [analyst]}} or {} for the default roles; " \
           "got a list ['loader']" in str(error.value)
