"""Declared columns against what the catalog showed: plain data, one rule, the words.

`schemagate.postgres.catalog` reports, for the declared columns of present tables, only those
that did not match (`ColumnFinding`); `column_mismatches` confirms each against the
declaration, so what counts as a mismatch is decided here and tested without a socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Column mismatches a message spells out; the count and `column_mismatches` say the rest.
MISMATCHES_IN_MESSAGE = 5
#: A type longer than this is cut in messages (a type may be up to 256 characters).
TYPE_IN_MESSAGE = 64


@dataclass(frozen=True)
class ColumnRequirement:
    """A column `table` must have. `type` (as `format_type` prints it) and `nullable`
    are checked only when given; names and types compare exactly, case included."""

    table: str
    name: str
    type: str | None = None
    nullable: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class FoundColumn:
    """A declared column as the table has it: its `format_type` and nullability."""

    type: str
    nullable: bool

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "nullable": self.nullable}


@dataclass(frozen=True)
class ColumnFinding:
    """What the database showed for a declared column that did not match: `found` None
    when its table has no column of that name; `similar` names columns of that table
    whose names differ only in case."""

    table: str
    name: str
    found: FoundColumn | None
    similar: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnMismatch:
    """A declared column missing from its table (`found` None) or of another shape."""

    declared: ColumnRequirement
    found: FoundColumn | None
    similar: tuple[str, ...] = ()

    @property
    def type_differs(self) -> bool:
        return self.found is not None and self.declared.type is not None and \
            self.found.type != self.declared.type

    @property
    def nullable_differs(self) -> bool:
        return self.found is not None and self.declared.nullable is not None and \
            self.found.nullable != self.declared.nullable

    def to_json(self) -> dict[str, Any]:
        return {"table": self.declared.table, "column": self.declared.name,
                "expected": self.declared.to_json(),
                "found": None if self.found is None else self.found.to_json(),
                "similar": list(self.similar)}


def column_mismatches(declared: Iterable[ColumnRequirement], findings: Iterable[ColumnFinding],
                      present_tables: frozenset[str]) -> tuple[ColumnMismatch, ...]:
    """The declared columns of present tables that are missing or of another shape, in
    declared order. A finding that matches after all (or names an undeclared column, or a
    missing table) is no mismatch."""
    found = {(f.table, f.name): f for f in findings if f.table in present_tables}
    mismatches = []
    if not found:
        return ()
    for column in declared:
        finding = found.get((column.table, column.name))
        if finding is None:
            continue
        mismatch = ColumnMismatch(column, finding.found, finding.similar)
        if finding.found is None or mismatch.type_differs or mismatch.nullable_differs:
            mismatches.append(mismatch)
    return tuple(mismatches)


_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")


def identifier(name: str) -> str:
    """`name` as SQL would need it: quoted when its case or characters matter."""
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _clip(text: str) -> str:
    return text if len(text) <= TYPE_IN_MESSAGE else text[:TYPE_IN_MESSAGE - 3] + "..."


def _shape(type_: str | None, nullable: bool | None) -> str:
    parts = [] if type_ is None else [_clip(type_)]
    if nullable is not None:
        parts.append("nullable" if nullable else "NOT NULL")
    return " ".join(parts)


def describe_mismatch(mismatch: ColumnMismatch) -> str:
    """`subscriptions.plan_id missing`, `credit_transactions.amount is integer, declared
    bigint`: what the table has instead of what was declared."""
    declared = mismatch.declared
    where = f"{identifier(declared.table)}.{identifier(declared.name)}"
    if mismatch.found is None:
        text = f"{where} missing"
        if mismatch.similar:
            text += (f" (the table has {', '.join(map(identifier, mismatch.similar))}: names "
                     "match exactly, case included)")
        return text
    found_type = mismatch.found.type if mismatch.type_differs else None
    found_nullable = mismatch.found.nullable if mismatch.nullable_differs else None
    declared_type = declared.type if mismatch.type_differs else None
    declared_nullable = declared.nullable if mismatch.nullable_differs else None
    return (f"{where} is {_shape(found_type, found_nullable)}, declared "
            f"{_shape(declared_type, declared_nullable)}")


def mismatch_list(mismatches: tuple[ColumnMismatch, ...]) -> str:
    shown = "; ".join(describe_mismatch(m) for m in mismatches[:MISMATCHES_IN_MESSAGE])
    rest = len(mismatches) - MISMATCHES_IN_MESSAGE
    return shown if rest <= 0 else f"{shown}; and {rest:,} more"
