"""What a migration plan would do to the version still serving, decided over the rendered
SQL (pure).

A plan is the revisions that would run, each with the slice of the rendered SQL it
wrote. Its findings are of four kinds:

- `serving`: a statement drops, renames or retypes a table or column the serving version
  declares, makes one of its columns NOT NULL, or adds a NOT NULL column without a
  default to one of its tables (its inserts leave that column out). Blocking.
- `lint`: a squawk rule (locks, table rewrites, breaking changes); blocking unless lint
  is only a warning.
- `unlintable`: a revision whose offline SQL is not what would run (it failed offline,
  read rows, or branches on offline mode). Never safe: blocking.
- `unchecked`: a statement sqlglot cannot read (a `DO` block, a function body); nothing
  is claimed about it. A warning.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from schemagate.core.plan.serving import ServingVersion
from schemagate.core.plan.sql import Change, ChangeKind, Statement

#: Squawk's rules about style or about settings `schemagate migrate` makes itself
#: (lock_timeout, statement_timeout), left out unless asked for.
QUIET_RULES = (
    "prefer-robust-stmts", "prefer-text-field", "prefer-bigint-over-int",
    "prefer-bigint-over-smallint", "prefer-identity", "prefer-timestamptz", "ban-char-field",
    "require-timeout-settings", "require-lock-timeout", "require-statement-timeout",
)
#: Characters of a statement kept in a finding.
STATEMENT_SHOWN = 1_000
#: Findings kept in one plan; the count says how many there were.
MAX_FINDINGS = 1_000
#: Characters of a squawk message or an error text kept.
MESSAGE_SHOWN = 500


class Kind(StrEnum):
    SERVING = "serving"
    LINT = "lint"
    UNLINTABLE = "unlintable"
    UNCHECKED = "unchecked"


class LintLevel(StrEnum):
    BLOCK = "block"
    WARN = "warn"
    OFF = "off"


@dataclass(frozen=True)
class Revision:
    """One revision that would run: `sql` is what it wrote, from `start` to `end` of the
    rendered SQL. `unlintable` says why its SQL is not what would run, when it is not."""

    revision: str
    down_revisions: tuple[str, ...]
    file: str
    start: int
    end: int
    unlintable: str | None = None

    def to_json(self, sql: str) -> dict[str, Any]:
        return {"revision": self.revision, "downRevisions": list(self.down_revisions),
                "file": self.file, "unlintable": self.unlintable,
                "sql": sql[self.start:self.end].strip()}


@dataclass(frozen=True)
class Finding:
    kind: Kind
    revision: str
    message: str
    blocking: bool
    statement: str = ""
    rule: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "revision": self.revision, "rule": self.rule,
                "blocking": self.blocking, "message": self.message,
                "statement": self.statement}


@dataclass(frozen=True)
class LintIssue:
    """One squawk violation: `line` and `column` count from 0, as its JSON reporter does."""

    rule: str
    line: int
    column: int
    message: str


@dataclass(frozen=True)
class Plan:
    sql: str
    revisions: tuple[Revision, ...]
    start: tuple[str, ...]
    heads: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    #: How many findings there were before `MAX_FINDINGS` cut them.
    found: int = 0
    serving_checked: bool = False
    lint: LintLevel = LintLevel.BLOCK
    notes: tuple[str, ...] = field(default=())

    @property
    def digest(self) -> str:
        """`sha256:<hex>` of the rendered SQL: what approves this exact plan."""
        return "sha256:" + hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def blocking(self) -> int:
        return sum(1 for finding in self.findings if finding.blocking)


def serving_findings(statements: Iterable[Statement], serving: ServingVersion,
                     revision_at: RevisionAt) -> list[Finding]:
    """A finding for each change to something `serving` declares."""
    found = []
    for statement in statements:
        for change in statement.changes:
            why = _breaks(change, serving)
            if why:
                found.append(Finding(Kind.SERVING, revision_at(statement.start), why,
                                     blocking=True, statement=_shown(statement.text)))
    return found


def _breaks(change: Change, serving: ServingVersion) -> str | None:
    """Why `change` breaks the serving version, or None."""
    if change.kind in (ChangeKind.DROP_TABLE, ChangeKind.RENAME_TABLE):
        if not serving.declares_table(change.schema, change.table):
            return None
        then = f" to {change.to}" if change.to else ""
        return (f"{change.kind.value} {change.table}{then}, which the serving version "
                "declares: its queries fail until its last pod is gone")
    if change.kind is ChangeKind.ADD_REQUIRED_COLUMN:
        if not serving.declares_table(change.schema, change.table):
            return None
        return (f"adds {change.column} NOT NULL without a default to {change.table}, which "
                "the serving version declares: its inserts, which leave the column out, fail")
    declared = serving.declared_column(change.schema, change.table, change.column)
    if declared is None:
        return None
    detail = {ChangeKind.RENAME_COLUMN: f" to {change.to}",
              ChangeKind.RETYPE_COLUMN: f" to {change.to}" + (
                  f" (declared {declared.type})" if declared.type else "")}.get(change.kind, "")
    return (f"{change.kind.value} {change.subject}{detail}, which the serving version "
            "declares")


def unchecked_findings(statements: Iterable[Statement],
                       revision_at: RevisionAt) -> list[Finding]:
    return [Finding(Kind.UNCHECKED, revision_at(s.start),
                    "sqlglot cannot read this statement: not checked against the serving "
                    "version", blocking=False, statement=_shown(s.text))
            for s in statements if not s.read]


def unlintable_findings(revisions: Iterable[Revision]) -> list[Finding]:
    return [Finding(Kind.UNLINTABLE, r.revision,
                    f"cannot be planned offline: {r.unlintable}; review it by hand",
                    blocking=True)
            for r in revisions if r.unlintable]


def lint_findings(issues: Iterable[LintIssue], sql: str, statements: Sequence[Statement],
                  revision_at: RevisionAt, *, version_table: str,
                  level: LintLevel) -> list[Finding]:
    """Squawk's issues, each on the statement it points into; Alembic's own statements on
    the version table are left out."""
    line_starts = [0] + [i + 1 for i, char in enumerate(sql) if char == "\n"]
    starts = [s.start for s in statements]
    found = []
    for issue in issues:
        line = min(max(issue.line, 0), len(line_starts) - 1)
        offset = line_starts[line] + max(issue.column, 0)
        index = bisect.bisect_right(starts, offset) - 1
        statement = statements[index] if index >= 0 else None
        if statement is not None and statement.table == version_table:
            continue
        found.append(Finding(Kind.LINT, revision_at(offset), issue.message[:MESSAGE_SHOWN],
                             blocking=level is LintLevel.BLOCK, rule=issue.rule,
                             statement=_shown(statement.text) if statement else ""))
    return found


class RevisionAt:
    """The revision whose SQL holds an offset of the rendered SQL."""

    def __init__(self, revisions: Sequence[Revision]) -> None:
        self._revisions = list(revisions)
        self._starts = [r.start for r in self._revisions]

    def __call__(self, offset: int) -> str:
        index = bisect.bisect_right(self._starts, offset) - 1
        # Before the first revision's SQL: the BEGIN and the version table Alembic creates.
        return self._revisions[max(index, 0)].revision if self._revisions else ""


def bounded(findings: list[Finding]) -> tuple[tuple[Finding, ...], int]:
    """The findings kept (blocking ones first, then in order) and how many there were."""
    ordered = sorted(findings, key=lambda f: not f.blocking)
    return tuple(ordered[:MAX_FINDINGS]), len(findings)


def _shown(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STATEMENT_SHOWN else text[:STATEMENT_SHOWN] + " ..."
