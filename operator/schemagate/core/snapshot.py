"""`schemagate snapshot`: the structure of named tables, as a DatabaseSchema fragment.

The fragment is `spec.tables` and `spec.columns` exactly as the CRD admits them, so it
can be pasted under `spec:` as it is, and `schemagate verify --columns-file` reads the
same file back. The output holds nothing that changes from one scratch database to the
next (no host, port, time or version), so a snapshot committed beside the chart changes
only when the schema does, and CI can diff it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError

from schemagate.core.models import Column, Identifier, Model, TableColumns, unique_tables
from schemagate.core.verdict import ColumnRequirement, Fingerprint, names

Format = Literal["yaml", "json"]


@dataclass(frozen=True)
class Snapshot:
    """What the database holds for the named tables: `tables` present (in the order
    asked), their `columns` (table by table, in column order), `missing_tables`."""

    schema: str
    tables: tuple[str, ...]
    columns: tuple[ColumnRequirement, ...]
    missing_tables: tuple[str, ...]
    fingerprint: Fingerprint
    schema_exists: bool = True

    def missing_message(self) -> str:
        verb = "is" if len(self.missing_tables) == 1 else "are"
        text = (f"{names(self.missing_tables)} {verb} missing from schema {self.schema} of "
                f"{self.fingerprint.where}")
        if not self.schema_exists:
            text += f" (schema {self.schema} does not exist there)"
        return text + "; snapshot a database the migrations have run on"


class SchemaFragment(Model):
    """The file `snapshot` prints and `verify --columns-file` reads: spec's two fields."""

    tables: list[Identifier] = Field(default_factory=list, max_length=10_000)
    columns: Annotated[list[TableColumns], AfterValidator(unique_tables)] = Field(
        default_factory=list, max_length=10_000)


class InvalidFragment(ValueError):
    """A columns file that is not what `schemagate snapshot` prints."""


def fragment(snapshot: Snapshot) -> SchemaFragment:
    by_table: dict[str, list[Column]] = {}
    for column in snapshot.columns:
        by_table.setdefault(column.table, []).append(
            Column(name=column.name, type=column.type, nullable=column.nullable))
    return SchemaFragment(
        tables=list(snapshot.tables),
        columns=[TableColumns(table=table, columns=by_table[table])
                 for table in snapshot.tables if table in by_table])


def render(snapshot: Snapshot, output: Format = "yaml") -> str:
    document = fragment(snapshot).model_dump(by_alias=True, mode="json", exclude_none=True)
    if output == "json":
        return json.dumps(document, indent=2) + "\n"
    header = (f"# schemagate snapshot of schema {snapshot.schema}: paste under the spec: of a "
              "DatabaseSchema, or check it\n# with `schemagate verify --columns-file`. Types "
              "are as PostgreSQL's format_type prints them.\n")
    body: str = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100,
                               allow_unicode=True)
    return header + body


def parse(text: str) -> SchemaFragment:
    """A fragment from YAML or JSON text (JSON is YAML); `InvalidFragment` says why not."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidFragment(f"not YAML or JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict):
        raise InvalidFragment("expected a mapping with tables and columns, as "
                              "`schemagate snapshot` prints")
    try:
        return SchemaFragment.model_validate(document)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "the file"
            problems.append(f"{where}: {err['msg']}")
        raise InvalidFragment("; ".join(problems)) from None
