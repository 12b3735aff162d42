"""The daily flow on the bundled shop with `grants:`: the admin creates the roles, a login user allowed to SET ROLE
runs the pipeline as loader and transformer, and an analyst in the reader role reads the published marts only,
without the PII columns. Real dlt, dbt, Soda and Prefect."""

from __future__ import annotations

import pytest

from headwater.cli import main
from headwater.postgres.address import PostgresAddress
from tests.access.conftest import denied, owners
from tests.conftest import query

pytestmark = pytest.mark.slow

PII_FREE = "customer_id, country, orders_count, lifetime_revenue, first_order_at, last_order_at"


def assert_reader_sees_published_marts_only(roles) -> None:
    analyst = roles.address(roles.analyst)  # a member of the reader role, connecting as itself
    customers = query(roles.database_url, f"select {PII_FREE} from marts.customers order by customer_id")
    assert len(customers) > 50
    assert query(analyst.url, f"select {PII_FREE} from marts.customers order by customer_id") == customers
    assert query(analyst.url, "select count(*) from marts.orders")[0][0] > 0
    # The shop declares customers' name and email PII; the mart carries them unmasked.
    for statement in ("select email from marts.customers", "select name from marts.customers",
                      "select * from marts.customers"):
        assert denied(analyst, statement) == "permission denied for table customers"
    for schema, relation in (("raw_shop_db", "customers"), ("raw_shop_files", "orders"),
                             ("raw_shop_db", "customers__quarantine"), ("staging", "stg_shop_db__customers"),
                             ("marts__audit", "customers"), ("headwater_ops", "runs")):
        assert denied(analyst, f"select * from {schema}.{relation}") == f"permission denied for schema {schema}"


def test_a_run_takes_the_least_role_of_each_step_and_the_reader_reads_published_marts_only(
        shop_project, roles, prefect_api, monkeypatch, capsys):
    with (shop_project / "headwater.yaml").open("a") as config:
        config.write("\n" + roles.grants_yaml())
    monkeypatch.setenv("HEADWATER_DATABASE_URL", roles.database_url)  # the admin, a superuser
    assert main(["db", "grants"]) == 0
    assert "created (NOLOGIN)" in capsys.readouterr().out

    monkeypatch.setenv("HEADWATER_DATABASE_URL", roles.url(roles.etl))  # the pipeline's own login
    from flows.daily import daily

    first = daily()
    assert first.ok, first.failures
    assert first.roles == f"Ran loads as {roles.loader}, dbt and publishing as {roles.transformer} (SET ROLE from " \
                          f"{roles.etl})"
    assert first.reader_grants == (
        f"{roles.reader} may read 2 published relation(s); withheld: marts.customers.email (PII: "
        "source:shop_db.customers.email), marts.customers.name (PII: source:shop_db.customers.name)")
    assert f"Roles: Ran loads as {roles.loader}" in capsys.readouterr().out
    loaded = ["raw_shop_files", "raw_shop_db", "raw_shop_api"]
    built = ["staging", "marts__audit", "marts"]
    admin = PostgresAddress.from_url(roles.database_url).user
    assert owners(roles.database_url, [*loaded, "headwater_ops", *built]) == {
        **{schema: {roles.loader} for schema in loaded}, **{schema: {roles.transformer} for schema in built},
        "headwater_ops": {roles.loader, admin}}  # the schema and its audit log stay with the admin
    assert query(roles.database_url, "select tableowner from pg_tables where schemaname = 'headwater_ops' "
                                     "and tablename = 'audit_log'") == [(admin,)]
    assert_reader_sees_published_marts_only(roles)
    transformer = roles.address(roles.etl, roles.transformer)
    assert denied(transformer, "update raw_shop_db.customers set email = null") == \
        "permission denied for table customers"
    loader = roles.address(roles.etl, roles.loader)
    assert denied(loader, "drop table marts.customers") == "permission denied for schema marts"
    assert denied(loader, "drop table headwater_ops.audit_log") == "must be owner of table audit_log"
    assert denied(loader, "delete from headwater_ops.audit_log") == "permission denied for table audit_log"

    # The next day's publish swaps new mart tables in: the reader's columns are set on them again.
    second = daily(advance_example=1)
    assert second.ok, second.failures
    assert "marts.customers" in second.publish.published
    assert_reader_sees_published_marts_only(roles)

    monkeypatch.setenv("HEADWATER_DATABASE_URL", roles.database_url)
    capsys.readouterr()
    assert main(["db", "grants"]) == 0
    assert "No change: the roles and grants in" in capsys.readouterr().out
