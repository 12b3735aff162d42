"""`headwater db grants` and the role each step takes: the loader loads and owns raw_*, the transformer reads
raw_* and owns the marts, and neither does the other's work. Real Postgres, real dlt loads."""

from __future__ import annotations

import textwrap

import dlt
import psycopg
import pytest

from headwater.access.mart_grants import PiiFindings
from headwater.access.roles import GrantsError, apply_grants
from headwater.access.run_roles import RunRoles, run_roles
from headwater.cli import main
from headwater.load.pipeline import load_source
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from headwater.project.grants import GrantsConfig, RoleConfig
from tests.access.conftest import denied, owners
from tests.conftest import query


@dlt.resource(name="readings")
def readings(count: int = 3, with_unit: bool = False):
    for number in range(count):
        yield {"reading_id": number, "value": float(number), **({"unit": "C"} if with_unit else {})}


def sensors_project(root, roles, settings: str):
    registry = ConnectorRegistry()
    registry.registrar(Plugin("sensors", "headwater-sensors", "1.0"))("sensors", readings)
    path = root / "headwater.yaml"
    path.write_text(textwrap.dedent(f"""\
        sources:
          plant:
            connector: sensors
            settings: {settings}
            tables:
              readings: {{primary_key: reading_id}}
        """) + roles.grants_yaml())
    return load_project(path, registry), registry.get("sensors")


def test_raw_tables_made_before_the_roles_become_the_loaders_and_its_loads_alter_them(tmp_path, roles):
    project, connector = sensors_project(tmp_path, roles, "{count: 3}")
    # Before the roles existed, the database URL's user (here the superuser) loaded and owned raw_plant.
    assert load_source(project, project.source("plant"), connector, PostgresAddress.from_url(roles.database_url)).ok

    result = apply_grants(PostgresAddress.from_url(roles.database_url), project.grants, PiiFindings(frozenset()))

    rows = {(change.object, change.role, change.change) for change in result.changes}
    assert {(f"role {roles.loader}", roles.loader, "created (NOLOGIN)"),
            (f"role {roles.loader}", roles.etl, "member added"),
            (f"role {roles.reader}", roles.analyst, "member added"),
            ("schema raw_plant", roles.loader, "owner (was postgres)"),
            ("schema raw_plant", roles.transformer, "+ USAGE"),
            ("new tables of " + roles.loader, roles.transformer, "+ SELECT")} <= rows
    raw_tables = [row for row in rows if row[0].startswith("raw_plant:") and row[1] == roles.loader]
    assert raw_tables == [("raw_plant: 4 relations", roles.loader, "owner (was postgres)")]  # readings and dlt's
    assert (f"database {query(roles.database_url, 'select current_database()')[0][0]}", roles.loader,
            "+ CONNECT, CREATE, TEMPORARY") in rows

    # A run by etl takes the loader role; dlt adds a column to a table the loader now owns.
    project, connector = sensors_project(tmp_path, roles, "{count: 4, with_unit: true}")
    steps = run_roles(roles.address(roles.etl), project.grants)
    assert (steps.loader.user, steps.loader.role) == (roles.etl, roles.loader)
    assert steps.note == f"Ran loads as {roles.loader}, dbt and publishing as {roles.transformer} (SET ROLE from " \
                         f"{roles.etl})"
    loaded = load_source(project, project.source("plant"), connector, steps.loader)
    assert loaded.ok, loaded.error
    assert query(roles.database_url, "select count(*), count(unit) from raw_plant.readings") == [(4, 4)]
    assert owners(roles.database_url, ["raw_plant"]) == {"raw_plant": {roles.loader}}


def test_the_loader_and_transformer_can_each_do_their_work_and_nothing_of_the_others(tmp_path, roles):
    project, connector = sensors_project(tmp_path, roles, "{count: 3}")
    admin = PostgresAddress.from_url(roles.database_url)
    apply_grants(admin, project.grants, PiiFindings(frozenset()))
    steps = run_roles(roles.address(roles.etl), project.grants)
    assert load_source(project, project.source("plant"), connector, steps.loader).ok
    # A published mart made by someone else: `headwater db grants` gives it to the transformer.
    with admin.connect() as connection:
        connection.execute("create schema marts; create table marts.summary as select 1 as readings")
    apply_grants(admin, project.grants, PiiFindings(frozenset({("marts", "summary", "readings")})))
    assert owners(roles.database_url, ["marts", "raw_plant"]) == {"marts": {roles.transformer},
                                                                   "raw_plant": {roles.loader}}
    loader, transformer = steps.loader, steps.transformer

    # The loader writes raw_*; it neither reads nor writes the marts.
    with loader.connect() as connection:
        connection.execute("insert into raw_plant.readings (reading_id, value, _dlt_load_id, _dlt_id) "
                           "values (9, 9, 'x', 'y')")
    assert denied(loader, "select * from marts.summary") == "permission denied for schema marts"
    assert denied(loader, "create table marts.mine (n int)") == "permission denied for schema marts"

    # The transformer reads raw_* (tables the loader made later too) and builds marts; it never writes raw_*.
    with transformer.connect() as connection:
        assert connection.execute("select count(*) from raw_plant.readings").fetchone() == (4,)
        connection.execute("create table marts.more as select reading_id from raw_plant.readings")
        connection.execute("drop table marts.summary")
    assert denied(transformer, "insert into raw_plant.readings (reading_id) values (10)") == \
        "permission denied for table readings"
    assert denied(transformer, "delete from raw_plant.readings") == "permission denied for table readings"
    assert denied(transformer, "create table raw_plant.mine (n int)") == "permission denied for schema raw_plant"
    assert denied(transformer, "alter table raw_plant.readings add column note text") == \
        "must be owner of table readings"
    # Neither is the other: SET ROLE to a role it was not given fails.
    assert denied(loader, f"set role {roles.reader}") == f'permission denied to set role "{roles.reader}"'


def test_a_user_that_may_not_take_the_roles_runs_as_itself_and_is_told_why(roles):
    etl = roles.address(roles.etl)
    assert run_roles(etl, None) == RunRoles(etl, etl)  # no grants: block, no roles, nothing to say
    grants = GrantsConfig(loader=RoleConfig(roles.loader), transformer=RoleConfig(roles.transformer, (roles.etl,)),
                          reader=RoleConfig(roles.reader))

    assert run_roles(etl, grants) == RunRoles(etl, etl, (
        f"Ran every step as {roles.etl}, not as the roles of grants: role {roles.loader} does not exist (run "
        f"`headwater db grants`); role {roles.transformer} does not exist (run `headwater db grants`)"))

    apply_grants(PostgresAddress.from_url(roles.database_url), grants, PiiFindings(frozenset()))
    assert run_roles(etl, grants) == RunRoles(etl, etl, (
        f"Ran every step as {roles.etl}, not as the roles of grants: {roles.etl} may not SET ROLE {roles.loader} "
        f"(add {roles.etl} to grants.loader.members and run `headwater db grants`)"))


def test_db_grants_checks_members_first_then_reports_changes_once(tmp_path, roles, monkeypatch, capsys):
    (tmp_path / "landing").mkdir()
    project_file = tmp_path / "headwater.yaml"
    sources = ("sources:\n  files:\n    connector: filesystem\n"
               "    settings: {bucket_url: landing, files: {orders: 'orders/*.csv'}}\n")
    text = sources + roles.grants_yaml()
    monkeypatch.setenv("HEADWATER_CONFIG", str(project_file))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", roles.database_url)

    project_file.write_text(sources)
    assert main(["db", "grants"]) == 2
    assert "has no `grants:` block. Add `grants: {}` for the roles headwater_loader" in capsys.readouterr().err

    project_file.write_text(text.replace(f"members: [{roles.analyst}]", "members: [nobody_here]"))
    assert main(["db", "grants"]) == 1
    assert "grants.reader.members: no user 'nobody_here'. Create each login user first" in capsys.readouterr().err
    assert query(roles.database_url, "select count(*) from pg_roles where rolname = %s", roles.loader) == [(0,)]

    project_file.write_text(text)
    assert main(["db", "grants", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(dry run: nothing was changed)" in out and "created (NOLOGIN)" in out
    assert query(roles.database_url, "select count(*) from pg_roles where rolname = %s", roles.loader) == [(0,)]

    assert main(["db", "grants"]) == 0
    out = capsys.readouterr().out
    assert "dry run" not in out and out.count("created (NOLOGIN)") == 3
    assert main(["db", "grants"]) == 0
    assert "No change: the roles and grants in" in capsys.readouterr().out
    # The change, and only it (not the dry run, not the run without changes), is in the audit trail.
    [(details,)] = query(roles.database_url, "select details from headwater_ops.audit_log where kind = 'grants'")
    assert details["roles"] == {"loader": roles.loader, "transformer": roles.transformer, "reader": roles.reader}
    assert {"object": f"role {roles.loader}", "role": roles.loader, "change": "created (NOLOGIN)"} in \
        details["changes"]


def test_grants_that_cannot_be_given_change_nothing(roles):
    with psycopg.connect(roles.database_url, autocommit=True) as admin:
        admin.execute(f'alter role "{roles.etl}" createrole')  # may create roles, but owns nothing here
    grants = GrantsConfig(loader=RoleConfig(roles.loader), transformer=RoleConfig(roles.transformer),
                          reader=RoleConfig(roles.reader))
    with psycopg.connect(roles.database_url, autocommit=True) as admin:
        admin.execute("create schema raw_plant; create table raw_plant.t (n int)")
    with pytest.raises(GrantsError) as error:
        apply_grants(roles.address(roles.etl), grants, PiiFindings(frozenset()))
    assert "run `headwater db grants` as a superuser" in str(error.value)
    assert str(error.value).endswith("nothing was changed")
    assert query(roles.database_url, "select count(*) from pg_roles where rolname = any(%s)",
                 [roles.loader, roles.transformer, roles.reader]) == [(0,)]
