"""What the serving version declares it needs: the tables and columns a migration must
not take away from under it (pure).

`schemagate plan --serving FILE` reads it from what `schemagate snapshot` printed, or
from a DatabaseSchema manifest (its `spec.tables`, `spec.columns` and
`spec.database.schema`); a file of several YAML documents (`helm template`'s output)
may hold one DatabaseSchema among other objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from schemagate.core.check import snapshot
from schemagate.core.check.columns import ColumnRequirement

#: The largest --serving file read: a CustomResource is at most about 1.5 MiB, a snapshot
#: of 10,000 tables' columns a few MiB.
MAX_BYTES = 16 * 1024 * 1024
#: YAML documents looked at in one file.
MAX_DOCUMENTS = 1_000
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InvalidServing(ValueError):
    """A --serving file that declares nothing usable; the text says why."""


@dataclass(frozen=True)
class ServingVersion:
    """The declared tables (those named in `columns` included), and the declared columns
    by table, in `schema`."""

    schema: str = "public"
    tables: frozenset[str] = frozenset()
    columns: dict[str, dict[str, ColumnRequirement]] = field(default_factory=dict)

    def declares_table(self, schema: str | None, table: str) -> bool:
        return self._here(schema) and table in self.tables

    def declared_column(self, schema: str | None, table: str,
                        column: str | None) -> ColumnRequirement | None:
        if not self._here(schema) or column is None:
            return None
        return self.columns.get(table, {}).get(column)

    def _here(self, schema: str | None) -> bool:
        """A name the statement does not qualify is taken to be in the declared schema
        (the migration runs with it on its search_path)."""
        return schema is None or schema == self.schema


def parse(text: str, *, schema: str = "public") -> ServingVersion:
    """The serving version from a snapshot (its schema is `schema`) or a DatabaseSchema
    manifest. Raises `InvalidServing`."""
    if len(text) > MAX_BYTES:
        raise InvalidServing(f"more than {MAX_BYTES:,} characters")
    manifest = _manifest(text)
    if manifest is None:
        try:
            fragment = snapshot.parse(text)
        except snapshot.InvalidFragment as exc:
            raise InvalidServing(f"neither a DatabaseSchema nor what `schemagate snapshot` "
                                 f"prints: {exc}") from None
        return _declared(schema, fragment)
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise InvalidServing("the DatabaseSchema has no spec")
    database = spec.get("database")
    declared_schema = database.get("schema") if isinstance(database, dict) else None
    try:
        fragment = snapshot.SchemaFragment.model_validate(
            {"tables": spec.get("tables") or [], "columns": spec.get("columns") or []})
    except ValueError as exc:
        raise InvalidServing(f"the DatabaseSchema's spec: {' '.join(str(exc).split())[:300]}"
                             ) from None
    return _declared(declared_schema if isinstance(declared_schema, str) and declared_schema
                     else "public", fragment)


def _manifest(text: str) -> dict[str, Any] | None:
    """The one DatabaseSchema among the file's YAML documents, None when there is none."""
    if "DatabaseSchema" not in text:
        return None  # a snapshot: not worth a YAML pass of its own
    try:
        documents = []
        for number, document in enumerate(yaml.load_all(text, Loader=_Loader)):
            if number >= MAX_DOCUMENTS:
                raise InvalidServing(f"more than {MAX_DOCUMENTS:,} YAML documents")
            documents.append(document)
    except yaml.YAMLError as exc:
        raise InvalidServing(f"not YAML: {' '.join(str(exc).split())[:300]}") from None
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") == "DatabaseSchema"]
    if len(found) > 1:
        raise InvalidServing(f"{len(found)} DatabaseSchemas: give the one whose pods serve")
    return found[0] if found else None


def _declared(schema: str, fragment: snapshot.SchemaFragment) -> ServingVersion:
    columns = {entry.table: {c.name: ColumnRequirement(table=entry.table, name=c.name,
                                                       type=c.type, nullable=c.nullable)
                             for c in entry.columns}
               for entry in fragment.columns}
    tables = frozenset(fragment.tables) | frozenset(columns)
    if not tables:
        raise InvalidServing("it declares no table")
    return ServingVersion(schema=schema, tables=tables, columns=columns)
