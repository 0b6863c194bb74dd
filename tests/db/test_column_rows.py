"""The declared columns' catalog rows, fetched and compared outside the server: any
declared order, columns declared for other tables, and a catalog that holds far more
than was declared. Real PostgreSQL; each test owns its role and database."""

from __future__ import annotations

from schemagate.core.check.columns import ColumnRequirement
from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.reasons import Reason
from schemagate.postgres import catalog
from tests.db.conftest import Tenant


def test_columns_declared_in_any_order_verify(tenant: Tenant) -> None:
    tenant.admin("CREATE TABLE a (id bigint NOT NULL, note text); "
                 "CREATE TABLE b (id integer NOT NULL, note text)")
    columns = (ColumnRequirement("b", "note", "text", True),
               ColumnRequirement("a", "note", "text", True),
               ColumnRequirement("a", "id", "bigint", False),
               ColumnRequirement("b", "id"))
    verdict = catalog.verify(tenant.url(), Requirement(columns=columns, revision_check=False))
    assert verdict.reason is Reason.VERIFIED, verdict.message


def test_a_wide_table_sends_back_only_declared_names_and_a_mismatch_is_still_named(
        tenant: Tenant) -> None:
    # Every table holds a column named like one declared for another table: the rows
    # fetched run past the declared count, and the check still tells what differs.
    wide = ", ".join(f"c{i} int" for i in range(1_500))
    tenant.admin(f"CREATE TABLE a (id bigint, x text, {wide}); "
                 f"CREATE TABLE b (id bigint, x text, {wide})")
    declared = (ColumnRequirement("a", "id", "bigint"), ColumnRequirement("b", "x", "text"))
    verdict = catalog.verify(tenant.url(), Requirement(columns=declared, revision_check=False))
    assert verdict.reason is Reason.VERIFIED, verdict.message

    declared = (ColumnRequirement("a", "id", "integer"), ColumnRequirement("b", "x", "text"),
                ColumnRequirement("b", "C1"))
    verdict = catalog.verify(tenant.url(), Requirement(columns=declared, revision_check=False))
    assert verdict.reason is Reason.COLUMNS_MISMATCH
    assert [(m.declared.table, m.declared.name) for m in verdict.column_mismatches] == [
        ("a", "id"), ("b", "C1")]
    assert 'b."C1" missing (the table has c1' in verdict.message


def test_rows_cut_at_twice_the_declared_columns_still_verify(tenant: Tenant) -> None:
    # Each table has the columns declared for the others: nine rows for three declared
    # columns, cut at six; the catalog then settles it.
    tenant.admin("CREATE TABLE a (id int, x int, y int); CREATE TABLE b (id int, x int, y int); "
                 "CREATE TABLE c (id int, x int, y int)")
    declared = (ColumnRequirement("a", "id", "integer"), ColumnRequirement("b", "x", "integer"),
                ColumnRequirement("c", "y", "integer", True))
    verdict = catalog.verify(tenant.url(), Requirement(columns=declared, revision_check=False))
    assert verdict.reason is Reason.VERIFIED, verdict.message
    assert verdict.message.endswith("with all 3 declared columns; revision not checked")
