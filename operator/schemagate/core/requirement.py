"""What the verification engine must check, from a DatabaseSchema's spec."""

from schemagate.core.models import DatabaseSchemaSpec
from schemagate.core.verdict import Requirement


def requirement_for(spec: DatabaseSchemaSpec) -> Requirement:
    expected = spec.migrations.expected_revisions
    return Requirement(
        schema=spec.database.schema_,
        tables=tuple(spec.tables),
        revision_check=spec.migrations.revision_check,
        version_table=spec.migrations.version_table,
        version_table_schema=spec.version_table_schema,
        expected_revisions=frozenset(expected) if expected else None,
    )
