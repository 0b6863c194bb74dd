"""What was required, what the database showed, and the verdict: pure data and one decision.

`schemagate.postgres.catalog` fills an `Observation` from PostgreSQL; `decide` turns a
`Requirement` and an `Observation` into a `Verdict` with one reason of the vocabulary
(core/wire/reasons.py) and a message in the user's words. The operator builds conditions,
pod gate messages and status from a `Verdict`; the command line prints
`Verdict.to_json()`. Nothing here does I/O, so every rule is tested without a socket.

Precedence. When declared tables are missing from `schema`, the first
that applies wins:

1. `TablesElsewhere`: a missing table exists in another schema of this database or in
   another database on the same server.
2. `NoRevision` (revision check on): the version table is absent or empty.
3. `StampedButMissing` (revision check on): the version table holds a revision, and
   it is the expected set when one is given.
4. `RevisionMismatch` (revision check on, expected revisions given and different from
   the recorded ones). The vocabulary reserves this reason for "all tables present" and names
   no reason for this case; the database simply is not migrated to the expected revision
   yet, and running the migrations is what fixes it, which is what `RevisionMismatch`
   tells a reader. `StampedButMissing` would instead claim the stamp is a lie.
5. `TablesMissing`: the revision check is off.

When every declared table is present: `ColumnsMismatch` when a declared column is
missing or of another type or nullability (whatever the revision; its message says what
the version table records, which tells "migrations pending" from "changed by hand");
then `Verified` if the revision check is off; otherwise `NoRevision` (absent or empty
version table), then `RevisionMismatch` (only when expected revisions are given), else
`Verified`. Columns of a missing table are not reported: the table's reason says more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schemagate.core.check.columns import (
    ColumnFinding,
    ColumnMismatch,
    ColumnRequirement,
    column_mismatches,
    identifier,
    mismatch_list,
)
from schemagate.core.wire.reasons import CONNECTION_FAILURES, Reason

#: How many names a message lists before "and N more"; the full lists stay in the fields.
NAMES_IN_MESSAGE = 10
@dataclass(frozen=True)
class Requirement:
    """What must be true of the database: the declared tables and the Alembic revision.

    `version_table_schema` defaults to `schema`. `tables` keeps the declared order
    without duplicates. `expected_revisions` is a set (several heads are several
    revisions); None or empty means any recorded revision will do.
    """

    schema: str = "public"
    tables: tuple[str, ...] = ()
    revision_check: bool = True
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    expected_revisions: frozenset[str] | None = None
    #: Tables named here count as declared (they join `tables`, after it).
    columns: tuple[ColumnRequirement, ...] = ()

    def __post_init__(self) -> None:
        for what, value in (("schema", self.schema), ("version table", self.version_table)):
            if not value:
                raise ValueError(f"the {what} name is empty")
        if any(not name for name in self.tables):
            raise ValueError("a declared table name is empty")
        seen: set[tuple[str, str]] = set()
        for column in self.columns:
            if not column.table or not column.name:
                raise ValueError("a declared column or its table has an empty name")
            if column.type is not None and not column.type:
                raise ValueError(f"column {column.table}.{column.name} has an empty type")
            if (column.table, column.name) in seen:
                raise ValueError(f"column {column.table}.{column.name} is declared twice")
            seen.add((column.table, column.name))
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "tables", tuple(dict.fromkeys(
            (*self.tables, *(column.table for column in self.columns)))))
        if not self.version_table_schema:
            object.__setattr__(self, "version_table_schema", self.schema)
        expected = self.expected_revisions
        object.__setattr__(self, "expected_revisions", frozenset(expected) if expected else None)

    @property
    def version_table_place(self) -> str:
        """`schema.table` of the version table, for messages."""
        return f"{self.version_table_schema or self.schema}.{self.version_table}"


@dataclass(frozen=True)
class Place:
    """Where a declared table was found instead: `table` in `schema` of `database`."""

    table: str
    schema: str
    database: str

    def to_json(self) -> dict[str, str]:
        return {"table": self.table, "schema": self.schema, "database": self.database}


@dataclass(frozen=True)
class Fingerprint:
    """Which server, database and role the check really reached; never a password.

    `host` and `port` are the server's own address (`inet_server_addr()`), or the URL's
    when connected through a Unix socket. `search_path` is the setting as the session
    sees it (the URL's `options` included); `effective_search_path` is what it resolves
    to (`current_schemas(true)`). `system_identifier` is None when the role may not read
    `pg_control_system()`.
    """

    host: str | None
    port: int | None
    database: str
    user: str
    search_path: str
    server_version: str
    system_identifier: str | None = None
    effective_search_path: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """The place for messages: `database app on 10.0.0.5:5432`."""
        if self.host is None:
            return f"database {self.database} on the local socket"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"database {self.database} on {host}:{self.port or 5432}"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "search_path": self.search_path,
            "server_version": self.server_version,
            "system_identifier": self.system_identifier,
        }


@dataclass(frozen=True)
class Observation:
    """What the database showed for one `Requirement`.

    `present_tables` are the declared tables found in the requirement's schema.
    `current_revisions` is None when the version table is absent (or was not read
    because the revision check is off), empty when it holds no row. `found_elsewhere`
    lists where missing tables exist instead. `schema_exists` is False when the
    requirement's schema is not in the database at all. `column_findings` holds the
    declared columns of present tables that did not match as declared; every declared
    column not listed there matched.
    """

    present_tables: frozenset[str]
    current_revisions: frozenset[str] | None
    found_elsewhere: tuple[Place, ...]
    fingerprint: Fingerprint
    schema_exists: bool = True
    duration_ms: float = 0.0
    column_findings: tuple[ColumnFinding, ...] = ()
    #: Why the version table was not read as revisions (more rows, or longer ones, than
    #: any Alembic writes); `current_revisions` is then None.
    version_table_refused: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification: a reason of the vocabulary and what was seen.

    `fingerprint` is None when the database could not be reached.
    """

    verified: bool
    reason: Reason
    message: str
    missing_tables: tuple[str, ...] = ()
    found_elsewhere: tuple[Place, ...] = ()
    current_revisions: frozenset[str] | None = None
    expected_revisions: frozenset[str] | None = None
    fingerprint: Fingerprint | None = None
    duration_ms: float = 0.0
    column_mismatches: tuple[ColumnMismatch, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `schemagate verify --json` object (docs/reference.md)."""
        return {
            "verified": self.verified,
            "reason": self.reason.value,
            "message": self.message,
            "missing_tables": list(self.missing_tables),
            "found_elsewhere": [place.to_json() for place in self.found_elsewhere],
            "column_mismatches": [m.to_json() for m in self.column_mismatches],
            "revision": {
                "current": _sorted_or_none(self.current_revisions),
                "expected": _sorted_or_none(self.expected_revisions),
            },
            "database": None if self.fingerprint is None else self.fingerprint.to_json(),
            "duration_ms": round(self.duration_ms, 1),
        }


def decide(requirement: Requirement, observation: Observation) -> Verdict:
    """The verdict for `requirement` given what `observation` saw (precedence above)."""
    present = observation.present_tables
    missing = () if present.issuperset(requirement.tables) else tuple(
        t for t in requirement.tables if t not in present)
    missing_set = set(missing)
    elsewhere = tuple(p for p in observation.found_elsewhere if p.table in missing_set)
    current = observation.current_revisions
    expected = requirement.expected_revisions
    # A version table that could not be read says no revision the gate could match.
    refused = observation.version_table_refused if requirement.revision_check else None
    recorded = bool(current) or refused is not None
    differs = (expected is not None and current != expected) or refused is not None
    mismatches = column_mismatches(requirement.columns, observation.column_findings,
                                   observation.present_tables)

    if missing:
        if elsewhere:
            reason = Reason.TABLES_ELSEWHERE
        elif not requirement.revision_check:
            reason = Reason.TABLES_MISSING
        elif not recorded:
            reason = Reason.NO_REVISION
        elif differs:
            reason = Reason.REVISION_MISMATCH
        else:
            reason = Reason.STAMPED_BUT_MISSING
    elif mismatches:
        reason = Reason.COLUMNS_MISMATCH
    elif not requirement.revision_check:
        reason = Reason.VERIFIED
    elif not recorded:
        reason = Reason.NO_REVISION
    elif differs:
        reason = Reason.REVISION_MISMATCH
    else:
        reason = Reason.VERIFIED

    if reason is Reason.COLUMNS_MISMATCH:
        message = _columns_mismatch(requirement, observation, mismatches)
    elif reason is Reason.REVISION_MISMATCH and refused is not None:
        message = (f"{refused}, so which revision {observation.fingerprint.where} is at cannot "
                   "be told (Alembic writes one row per head, each a short id)")
    else:
        message = _MESSAGES[reason](requirement, observation, missing, elsewhere)
        if mismatches:
            message += f"; columns also differ: {mismatch_list(mismatches)}"
    return Verdict(
        verified=reason is Reason.VERIFIED,
        reason=reason,
        message=message,
        missing_tables=missing,
        found_elsewhere=elsewhere,
        current_revisions=current,
        expected_revisions=expected,
        fingerprint=observation.fingerprint,
        duration_ms=observation.duration_ms,
        column_mismatches=mismatches,
    )


def connection_failed(requirement: Requirement, reason: Reason, message: str, *,
                      duration_ms: float = 0.0) -> Verdict:
    """The verdict when the database could not be read: `DatabaseUnreachable` or
    `AuthenticationFailed`, with the (password-free) `message` saying why."""
    if reason not in CONNECTION_FAILURES:
        raise ValueError(f"{reason.value} is not a connection failure")
    return Verdict(verified=False, reason=reason, message=message,
                   expected_revisions=requirement.expected_revisions,
                   duration_ms=duration_ms)


# Messages: what was seen, where, and what to look at next.

def names(items: Iterable[str], limit: int = NAMES_IN_MESSAGE) -> str:
    """`a, b, c`, or `a, b, ... and 9,990 more`: long lists stay readable in a condition."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit:,} more"


def _sorted_or_none(revisions: frozenset[str] | None) -> list[str] | None:
    return None if revisions is None else sorted(revisions)


def _revisions(revisions: frozenset[str] | None) -> str:
    return names(sorted(revisions)) if revisions else "nothing"


def _missing_from(req: Requirement, obs: Observation, missing: tuple[str, ...]) -> str:
    verb = "is" if len(missing) == 1 else "are"
    head = f"{names(missing)} {verb} missing from schema {req.schema} of {obs.fingerprint.where}"
    if not obs.schema_exists:
        head += f" (schema {req.schema} does not exist there)"
    return head


def _all_present(req: Requirement, obs: Observation) -> str:
    count = len(req.tables)
    where = f"schema {req.schema} of {obs.fingerprint.where}"
    if count == 0:
        return f"no tables declared for {where}"
    if count == 1:
        text = f"the declared table {req.tables[0]} is present in {where}"
    else:
        text = f"all {count:,} declared tables are present in {where}"
    columns = len(req.columns)
    if columns:
        text += (f", with the declared column {identifier(req.columns[0].name)}" if columns == 1
                 else f", with all {columns:,} declared columns")
    return text


def _places(elsewhere: tuple[Place, ...], database: str, missing: tuple[str, ...]) -> str:
    """`found in schema migrator (...)`, grouping tables by place, naming other databases."""
    by_place: dict[tuple[str, str], list[str]] = {}
    for place in elsewhere:
        by_place.setdefault((place.database, place.schema), []).append(place.table)
    all_missing = set(missing)
    parts = []
    for (db, schema), tables in list(by_place.items())[:NAMES_IN_MESSAGE]:
        where = f"schema {schema}" if db == database else f"database {db} (schema {schema})"
        if set(tables) != all_missing:
            where += f": {names(tables)}"
        parts.append(where)
    if len(by_place) > NAMES_IN_MESSAGE:
        parts[-1] += f"; and {len(by_place) - NAMES_IN_MESSAGE:,} more places"
    hints = []
    if any(p.database == database for p in elsewhere):
        hints.append("the migrating role's search_path?")
    if any(p.database != database for p in elsewhere):
        hints.append("the migration ran against another database?")
    return f"found in {'; in '.join(parts)} ({' '.join(hints)})"


def _tables_elsewhere(req: Requirement, obs: Observation, missing: tuple[str, ...],
                      elsewhere: tuple[Place, ...]) -> str:
    message = f"{_missing_from(req, obs, missing)}; " + _places(
        elsewhere, obs.fingerprint.database, missing)
    found = {p.table for p in elsewhere}  # once: 10,000 tables in 10,000 places
    nowhere = [t for t in missing if t not in found]
    if nowhere:
        message += f"; not found anywhere: {names(nowhere)}"
    return message


def _no_revision(req: Requirement, obs: Observation, missing: tuple[str, ...],
                 elsewhere: tuple[Place, ...]) -> str:
    state = "does not exist" if obs.current_revisions is None else "is empty"
    seen = _missing_from(req, obs, missing) if missing else _all_present(req, obs)
    return (f"no migration is recorded: version table {req.version_table_place} {state}; "
            f"{seen} (did the migration find its versions folder and this database?)")


def _stamped_but_missing(req: Requirement, obs: Observation, missing: tuple[str, ...],
                         elsewhere: tuple[Place, ...]) -> str:
    return (f"{_missing_from(req, obs, missing)}, yet {req.version_table_place} records "
            f"{_revisions(obs.current_revisions)} (tables dropped, or the revision stamped "
            "without running the migrations?)")


def _tables_missing(req: Requirement, obs: Observation, missing: tuple[str, ...],
                    elsewhere: tuple[Place, ...]) -> str:
    return (f"{_missing_from(req, obs, missing)}, and in no other schema or database this role "
            "searched (have the migrations run?)")


def _revision_mismatch(req: Requirement, obs: Observation, missing: tuple[str, ...],
                       elsewhere: tuple[Place, ...]) -> str:
    seen = _missing_from(req, obs, missing) if missing else _all_present(req, obs)
    return (f"{req.version_table_place} records {_revisions(obs.current_revisions)}, expected "
            f"{_revisions(req.expected_revisions)}; {seen} (migrations pending, or the expected "
            "revision out of date?)")


def _verified(req: Requirement, obs: Observation, missing: tuple[str, ...],
              elsewhere: tuple[Place, ...]) -> str:
    message = _all_present(req, obs)
    if req.revision_check:
        message += f"; {req.version_table_place} records {_revisions(obs.current_revisions)}"
    else:
        message += "; revision not checked"
    path = obs.fingerprint.effective_search_path
    if path and req.schema not in path:
        message += (f"; note: schema {req.schema} is not on this connection's search_path "
                    f"({', '.join(path)}), so unqualified table names will not find it")
    return message


def _columns_mismatch(req: Requirement, obs: Observation,
                      mismatches: tuple[ColumnMismatch, ...]) -> str:
    tables = len({m.declared.table for m in mismatches})
    count = len(mismatches)
    head = (f"{count:,} declared column{'s' if count != 1 else ''} of "
            f"{tables:,} table{'s' if tables != 1 else ''} "
            f"{'differs' if count == 1 else 'differ'} in schema {req.schema} of "
            f"{obs.fingerprint.where}: {mismatch_list(mismatches)}")
    if not req.revision_check:
        return head + " (revision not checked)"
    current = obs.current_revisions
    if not current:
        state = "does not exist" if current is None else "is empty"
        return f"{head}; no migration is recorded: {req.version_table_place} {state}"
    head += f"; {req.version_table_place} records {_revisions(current)}"
    expected = req.expected_revisions
    if expected is not None and current != expected:
        return f"{head}, expected {_revisions(expected)} (migrations pending?)"
    return head + " (a migration stamped without these columns, or a change made by hand?)"


_MESSAGES = {
    Reason.TABLES_ELSEWHERE: _tables_elsewhere,
    Reason.NO_REVISION: _no_revision,
    Reason.STAMPED_BUT_MISSING: _stamped_but_missing,
    Reason.TABLES_MISSING: _tables_missing,
    Reason.REVISION_MISMATCH: _revision_mismatch,
    Reason.VERIFIED: _verified,
}
