"""A run that says it succeeded is judged by the database."""

from schemagate.core.check.verdict import Fingerprint, Verdict
from schemagate.core.migration import judge as migration
from schemagate.core.wire.models import MigrationSnapshot
from schemagate.core.wire.reasons import Reason

FP = Fingerprint(host="10.0.0.5", port=5432, database="app", user="backend",
                 search_path="public", server_version="18")


def verdict(reason: Reason, missing: tuple[str, ...], current: frozenset[str] | None
            ) -> Verdict:
    return Verdict(verified=reason is Reason.VERIFIED, reason=reason, message="m",
                   missing_tables=missing, current_revisions=current, fingerprint=FP)


def test_success_with_nothing_changed_is_a_no_op_naming_the_database() -> None:
    before = MigrationSnapshot(revision=None, tables_present=0)
    after = verdict(Reason.NO_REVISION, ("a", "b"), frozenset())  # an empty version table
    outcome, word = migration.judge_success("Job j", after, before, declared=2)
    assert (outcome.reason, word) == (Reason.MIGRATION_NO_OP, migration.NO_OP)
    assert "unchanged" in outcome.message and "database app on 10.0.0.5:5432" in \
        outcome.message and "NoRevision" in outcome.message


def test_success_with_a_partial_change_reports_the_schema_not_a_no_op() -> None:
    before = MigrationSnapshot(revision=None, tables_present=0)
    after = verdict(Reason.STAMPED_BUT_MISSING, ("b",), frozenset({"r1"}))
    outcome, word = migration.judge_success("Job j", after, before, declared=2)
    assert outcome.reason is Reason.STAMPED_BUT_MISSING and word == migration.APPLIED


def test_success_verified_is_applied() -> None:
    outcome, word = migration.judge_success(
        "Job j", verdict(Reason.VERIFIED, (), frozenset({"r1"})), None, declared=2)
    assert outcome.verified and word == migration.APPLIED


def test_failure_carries_the_error() -> None:
    outcome = migration.failed("Job j", 'relation "x" does not exist', None)
    assert outcome.reason is Reason.MIGRATION_FAILED and 'relation "x"' in outcome.message
