"""PII exposure and PII states on hand-built lineage graphs (no database, no dbt)."""

from __future__ import annotations

from headwater.lineage.model import DIRECT, INDIRECT, ColumnInfo, ColumnRef, Edge, Lineage, TableInfo
from headwater.lineage.pii import DERIVED, MASKED, PII, pii_exposures, pii_tags


def ref(text: str) -> ColumnRef:
    return ColumnRef.parse(text)


def graph(*edges: tuple, pii: tuple[str, ...] = (), masked: tuple[str, ...] = ()) -> Lineage:
    """Lineage from ``(source, target[, kind][, masking])`` tuples; every column mentioned gets a table."""
    lineage = Lineage()
    for text in {text for edge in edges for text in edge[:2] if isinstance(text, str)} | set(pii) | set(masked):
        column = ref(text)
        layer = "resource" if column.schema.startswith("source:") else (
            "raw" if column.schema.startswith("raw_") else column.schema)
        table = lineage.add_table(TableInfo(column.schema, column.table, layer,
                                            source=column.schema.removeprefix("source:").removeprefix("raw_")))
        table.columns[column.column] = ColumnInfo(column, pii=text in pii, masked=text in masked)
    for source, target, *rest in edges:
        kind = next((item for item in rest if item in (DIRECT, INDIRECT)), DIRECT)
        lineage.edges.append(Edge(ref(source), ref(target), kind=kind, masking="masking" in rest))
    return lineage


RESOURCE, RAW = "source:shop_db.customers", "raw_shop_db.customers"
STAGING, MART = "staging.stg_customers", "marts.customers"


def chain(column: str, *, masking_at: str | None = None, mart_column: str | None = None) -> list[tuple]:
    """resource -> raw -> staging -> mart for one column; masking_at names the layer whose edge hashes it."""
    tables = [RESOURCE, RAW, STAGING, MART]
    edges = []
    for left, right in zip(tables, tables[1:], strict=False):
        target = f"{right}.{mart_column or column}" if right == MART else f"{right}.{column}"
        edges.append((f"{left}.{column}", target, *(["masking"] if right == masking_at else [])))
    return edges


def exposed(lineage: Lineage) -> dict[str, list[str]]:
    return {str(e.column): [str(s) for s in e.sources] for e in pii_exposures(lineage)}


def test_plain_copy_exposes_the_column_with_its_declared_source_and_path():
    lineage = graph(*chain("email"), pii=(f"{RAW}.email",))
    (exposure,) = pii_exposures(lineage)
    assert exposure.column == ref(f"{MART}.email")
    assert exposure.sources == [ref(f"{RAW}.email")]
    assert [str(step) for step in exposure.path] == [f"{RAW}.email", f"{STAGING}.email", f"{MART}.email"]
    assert "md5(email)" in exposure.fix and "shop_db.customers" in exposure.fix and "marts.customers" in exposure.fix
    assert '{pii: {email: {hash: {salt: "${PII_SALT}"}}}}' in exposure.fix
    assert "marts.customers.email carries raw_shop_db.customers.email unmasked via" in exposure.reason
    assert pii_tags(lineage) == {ref(f"{RAW}.email"): PII, ref(f"{STAGING}.email"): DERIVED,
                                 ref(f"{MART}.email"): DERIVED}


def test_source_is_the_declared_column_nearest_to_the_source():
    # Declared on the resource (connector metadata) and on the raw table (headwater.yaml): the resource is named.
    lineage = graph(*chain("email"), pii=(f"{RESOURCE}.email", f"{RAW}.email"))
    (exposure,) = pii_exposures(lineage)
    assert exposure.sources == [ref(f"{RESOURCE}.email")]
    assert exposure.path[0] == ref(f"{RESOURCE}.email") and len(exposure.path) == 4


def test_a_transformation_without_masking_still_exposes():
    # lower(email) in staging: the edge is direct, a transformation, but not masking.
    lineage = graph(*chain("email"), pii=(f"{RAW}.email",))
    lineage.edges = [Edge(e.source, e.target, transformation="lower(email)") if e.target.schema == "staging" else e
                     for e in lineage.edges]
    assert exposed(lineage) == {f"{MART}.email": [f"{RAW}.email"]}


def test_md5_in_a_model_masks():
    lineage = graph(*chain("email", masking_at=MART), pii=(f"{RAW}.email",))
    assert pii_exposures(lineage) == []
    tags = pii_tags(lineage)
    assert tags[ref(f"{STAGING}.email")] == DERIVED
    assert tags[ref(f"{MART}.email")] == MASKED


def test_masked_at_load_is_not_exposed():
    # A pii step hashed the column before it reached raw: the resource field is PII, the raw column is not.
    lineage = graph(*chain("email"), pii=(f"{RESOURCE}.email",), masked=(f"{RAW}.email",))
    assert pii_exposures(lineage) == []
    assert pii_tags(lineage) == {ref(f"{RESOURCE}.email"): PII, ref(f"{RAW}.email"): MASKED,
                                 ref(f"{STAGING}.email"): MASKED, ref(f"{MART}.email"): MASKED}


def test_declared_and_masked_at_load_is_masked():
    lineage = graph(*chain("email")[1:], pii=(f"{RAW}.email",), masked=(f"{RAW}.email",))
    assert pii_exposures(lineage) == []
    assert set(pii_tags(lineage).values()) == {MASKED}


def test_mix_of_masked_and_unmasked_inputs_exposes_only_the_unmasked_one():
    # concat(md5(email), name) as contact
    lineage = graph(
        (f"{RAW}.email", f"{STAGING}.email"), (f"{RAW}.name", f"{STAGING}.name"),
        (f"{STAGING}.email", f"{MART}.contact", "masking"), (f"{STAGING}.name", f"{MART}.contact"),
        pii=(f"{RAW}.email", f"{RAW}.name"),
    )
    (exposure,) = pii_exposures(lineage)
    assert exposure.column == ref(f"{MART}.contact")
    assert exposure.sources == [ref(f"{RAW}.name")]
    assert "md5(name)" in exposure.fix
    assert pii_tags(lineage)[ref(f"{MART}.contact")] == DERIVED


def test_indirect_only_paths_do_not_expose():
    # The mart counts orders per customer, joined on email: email decides rows, its value never arrives.
    lineage = graph(
        (f"{RAW}.email", f"{STAGING}.email"),
        (f"{STAGING}.email", f"{MART}.orders_count", INDIRECT),
        (f"{STAGING}.customer_id", f"{MART}.orders_count", INDIRECT),
        pii=(f"{RAW}.email",),
    )
    assert pii_exposures(lineage) == []
    assert ref(f"{MART}.orders_count") not in pii_tags(lineage)


def test_multi_hop_through_several_models_and_renames():
    lineage = graph(
        *chain("name", mart_column="customer_name")[:3],
        ("staging.stg_customers.name", "staging.int_customers.full_name"),
        ("staging.int_customers.full_name", "marts.customer_360.display_name"),
        ("marts.customers.customer_name", "marts.customer_report.customer"),
        pii=(f"{RESOURCE}.name",),
    )
    found = {str(e.column): e for e in pii_exposures(lineage)}
    assert set(found) == {"marts.customers.customer_name", "marts.customer_360.display_name",
                          "marts.customer_report.customer"}
    assert all(e.sources == [ref(f"{RESOURCE}.name")] for e in found.values())
    assert [str(s) for s in found["marts.customer_360.display_name"].path] == [
        f"{RESOURCE}.name", f"{RAW}.name", f"{STAGING}.name", "staging.int_customers.full_name",
        "marts.customer_360.display_name"]
    assert "md5(full_name)" in found["marts.customer_360.display_name"].fix
    assert "drop it from marts.customer_360" in found["marts.customer_360.display_name"].fix


def test_one_unmasked_path_is_enough_and_other_schemas_can_be_published():
    # Hashed in one branch, copied in another: exposed. Only the schemas asked for count as published.
    lineage = graph(
        (f"{RAW}.email", f"{STAGING}.email"),
        (f"{STAGING}.email", "reporting.customers.email", "masking"),
        (f"{RAW}.email", "reporting.customers.email"),
        pii=(f"{RAW}.email",),
    )
    assert pii_exposures(lineage) == []  # nothing in marts
    (exposure,) = pii_exposures(lineage, published_schemas=("reporting",))
    assert exposure.path == [ref(f"{RAW}.email"), ref("reporting.customers.email")]


def test_no_pii_declared_means_no_exposures_and_no_tags():
    lineage = graph(*chain("email"))
    assert pii_exposures(lineage) == [] and pii_tags(lineage) == {}


def test_exposure_fix_without_a_configured_table_names_model_and_mart_only():
    # Declared on a staging column (no raw/resource on the path): no pii step to suggest.
    lineage = graph((f"{STAGING}.email", f"{MART}.email"), pii=(f"{STAGING}.email",))
    (exposure,) = pii_exposures(lineage)
    assert exposure.fix == "hash it in the model (md5(email)), or drop it from marts.customers"
