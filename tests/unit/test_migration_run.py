"""One decision for both migration modes: what the database says, what the Job says,
and what was recorded come in; the next step comes out."""

from __future__ import annotations

import json

from schemagate.core.check.verdict import Fingerprint, Verdict
from schemagate.core.migration import judge as migration
from schemagate.core.migration.alembic_job import EXIT_RETRY
from schemagate.core.migration.job import JobState, LastWords
from schemagate.core.migration.run import (
    ObservedJob,
    Situation,
    decide,
    read_report,
)
from schemagate.core.status.outcome import Outcome, from_verdict
from schemagate.core.wire.models import MigrationOutcome, MigrationSnapshot, MigrationStatus
from schemagate.core.wire.reasons import Reason

FP = Fingerprint(host="10.0.0.5", port=5432, database="app", user="backend",
                 search_path="public", server_version="18")
NOW = "2026-12-02T05:00:00Z"
JOB = "backend-schema-migrate-3-abc"
EMPTY = MigrationSnapshot(revision=None, tables_present=0)


def db(reason: Reason = Reason.NO_REVISION, current: frozenset[str] | None = None,
       missing: tuple[str, ...] = ("a", "b")) -> Outcome:
    return from_verdict(Verdict(verified=reason is Reason.VERIFIED, reason=reason,
                                message="m", missing_tables=missing,
                                current_revisions=current, fingerprint=FP))


VERIFIED = db(Reason.VERIFIED, frozenset({"r1"}), ())
UNMIGRATED = db()


def situation(outcome: Outcome = UNMIGRATED, previous: MigrationStatus | None = None,
              observed: ObservedJob | None = None, heads: list[str] | None = None
              ) -> Situation:
    return Situation(job=JOB, outcome=outcome, previous=previous or MigrationStatus(),
                     observed=observed, declared=2, now=NOW, heads=heads)


def report(outcome: str, message: str, code: int = 0) -> LastWords:
    return LastWords(code, json.dumps({"outcome": outcome, "message": message}))


RUNNING = MigrationStatus(job=JOB, started_at=NOW, outcome=MigrationOutcome.RUNNING,
                          before=EMPTY)


def test_a_new_change_creates_the_job_with_the_database_before_it() -> None:
    d = decide(situation())
    assert d.create == EMPTY
    assert d.record is not None and d.record.job == JOB
    assert d.record.outcome is MigrationOutcome.RUNNING
    assert d.outcome.migrations is not None
    assert d.outcome.migrations[1] == migration.MIGRATION_RUNNING and d.sooner


def test_nothing_is_started_without_having_looked_at_the_database() -> None:
    d = decide(situation(Outcome(Reason.DATABASE_UNREACHABLE, "timeout")))
    assert d.create is None and d.record is None
    assert d.outcome.reason is Reason.DATABASE_UNREACHABLE


def test_alembic_scripts_already_applied_need_no_job() -> None:
    d = decide(situation(VERIFIED, heads=["r1"]))
    assert d.create is None and d.outcome.verified
    assert d.record is not None and d.record.outcome is MigrationOutcome.ALREADY_APPLIED
    applied = MigrationStatus(job="old", outcome=MigrationOutcome.APPLIED, heads=["r1"])
    assert decide(situation(VERIFIED, applied, heads=["r1"])).record == applied
    # A run of the change before, recorded as running, is not left running forever.
    stale = applied.model_copy(update={"outcome": MigrationOutcome.RUNNING})
    kept = decide(situation(VERIFIED, stale, heads=["r1"])).record
    assert kept is not None and kept.outcome is MigrationOutcome.ALREADY_APPLIED


def test_a_job_mode_change_runs_even_on_a_verified_database() -> None:
    assert decide(situation(VERIFIED)).create is not None  # its command's effect is unknown


def test_a_running_job_holds_the_gate_and_is_looked_at_soon() -> None:
    d = decide(situation(db(), RUNNING, ObservedJob(JobState.RUNNING)))
    assert d.create is None and d.record == RUNNING and d.sooner
    assert d.outcome.migrations is not None
    assert d.outcome.migrations[1] == migration.MIGRATION_RUNNING


def test_a_job_tried_again_for_a_busy_lock_says_so() -> None:
    words = report("Failed", "the migration lock of db is held by pid 7; retry later",
                   code=EXIT_RETRY)
    d = decide(situation(db(), RUNNING, ObservedJob(JobState.RUNNING, words=words)))
    assert d.outcome.migrations is not None
    assert d.outcome.migrations[1] == migration.MIGRATION_LOCK_BUSY
    assert "held by pid 7" in d.outcome.migrations[2] and d.sooner


def test_a_failed_run_carries_what_the_migrator_reported() -> None:
    words = report("Failed", "0002.py: ZeroDivisionError: division by zero; nothing was "
                   "applied", code=1)
    d = decide(situation(db(), RUNNING, ObservedJob(JobState.FAILED, words=words)))
    assert d.outcome.reason is Reason.MIGRATION_FAILED
    assert "ZeroDivisionError" in d.outcome.message and JOB in d.outcome.message
    assert d.outcome.stalled, "a person must fix the revision files"
    assert d.record is not None and d.record.outcome is MigrationOutcome.FAILED
    assert d.record.finished_at == NOW and "ZeroDivisionError" in (d.record.message or "")
    assert d.create is None, "a failed Job is not started again for the same change"


def test_a_migrator_that_died_is_a_failure_with_its_output_tail() -> None:
    words = LastWords(1, "INFO Running upgrade -> 3f2a9c")  # os._exit(1): no report
    d = decide(situation(db(), RUNNING, ObservedJob(JobState.FAILED, words=words)))
    assert d.outcome.reason is Reason.MIGRATION_FAILED
    assert "exit code 1: INFO Running upgrade" in d.outcome.message


def test_a_migrator_stopped_at_its_deadline_says_so() -> None:
    observed = ObservedJob(JobState.FAILED, words=LastWords(143, ""),
                           failure="stopped by Kubernetes after activeDeadlineSeconds (20 s)")
    d = decide(situation(db(), RUNNING, observed))
    assert d.outcome.reason is Reason.MIGRATION_FAILED
    assert "exit code 143" in d.outcome.message and "activeDeadlineSeconds" in d.outcome.message


def test_success_is_judged_by_the_database() -> None:
    done = ObservedJob(JobState.SUCCEEDED, words=report("Applied", "applied r1"))
    d = decide(situation(VERIFIED, RUNNING, done))
    assert d.outcome.verified
    assert d.record is not None and d.record.outcome is MigrationOutcome.APPLIED
    assert d.record.message == "applied r1"
    noop = decide(situation(db(), RUNNING, ObservedJob(JobState.SUCCEEDED)))
    assert noop.outcome.reason is Reason.MIGRATION_NO_OP
    assert noop.record is not None and noop.record.outcome is MigrationOutcome.NO_OP


def test_a_migrator_that_found_the_work_done_is_already_applied() -> None:
    done = ObservedJob(JobState.SUCCEEDED, words=report("AlreadyApplied", "nothing to run"))
    d = decide(situation(VERIFIED, RUNNING.model_copy(update={"heads": ["r1"]}), done,
                         heads=["r1"]))
    assert d.record is not None and d.record.outcome is MigrationOutcome.ALREADY_APPLIED


def test_a_job_found_after_a_restart_is_judged_against_its_own_snapshot() -> None:
    done = ObservedJob(JobState.SUCCEEDED, snapshot=EMPTY)
    d = decide(situation(db(), MigrationStatus(), done))  # nothing recorded, db unchanged
    assert d.outcome.reason is Reason.MIGRATION_NO_OP
    assert d.record is not None and d.record.job == JOB


def test_a_job_deleted_after_it_ended_is_judged_by_what_was_recorded() -> None:
    gone = decide(situation(VERIFIED, RUNNING, None))
    assert gone.record is not None and gone.record.outcome is MigrationOutcome.APPLIED
    assert "gone" in (gone.record.message or "")
    failed = RUNNING.model_copy(update={"outcome": MigrationOutcome.FAILED, "message": "boom"})
    still = decide(situation(db(), failed, None))
    assert still.outcome.reason is Reason.MIGRATION_FAILED and "boom" in still.outcome.message


def test_a_report_is_read_only_when_it_is_one() -> None:
    assert read_report(report("Applied", "x")).outcome is MigrationOutcome.APPLIED
    assert read_report(LastWords(1, '{"outcome": "Sure"}')).outcome is None
    assert read_report(LastWords(1, "[1, 2]")).message == "[1, 2]"
    assert read_report(None).message == ""
