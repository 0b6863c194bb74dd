"""Judging a migration run by the database, never by the runner (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemagate.core.check.verdict import Verdict
from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import MigrationOutcome, MigrationSnapshot, MigrationStatus
from schemagate.core.wire.reasons import GateReason, Reason

RUNNING = MigrationOutcome.RUNNING
APPLIED = MigrationOutcome.APPLIED
ALREADY_APPLIED = MigrationOutcome.ALREADY_APPLIED
NO_OP = MigrationOutcome.NO_OP
FAILED = MigrationOutcome.FAILED
MIGRATION_RUNNING = GateReason.MIGRATION_RUNNING.value
MIGRATION_LOCK_BUSY = GateReason.MIGRATION_LOCK_BUSY.value


@dataclass(frozen=True)
class Step:
    """What one migration step concluded, for the reconciler to write and gate on."""

    outcome: Outcome
    record: MigrationStatus | None = None  # status.migration to write; None keeps it
    sooner: float | None = None  # look again this soon (seconds)
    #: run: Alembic: the scripts' revision graph, and where it came from, for the gate.
    graph: Mapping[str, frozenset[str]] | None = None
    graph_source: str = ""

    @property
    def migrating(self) -> str | None:
        """The message of a migration under way, else None."""
        m = self.outcome.migrations
        return m[2] if m is not None and m[1] == MIGRATION_RUNNING else None


def snapshot(verdict: Verdict, declared: int) -> MigrationSnapshot:
    current = verdict.current_revisions
    return MigrationSnapshot(revision=None if current is None else sorted(current),
                             tables_present=declared - len(verdict.missing_tables),
                             column_mismatches=len(verdict.column_mismatches))


def _describe(s: MigrationSnapshot, declared: int) -> str:
    revision = "no version table" if s.revision is None else (
        f"revision {', '.join(s.revision)}" if s.revision else "an empty version table")
    text = f"{revision}, {s.tables_present} of {declared} declared tables present"
    if s.column_mismatches:
        text += f", {s.column_mismatches} declared columns differing"
    return text


def _same(a: MigrationSnapshot, b: MigrationSnapshot) -> bool:
    # An empty version table created by a run that applied nothing is still nothing.
    return set(a.revision or ()) == set(b.revision or ()) and \
        a.tables_present == b.tables_present and a.column_mismatches == b.column_mismatches


def judge_success(runner: str, verdict: Verdict, before: MigrationSnapshot | None,
                  declared: int) -> tuple[Outcome, MigrationOutcome]:
    """A run said it succeeded: believe the database. Returns the outcome and the
    migration outcome word for status.migration."""
    if verdict.verified:
        return Outcome(Reason.VERIFIED, verdict.message, verdict), APPLIED
    after = snapshot(verdict, declared)
    where = ""
    if verdict.fingerprint is not None:
        fp = verdict.fingerprint
        where = f"; schemagate checked {fp.where} as {fp.user}"
    if before is not None and _same(after, before):
        message = (f"{runner} reported success but the database is unchanged "
                   f"({_describe(after, declared)}, as before the run){where}: "
                   f"{verdict.reason.value}: {verdict.message}")
        return Outcome(Reason.MIGRATION_NO_OP, message, verdict), NO_OP
    return Outcome(verdict.reason, f"after {runner}: {verdict.message}", verdict), APPLIED


def failed(runner: str, error: str, verdict: Verdict | None) -> Outcome:
    """A failed run."""
    detail = error.strip() or "no message"
    return Outcome(Reason.MIGRATION_FAILED,
                   f"{runner} failed: {detail}; the gate stays closed", verdict)


def with_migrations(outcome: Outcome, status: bool | None, reason: str, message: str
                    ) -> Outcome:
    """`outcome` with MigrationsApplied set apart from the schema's verdict."""
    return Outcome(outcome.reason, outcome.message, outcome.verdict,
                   migrations=(status, reason, message))


def judged(outcome: Outcome) -> Outcome:
    """`outcome` of a finished run: MigrationsApplied says what the database says."""
    return with_migrations(outcome, outcome.reason is Reason.VERIFIED, outcome.reason.value,
                           outcome.message)
