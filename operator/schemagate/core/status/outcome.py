"""The next `status` of a DatabaseSchema, from the previous one and one check's outcome."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemagate.core.check.columns import ColumnMismatch
from schemagate.core.check.verdict import Verdict, names
from schemagate.core.revisions.applied import (
    Graph,
    database_identity,
    history_kept_for,
    passed_through,
)
from schemagate.core.status import conditions as cond
from schemagate.core.wire import reasons
from schemagate.core.wire.models import (
    MISMATCHES_IN_STATUS,
    MISSING_IN_STATUS,
    PLACES_IN_STATUS,
    STATUS_LIMIT,
    ColumnMismatchStatus,
    ColumnState,
    DatabaseSchemaStatus,
    DatabaseStatus,
    GateStatus,
    MigrationStatus,
    RevisionStatus,
    TablePlace,
)
from schemagate.core.wire.reasons import Reason

#: The operator could not look at the schema at all: nothing is known about it.
COULD_NOT_LOOK = reasons.COULD_NOT_LOOK
#: Outcomes a person must act on; retrying alone will not fix them. A failed migration
#: is one as well (`Outcome.stalled`): it is reported once its Job has failed, the Job's
#: own retries spent.
NEEDS_A_PERSON = frozenset({Reason.INVALID_SPEC, Reason.SECRET_NOT_FOUND,
                            Reason.AUTHENTICATION_FAILED, Reason.MIGRATION_NO_OP})


@dataclass(frozen=True)
class Outcome:
    """What one reconcile pass concluded; `verdict` is set when the database was read."""

    reason: Reason
    message: str
    verdict: Verdict | None = None
    #: MigrationsApplied as (status, reason, message) when a run is in play; by default
    #: it follows the schema's verdict (run: External, or nothing to run).
    migrations: tuple[bool | None, str, str] | None = None
    #: verifyFrom: Pod - the verify pod that ran the check (None: the operator did).
    verify_pod: str | None = None

    @property
    def verified(self) -> bool:
        return self.reason is Reason.VERIFIED

    @property
    def stalled(self) -> bool:
        """Will not get better without a person (kstatus `Stalled`, Argo CD `Degraded`)."""
        return self.reason is Reason.MIGRATION_FAILED or self.reason in NEEDS_A_PERSON

    @property
    def looked(self) -> bool:
        return self.reason not in COULD_NOT_LOOK


def scrubbed(outcome: Outcome, scrub: Callable[[str], str]) -> Outcome:
    """`outcome` with its messages passed through `scrub` (see `core.tenancy.scrub`)."""
    migrations = outcome.migrations
    if migrations is not None:
        migrations = (migrations[0], migrations[1], scrub(migrations[2]))
    return replace(outcome, message=scrub(outcome.message), migrations=migrations)


#: The status fields a person reads as sentences (the rest are keys, names, reasons,
#: enums and timestamps, written as they are).
SUMMARIES = ("missingSummary", "revisionSummary", "gateSummary")


def for_people(status: Mapping[str, Any], message: Callable[[str], str],
               line: Callable[[str], str]) -> dict[str, Any]:
    """`status` (as written, camelCase) with its free text passed through `message` (the
    condition and migration messages: scrubbed, escaped) and its one-line summaries
    through `line` (escaped); nothing else is touched."""
    written = dict(status)
    if isinstance(conditions := written.get("conditions"), list):
        written["conditions"] = [_with_text(c, "message", message) for c in conditions]
    if isinstance(run := written.get("migration"), Mapping):
        written["migration"] = _with_text(run, "message", message)
    for field in SUMMARIES:
        written = _with_text(written, field, line)
    return written


def _with_text(obj: Any, field: str, rewrite: Callable[[str], str]) -> Any:
    if not isinstance(obj, Mapping) or not isinstance(obj.get(field), str):
        return obj
    return {**obj, field: rewrite(obj[field])}


def from_verdict(verdict: Verdict) -> Outcome:
    return Outcome(verdict.reason, verdict.message, verdict)


def gate_note(g: GateStatus) -> str:
    if g.pods == 0:
        return "no gated pods yet"
    return f"{g.ready} of {g.pods} gated pods open"


#: Tables named in `missingSummary`; the column stays narrow, `missingTables` lists all.
TABLES_IN_SUMMARY = 3


def missing_summary(missing: Sequence[str]) -> str:
    """ "3 tables: a, b, c", "5 tables: a, b, c, ...", or "none"."""
    if not missing:
        return "none"
    shown = ", ".join(missing[:TABLES_IN_SUMMARY])
    more = ", ..." if len(missing) > TABLES_IN_SUMMARY else ""
    return f"{len(missing)} table{'s' if len(missing) != 1 else ''}: {shown}{more}"


def revision_summary(current: frozenset[str] | None, expected: frozenset[str] | None) -> str:
    """ "3f2a9c", "none recorded", "no version table", or "3f2a9c (expected 9d1e07)"."""
    if current is None:
        text = "no version table"
    else:
        text = names(sorted(current), TABLES_IN_SUMMARY) or "none recorded"
    if expected and expected != current:
        text += f" (expected {names(sorted(expected), TABLES_IN_SUMMARY)})"
    return text


def gate_summary(g: GateStatus) -> str:
    return f"{g.ready}/{g.pods}"


def _tri(outcome: Outcome) -> bool | None:
    return None if not outcome.looked else outcome.verified


def revision_history(previous: DatabaseSchemaStatus, verdict: Verdict,
                     graph: Graph | None = None) -> tuple[str | None, list[str]]:
    """`status.revision.historyOf` and `history` after a check: the previous history goes
    on only when it was kept for the database `verdict` was read from, and none is kept
    for a database that cannot be told from another."""
    fp = verdict.fingerprint
    identity = None if fp is None else database_identity(fp.system_identifier, fp.database)
    revision = previous.revision or RevisionStatus()
    if identity is None:
        # What was recorded stays (a merge patch cannot remove it, and a value that
        # differs from the stored one would be written on every check): with no history
        # it vouches for nothing.
        return revision.history_of, []
    kept = history_kept_for(identity, revision.history or [], revision.history_of)
    return identity, passed_through(kept, verdict.current_revisions, graph)


def next_status(previous: DatabaseSchemaStatus, *, outcome: Outcome, generation: int,
                gate: GateStatus, now: datetime, migration: MigrationStatus | None = None,
                graph: Graph | None = None) -> DatabaseSchemaStatus:
    """`graph`: run: Alembic's scripts, which order a head set never seen before."""
    c = previous.conditions
    reason, message = outcome.reason.value, outcome.message
    c = cond.set_condition(c, type=cond.SCHEMA_VERIFIED, status=_tri(outcome), reason=reason,
                           message=message, generation=generation, now=now)
    applied = outcome.migrations or (_tri(outcome), reason, message)
    c = cond.set_condition(c, type=cond.MIGRATIONS_APPLIED, status=applied[0],
                           reason=applied[1], message=applied[2], generation=generation, now=now)
    ready_message = f"{message}; {gate_note(gate)}"
    c = cond.set_condition(c, type=cond.READY, status=outcome.verified, reason=reason,
                           message=ready_message, generation=generation, now=now)
    stalled = outcome.stalled
    c = cond.set_condition(c, type=cond.STALLED, status=stalled, reason=reason,
                           message=message if stalled else "", generation=generation, now=now)
    # kstatus reads a resource without Reconciling or Stalled as Current: while the schema
    # is not Ready and may still get there by itself, say that work is under way.
    reconciling = not outcome.verified and not stalled
    c = cond.set_condition(c, type=cond.RECONCILING, status=reconciling, reason=reason,
                           message=message if reconciling else "", generation=generation,
                           now=now)
    status = previous.model_copy(update={"observed_generation": generation, "conditions": c,
                                         "gate": gate, "gate_summary": gate_summary(gate),
                                         "migration": migration or previous.migration})
    verdict = outcome.verdict
    if verdict is None or not outcome.looked:
        return status  # keep what was last seen; lastVerifiedTime says when
    fp = verdict.fingerprint
    # Written even when empty: the status is merge-patched, so an absent list would keep
    # the previous database's history in the object.
    history_of, history = revision_history(previous, verdict, graph)
    return fit(status.model_copy(update={
        "missing_tables": list(verdict.missing_tables[:MISSING_IN_STATUS]),
        "found_elsewhere": [TablePlace(table=p.table, schema=p.schema, database=p.database)
                            for p in verdict.found_elsewhere[:PLACES_IN_STATUS]],
        "column_mismatches": [mismatch_status(m) for m in
                              verdict.column_mismatches[:MISMATCHES_IN_STATUS]],
        "revision": RevisionStatus(current=sorted(verdict.current_revisions or ())[:REVISIONS],
                                   expected=sorted(verdict.expected_revisions or ())[:REVISIONS],
                                   history=history, history_of=history_of),
        "database": None if fp is None else DatabaseStatus(
            host=fp.host, port=fp.port, database=fp.database, user=fp.user,
            search_path=fp.search_path, server_version=fp.server_version,
            system_identifier=None if fp.system_identifier is None else str(fp.system_identifier),
            verified_from="Operator" if outcome.verify_pod is None else "Pod",
            verify_pod=outcome.verify_pod),
        "last_verified_time": cond.timestamp(now),
        "missing_summary": missing_summary(verdict.missing_tables),
        "revision_summary": revision_summary(verdict.current_revisions,
                                             verdict.expected_revisions),
    }))


#: Revisions listed in status.revision (a version table may hold any number of rows).
REVISIONS = 64


def size(status: DatabaseSchemaStatus) -> int:
    return len(status.model_dump_json(by_alias=True, exclude_none=True).encode())


def fit(status: DatabaseSchemaStatus, limit: int = STATUS_LIMIT) -> DatabaseSchemaStatus:
    """`status` within `limit` bytes of JSON: the lists are cut shorter, the one of most
    bytes first, until it fits (their counts stay in the summaries and messages)."""
    while size(status) > limit:
        lists: dict[str, list[Any]] = {"missing_tables": status.missing_tables or [],
                 "found_elsewhere": status.found_elsewhere or [],
                 "column_mismatches": status.column_mismatches or [],
                 "revision": (status.revision.history or []) if status.revision else []}
        name, longest = max(lists.items(), key=lambda item: len(repr(item[1])))
        if not longest:
            break  # nothing left to cut: messages and summaries are bounded on their own
        kept = longest[: len(longest) // 2]
        if name == "revision":
            assert status.revision is not None
            status = status.model_copy(update={"revision": status.revision.model_copy(
                update={"history": kept})})  # an empty list, not None: see next_status
        else:
            status = status.model_copy(update={name: kept})
    return status


def mismatch_status(mismatch: ColumnMismatch) -> ColumnMismatchStatus:
    declared, found = mismatch.declared, mismatch.found
    return ColumnMismatchStatus(
        table=declared.table, column=declared.name,
        expected=ColumnState(type=declared.type, nullable=declared.nullable),
        found=None if found is None else ColumnState(type=found.type, nullable=found.nullable))


def transition(previous: DatabaseSchemaStatus, current: DatabaseSchemaStatus) -> str | None:
    """A one-line description when the schema's verdict or readiness changed, else None.

    Only transitions become Events and INFO logs; a steady state repeats nothing.
    """
    def key(s: DatabaseSchemaStatus) -> tuple[str | None, ...]:
        verified = cond.find(s.conditions, cond.SCHEMA_VERIFIED)
        ready = cond.find(s.conditions, cond.READY)
        return (verified.status if verified else None, verified.reason if verified else None,
                ready.status if ready else None)

    if key(previous) == key(current):
        return None
    verified = cond.find(current.conditions, cond.SCHEMA_VERIFIED)
    assert verified is not None
    return f"{verified.reason}: {verified.message}"
