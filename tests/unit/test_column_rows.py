"""The declared columns against the catalog's rows of them, compared in Python: a yes only
when every declared column is there as declared. No sockets."""

from __future__ import annotations

from schemagate.core.check.columns import ColumnRequirement, all_columns_match

DECLARED = [ColumnRequirement("a", "id", "bigint", False),
            ColumnRequirement("a", "note", "text", True),
            ColumnRequirement("b", "id", "integer", False)]
ROWS = [("a", "id", "bigint", False), ("a", "note", "text", True),
        ("b", "id", "integer", False)]


def test_rows_as_declared_match_in_any_order_and_with_more_columns() -> None:
    assert all_columns_match(DECLARED, ROWS)
    assert all_columns_match(DECLARED, list(reversed(ROWS)))
    assert all_columns_match(DECLARED, [*ROWS, ("b", "note", "text", True)])


def test_a_missing_column_or_another_shape_is_no_match() -> None:
    assert not all_columns_match(DECLARED, ROWS[:2])
    assert not all_columns_match(DECLARED, [*ROWS[:2], ("b", "id", "bigint", False)])
    assert not all_columns_match(DECLARED, [*ROWS[:2], ("b", "id", "integer", True)])
    assert not all_columns_match(DECLARED, [*ROWS[:2], ("B", "id", "integer", False)])


def test_what_was_not_declared_is_not_compared() -> None:
    loose = [ColumnRequirement("a", "id"), ColumnRequirement("a", "note", nullable=True),
             ColumnRequirement("b", "id", "integer")]
    assert all_columns_match(loose, [("a", "id", "uuid", True), ("a", "note", "jsonb", True),
                                     ("b", "id", "integer", True)])
    assert not all_columns_match(loose, [("a", "id", "uuid", True), ("a", "note", "text", False),
                                         ("b", "id", "integer", True)])
    assert not all_columns_match(loose, [("a", "note", "text", True), ("b", "id", "integer", True)])
