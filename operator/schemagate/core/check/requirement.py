"""What the verification engine must check, from a DatabaseSchema's spec."""

from collections.abc import Iterable

from schemagate.core.check.columns import ColumnRequirement
from schemagate.core.check.verdict import Requirement
from schemagate.core.wire.models import DatabaseSchemaSpec, TableColumns


def requirement_for(spec: DatabaseSchemaSpec,
                    expected_heads: frozenset[str] | None = None) -> Requirement:
    """`expected_heads`, when given (run: Alembic, the scripts' heads), wins over the spec."""
    expected = expected_heads or spec.migrations.expected_revisions
    return Requirement(
        schema=spec.database.schema_,
        tables=tuple(spec.tables),
        revision_check=spec.migrations.revision_check,
        version_table=spec.migrations.version_table,
        version_table_schema=spec.version_table_schema,
        expected_revisions=frozenset(expected) if expected else None,
        columns=column_requirements(spec.columns),
    )


def column_requirements(declared: Iterable[TableColumns]) -> tuple[ColumnRequirement, ...]:
    """`spec.columns` (or a snapshot's `columns`) as the engine's flat list."""
    return tuple(ColumnRequirement(table=entry.table, name=column.name, type=column.type,
                                   nullable=column.nullable)
                 for entry in declared for column in entry.columns)
