"""One model's SQL -> direct and indirect inputs per output column (sqlglot, no database)."""

from __future__ import annotations

import pytest

from headwater.lineage.sql_lineage import trace_model

TABLES = {
    ("raw", "orders"): {"id": "bigint", "customer_id": "bigint", "amount": "numeric", "status": "text",
                        "ordered_at": "timestamptz"},
    ("raw", "customers"): {"id": "bigint", "email": "text", "name": "text", "country": "text"},
}


def trace(sql: str):
    return trace_model(sql, {**TABLES, ("raw", "unbuilt"): {}}, "db")


def direct(result, column: str) -> dict[str, tuple[str, bool]]:
    return {".".join(key[1:]): (item.subtype, item.masking) for key, item in result.columns[column].direct.items()}


def indirect(result, column: str) -> set[tuple[str, str]]:
    return {(".".join(key[1:]), subtype) for key, subtype in result.columns[column].indirect}


def test_filters_joins_and_groups_of_every_cte_the_value_passes_become_indirect_inputs():
    result = trace("""
        with paid as (select * from db.raw.orders where status = 'paid'),
        per_customer as (
            select c.country, sum(paid.amount) as revenue, count(*) as orders
            from paid join db.raw.customers c on c.id = paid.customer_id
            group by c.country having count(*) > 1
        )
        select country, revenue, orders from per_customer
    """)
    assert not result.unresolved
    assert direct(result, "revenue") == {"orders.amount": ("AGGREGATION", False)}
    assert result.columns["revenue"].transformation == "sum(amount)"
    expected = {("orders.status", "FILTER"), ("customers.id", "JOIN"), ("orders.customer_id", "JOIN"),
                ("customers.country", "GROUP_BY")}
    assert indirect(result, "revenue") == expected
    # count(*) has no input column, but counts the rows every filter and join decided.
    assert direct(result, "orders") == {} and indirect(result, "orders") == expected
    assert direct(result, "country") == {"customers.country": ("IDENTITY", False)}
    assert result.columns["country"].transformation == ""


def test_masking_functions_and_condition_only_inputs():
    result = trace("""
        select md5(lower(c.email)) as email_hash,
               sha256(c.email::bytea) as email_sha,
               encode(digest(c.name, 'sha256'), 'hex') as name_digest,
               left(c.name, 1) as initial,
               regexp_replace(c.email, '^[^@]+', '***') as email_masked,
               concat(md5(c.email), c.name) as mixed,
               lower(c.email) as email_lower,
               case when c.email like '%@shop.test' then 'staff' else c.country end as kind,
               row_number() over (partition by c.country order by c.id) as rank_in_country
        from db.raw.customers c
    """)
    assert direct(result, "email_hash") == {"customers.email": ("TRANSFORMATION", True)}
    assert direct(result, "email_sha") == {"customers.email": ("TRANSFORMATION", True)}
    assert direct(result, "name_digest") == {"customers.name": ("TRANSFORMATION", True)}
    assert direct(result, "initial") == {"customers.name": ("TRANSFORMATION", True)}
    assert direct(result, "email_masked") == {"customers.email": ("TRANSFORMATION", True)}
    assert direct(result, "mixed") == {"customers.email": ("TRANSFORMATION", True),
                                       "customers.name": ("TRANSFORMATION", False)}
    assert direct(result, "email_lower") == {"customers.email": ("TRANSFORMATION", False)}
    # The WHEN condition picks the branch; only country is a value of the column.
    assert direct(result, "kind") == {"customers.country": ("TRANSFORMATION", False)}
    assert indirect(result, "kind") == {("customers.email", "CONDITIONAL")}
    assert direct(result, "rank_in_country") == {}
    assert indirect(result, "rank_in_country") == {("customers.country", "WINDOW"), ("customers.id", "WINDOW")}


def test_masking_inside_a_cte_carries_to_the_output():
    result = trace("""
        with hashed as (select id, md5(email) as email from db.raw.customers)
        select h.email, o.amount from hashed h join db.raw.orders o on o.customer_id = h.id
    """)
    assert direct(result, "email") == {"customers.email": ("TRANSFORMATION", True)}
    assert result.columns["email"].transformation == "md5(email)"
    assert indirect(result, "amount") == {("orders.customer_id", "JOIN"), ("customers.id", "JOIN")}


def test_unions_subqueries_and_sorting():
    result = trace("""
        select c.email,
               (select max(o.ordered_at) from db.raw.orders o where o.customer_id = c.id) as last_order_at
        from db.raw.customers c
        where c.id in (select customer_id from db.raw.orders where status <> 'cancelled')
        union all
        select name, null from db.raw.customers order by 1 limit 10
    """)
    assert not result.unresolved
    assert direct(result, "email") == {"customers.email": ("IDENTITY", False), "customers.name": ("IDENTITY", False)}
    assert direct(result, "last_order_at") == {"orders.ordered_at": ("AGGREGATION", False)}
    assert {("orders.customer_id", "FILTER"), ("customers.id", "FILTER")} <= indirect(result, "last_order_at")
    assert {("customers.id", "FILTER"), ("orders.customer_id", "FILTER"), ("orders.status", "FILTER")} <= indirect(
        result, "email")


@pytest.mark.parametrize(("sql", "where", "reason"), [
    ("select * from db.raw.refunds", None,
     "select * from raw.refunds could not be expanded: raw.refunds is not in the dbt catalog or a raw schema"),
    ("with r as (select * from db.raw.refunds) select r.amount from r", "amount",
     "select * from raw.refunds could not be expanded: raw.refunds is not in the dbt catalog or a raw schema"),
    ("select o.refund from db.raw.orders o", "refund", "raw.orders.refund: raw.orders has no column refund"),
    ("select id from db.raw.orders, db.raw.customers", "id", "id: could not be attributed to an input table"),
    ("select from where ((", None, "sqlglot could not read the compiled SQL (ParseError"),
    ("select * from db.raw.unbuilt", None,
     "select * from raw.unbuilt could not be expanded: the columns of raw.unbuilt are not known"),
])
def test_what_cannot_be_traced_is_named(sql, where, reason):
    result = trace(sql)
    reasons = result.unresolved if where is None else result.columns[where].unresolved
    assert any(item.startswith(reason) for item in reasons), reasons
