"""`schemagate snapshot`: the structure of named tables, as a DatabaseSchema fragment.

The fragment is `spec.tables` and `spec.columns` exactly as the CRD admits them, so it
can be pasted under `spec:` as it is, and `schemagate verify --columns-file` reads the
same file back. The output holds nothing that changes from one scratch database to the
next (no host, port, time or version), so a snapshot committed beside the chart changes
only when the schema does, and CI can diff it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, ValidationError

from schemagate.core.check.columns import ColumnRequirement
from schemagate.core.check.verdict import Fingerprint, names
from schemagate.core.wire.models import Identifier, Model, TableColumns, unique_tables

Format = Literal["yaml", "json"]
# libyaml's C loader where PyYAML was built with it, for files `render` did not write: the
# pure-Python one takes minutes over the 100,000 columns of 10,000 tables.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def document(snapshot: Snapshot) -> dict[str, Any]:
    """`{tables, columns}` as the CRD spells them (camelCase, unchecked parts left out)."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for column in snapshot.columns:
        entry: dict[str, Any] = {"name": column.name}
        if column.type is not None:
            entry["type"] = column.type
        if column.nullable is not None:
            entry["nullable"] = column.nullable
        by_table.setdefault(column.table, []).append(entry)
    return {"tables": list(snapshot.tables),
            "columns": [{"table": table, "columns": by_table[table]}
                        for table in snapshot.tables if table in by_table]}


def render(snapshot: Snapshot, output: Format = "yaml") -> str:
    fragment = document(snapshot)
    if output == "json":
        return json.dumps(fragment, indent=2, ensure_ascii=False) + "\n"
    lines = [f"# schemagate snapshot of schema {snapshot.schema}: paste under the spec: of a "
             "DatabaseSchema, or check it", "# with `schemagate verify --columns-file`. Types "
             "are as PostgreSQL's format_type prints them.", "tables:"]
    lines += [f"- {_scalar(table)}" for table in fragment["tables"]]
    lines.append("columns:" if fragment["columns"] else "columns: []")
    for entry in fragment["columns"]:
        lines += [f"- table: {_scalar(entry['table'])}", "  columns:"]
        lines += ["  - {" + ", ".join(f"{key}: {_scalar(value)}" for key, value in column.items())
                  + "}" for column in entry["columns"]]
    return "\n".join(lines) + "\n"


# What may stay a plain YAML scalar inside a flow mapping: words, spaces between them and a
# trailing `(64)`; never a word YAML 1.1 reads as a boolean or null. Anything else is
# written as a JSON string, which YAML reads back as it is.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*( [A-Za-z0-9_]+)*(\([0-9]+\))?")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def read_rendered(text: str) -> dict[str, Any] | None:
    """What `render` writes, exactly as YAML reads it; None for any other text (a comment
    moved, a column in block style, trailing blanks), which then goes to PyYAML."""
    tables: list[Any] = []
    columns: list[dict[str, Any]] = []
    section = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line in ("tables:", "columns:", "columns: []"):
            section = line[:-1] if line.endswith(":") else "columns"
            continue
        if section == "tables" and line.startswith("- "):
            tables.append(_token(line[2:]))
        elif section == "columns" and line.startswith("- table: "):
            columns.append({"table": _token(line[9:]), "columns": []})
        elif section == "columns" and line == "  columns:" and columns:
            continue
        elif section == "columns" and line.startswith("  - {") and columns:
            entry = _flow_mapping(line)
            if entry is None:
                return None
            columns[-1]["columns"].append(entry)
        else:
            return None
    if not tables or None in tables or any(c["table"] is None for c in columns):
        return None
    return {"tables": tables, "columns": columns}


_VALUE = r'("(?:[^"\\\x00-\x1f]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z0-9_]+)*(?:\([0-9]+\))?)'
_TOKEN = re.compile(_VALUE)
_COLUMN = re.compile(r"  - \{name: " + _VALUE + r"(?:, type: " + _VALUE +
                     r")?(?:, nullable: (true|false))?\}")


def _token(text: str | None) -> str | None:
    """A whole scalar as `_scalar` writes it, else None."""
    if text is None or not _TOKEN.fullmatch(text):
        return None
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, str) else None
    return None if text.lower() in _YAML_WORDS else text


def _flow_mapping(line: str) -> dict[str, Any] | None:
    """`  - {name: id, type: bigint, nullable: false}` as `render` writes it, else None."""
    match = _COLUMN.fullmatch(line)
    if match is None:
        return None
    name, type_, nullable = match.groups()
    entry: dict[str, Any] = {"name": _token(name)}
    if type_ is not None:
        entry["type"] = _token(type_)
    if nullable is not None:
        entry["nullable"] = nullable == "true"
    return None if entry["name"] is None or entry.get("type", "") is None else entry


def _scalar(value: str | bool) -> str:
    """A value as YAML: written by hand because PyYAML takes minutes over 10,000 tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def parse(text: str) -> SchemaFragment:
    """A fragment from YAML or JSON text (JSON is YAML); `InvalidFragment` says why not.

    What `render` wrote is read line by line (PyYAML needs seconds per 10,000 columns);
    JSON by `json`; anything else, a file edited by hand included, by PyYAML.
    """
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = read_rendered(text)
    try:
        if document is None:
            document = yaml.load(text, Loader=_Loader)  # noqa: S506 (a safe loader)
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
