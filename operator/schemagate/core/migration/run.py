"""What to do next about a migration, in either mode (pure): state in, next step out.

`run: Job` and `run: Alembic` are one shape: each change of what the migration runs is
one Job, named by a hash of it. The step around this reads the Job (and, once it has
ended, its pod's last words), calls `decide`, and performs what it says: create the
Job, or nothing. Whether the run did its work is never the runner's word: the
database, checked at the start of the same pass, judges it (`migration.judge_success`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemagate.core.migration import judge as migration
from schemagate.core.migration.alembic_job import EXIT_RETRY
from schemagate.core.migration.job import JobState, LastWords, describe
from schemagate.core.status.outcome import Outcome
from schemagate.core.wire.models import MigrationOutcome, MigrationSnapshot, MigrationStatus

#: How often to look at a running migration Job (seconds).
RUNNING_RECHECK = 2.0
#: The report `schemagate migrate` leaves, at most this long (the kubelet keeps 4 KiB).
REPORT_LIMIT = 3000


@dataclass(frozen=True)
class ObservedJob:
    """The migration Job of the current change, as the API server shows it."""

    state: JobState
    #: The database before the run, as the Job was created with (None: created without).
    snapshot: MigrationSnapshot | None = None
    #: How its newest pod's container ended (read once the Job has ended).
    words: LastWords | None = None
    #: Why Kubernetes failed it, when that says more than the pod (deadline, retries).
    failure: str = ""


@dataclass(frozen=True)
class Situation:
    job: str                 # the Job this change runs as
    outcome: Outcome         # this pass's verification, before anything is done
    previous: MigrationStatus
    observed: ObservedJob | None
    declared: int            # how many tables the spec declares
    now: str                 # RFC 3339
    #: run: Alembic: the scripts' heads. A database verified for them needs no run.
    heads: list[str] | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    record: MigrationStatus | None = None  # status.migration to write; None keeps it
    #: Create the Job, carrying this snapshot of the database before it.
    create: MigrationSnapshot | None = None
    sooner: float | None = None


@dataclass(frozen=True)
class Report:
    """What `schemagate migrate` said it did: a word, and a message."""

    outcome: MigrationOutcome | None
    message: str


def read_report(words: LastWords | None) -> Report:
    """The report in a migrate pod's termination message, or its raw text (a revision
    that killed the process leaves only the output's tail)."""
    if words is None:
        return Report(None, "")
    try:
        data = json.loads(words.message)
        outcome = MigrationOutcome(data["outcome"])
        message = data["message"]
    except (ValueError, TypeError, KeyError):
        return Report(None, words.message)
    if not isinstance(message, str):
        return Report(None, words.message)
    return Report(outcome, message)


def running(outcome: Outcome, job: str) -> Outcome:
    return migration.with_migrations(outcome, None, migration.MIGRATION_RUNNING,
                                     f"migration Job {job} is running")


def decide(s: Situation) -> Decision:
    outcome = s.outcome
    if not outcome.looked or outcome.verdict is None:
        return Decision(outcome)  # no run without a "before" to judge it against
    record = s.previous if s.previous.job == s.job else None
    if s.observed is None and record is None:
        if s.heads is not None and outcome.verified:
            return _nothing_to_run(s)
        before = migration.snapshot(outcome.verdict, s.declared)
        started = MigrationStatus(job=s.job, started_at=s.now, outcome=migration.RUNNING,
                                  before=before, heads=s.heads)
        return Decision(running(outcome, s.job), started, create=before,
                        sooner=RUNNING_RECHECK)
    record = record or MigrationStatus(
        job=s.job, started_at=s.now, outcome=migration.RUNNING, heads=s.heads,
        before=s.observed.snapshot if s.observed is not None else None,
        message="the operator restarted before recording this Job; following it again")
    # A Job deleted after it ended (a TTL, a person) is judged by what was recorded.
    state = s.observed.state if s.observed is not None else (
        JobState.FAILED if record.outcome == migration.FAILED else JobState.SUCCEEDED)
    if state is JobState.RUNNING:
        return Decision(_still_running(s), record, sooner=RUNNING_RECHECK)
    finished = record.finished_at or s.now
    runner = f"migration Job {s.job}"
    if state is JobState.FAILED:
        message = record.message if record.outcome == migration.FAILED else _failure(s)
        failed = migration.failed(runner, message or "", outcome.verdict)
        return Decision(migration.judged(failed), record.model_copy(update={
            "outcome": migration.FAILED, "finished_at": finished, "message": message}))
    return _succeeded(s, record, runner, finished)


def _still_running(s: Situation) -> Outcome:
    """A running Job; if an attempt of it already ended asking for another (exit
    EXIT_RETRY), what that attempt said: the lock busy, most often."""
    words = s.observed.words if s.observed is not None else None
    if words is None or words.exit_code != EXIT_RETRY:
        return running(s.outcome, s.job)
    said = read_report(words).message[:REPORT_LIMIT]
    reason = migration.MIGRATION_LOCK_BUSY if "migration lock" in said else \
        migration.MIGRATION_RUNNING
    return migration.with_migrations(
        s.outcome, None, reason,
        f"migration Job {s.job} is running; its last attempt said: {said}; Kubernetes "
        "tries again")


def _nothing_to_run(s: Situation) -> Decision:
    """run: Alembic, and the database already has the scripts' heads."""
    # A record of these scripts stays, unless it says a run is under way: that run is
    # the change before this one, and the database no longer waits for it.
    kept = s.previous.heads == s.heads and s.previous.outcome != migration.RUNNING
    record = s.previous if kept else MigrationStatus(
        outcome=migration.ALREADY_APPLIED, heads=s.heads, finished_at=s.now)
    return Decision(migration.judged(s.outcome), record)


def _failure(s: Situation) -> str:
    observed = s.observed
    if observed is None:
        return ""
    said = read_report(observed.words)
    words = describe(observed.words) if said.outcome is None else said.message
    return "; ".join(part for part in (words, observed.failure) if part)[:REPORT_LIMIT]


def _succeeded(s: Situation, record: MigrationStatus, runner: str, finished: str) -> Decision:
    assert s.outcome.verdict is not None  # decide() returned earlier otherwise
    note = None
    if record.outcome in (migration.RUNNING, migration.NO_OP):
        judged, word = migration.judge_success(runner, s.outcome.verdict, record.before,
                                               s.declared)
        said = read_report(s.observed.words) if s.observed is not None else Report(None, "")
        if said.outcome is migration.ALREADY_APPLIED and word is migration.APPLIED:
            word = migration.ALREADY_APPLIED  # another migrator was first; ours ran nothing
        if said.outcome is not None and said.message:
            note = said.message[:REPORT_LIMIT]
        if s.observed is None and record.outcome == migration.RUNNING:
            # The operator was away while the Job ended and someone (a TTL) deleted it.
            note = (f"{runner} is gone: it ended while the operator was not watching and "
                    "was deleted; judged by the database")
    else:  # judged applied before: what follows is the schema's own story (drift, repair)
        judged, word = s.outcome, MigrationOutcome(record.outcome or migration.APPLIED)
        note = record.message
    return Decision(migration.judged(judged), record.model_copy(update={
        "outcome": word, "finished_at": finished, "message": note}))
